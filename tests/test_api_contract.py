"""The API's contract (GET /api/openapi.json): the document is valid OpenAPI 3.1; every route of the
app's router is in it with its answers and errors; real answers of a running service, the pops of
a desk scenario and the webhooks a unit receives match the schemas it declares."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import ValidationError
from openapi_spec_validator import validate as validate_spec

from cti.auth import ROLES
from cti.calls.events import TransferFailed
from cti.calls.record import CallRecord, Leg, Transfer
from cti.cases.catalogue import HandlingUnit
from cti.cases.channels import InboundSms, signature
from cti.cases.model import MissedCall
from cti.cases.service import CaseService
from cti.configuration import load_configuration
from cti.settings import Settings, SmsSettings, WebhookSettings
from cti.store.database import Database
from cti.web.api import CONTEXT
from cti.web.routes import ANYONE
from cti.web.schemas import COMPONENTS, WEBSOCKET_MESSAGES
from cti.webhooks import WebhookSender, call_ended
from tests.conftest import REPO_PATHS
from tests.contract import Contract, document
from tests.desk_harness import PASSWORD, Desk, running_desk
from tests.fakeami import Session, until
from tests.test_desk import CALL, member_event, p5_with_pause, recording_of, ringing_then_lost
from tests.test_kb_api import kb_contract

NOT_API = {"/", "/wallboard", "/stats", "/ledger", "/submit", "/static"}  # the desk, the wallboard, the statistics
# page, the number ledger, the web form, their files


def test_the_document_is_valid_openapi_3_1() -> None:
    spec = document()
    validate_spec(spec)
    assert spec["openapi"] == "3.1.0"
    assert set(spec["webhooks"]) == {"call.ended", "case", "alert", "sms.send"}
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), "operationIds are unique"


def test_every_operation_names_its_roles_and_describes_every_answer() -> None:
    spec = document()
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert isinstance(op["x-roles"], list) and set(op["x-roles"]) <= set(ROLES), where
            assert ("security" in op) == bool(op["x-roles"]), where  # an empty list: public, no token
            responses = op["responses"]
            assert "default" not in responses, where  # every status is named
            success = [s for s in responses if s.startswith(("1", "2"))]
            assert len(success) == 1, where
            if success != ["101"]:
                for media, content in responses[success[0]]["content"].items():
                    assert content.get("schema"), f"{where} {media}: no schema"
            errors = {int(s) for s in responses if int(s) >= 400}
            for status in errors:
                assert responses[str(status)]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"}, where
                assert responses[str(status)]["description"], where
            if op["x-roles"]:
                assert 401 in errors, where
                if set(op["x-roles"]) != set(ANYONE):
                    assert 403 in errors, where
            if "requestBody" in op:
                assert {400, 422} <= errors, where
                assert op["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"] is False
            if any(p["in"] == "query" for p in op.get("parameters", ())):
                assert 422 in errors, where


def test_the_schemas_made_from_the_codes_dataclasses_say_every_fields_type() -> None:
    """The timeline's events and the statistics' rows: a field of a type cti.web.schemas does not know
    would be documented as anything."""
    made = {name: s for name, s in COMPONENTS.items() if name.startswith("TimelineEvent_") or name == "StatsRow"}
    assert len(made) > 10
    for name, schema in made.items():
        for field, spec in schema["properties"].items():
            assert spec, f"{name}.{field}: extend cti/web/schemas.py's _PLAIN with its type"


def test_x_roles_is_always_a_list() -> None:
    spec = document()
    assert spec["paths"]["/api/session"]["post"]["x-roles"] == []
    assert spec["paths"]["/api/ws"]["get"]["x-roles"] == []
    assert spec["paths"]["/api/agents"]["get"]["x-roles"] == ["supervisor", "admin"]
    assert spec["paths"]["/api/me"]["get"]["x-roles"] == list(ROLES)


def test_the_public_operations_are_those_meant_to_be() -> None:
    """A route is public only by name here: an empty roles= that slipped in would open it to anyone."""
    spec = document()
    public = {(method.upper(), path) for path, ops in spec["paths"].items() for method, op in ops.items()
              if not op["x-roles"]}
    assert public == {("POST", "/api/session"), ("GET", "/api/openapi.json"), ("GET", "/api/ws"),
                      ("GET", "/api/ledger"), ("POST", "/api/requests"), ("POST", "/api/sms/inbound")}


def test_the_websocket_and_the_webhooks_are_described() -> None:
    spec = document()
    described = spec["paths"]["/api/ws"]["get"]["x-websocket"]
    assert described["client"] == {"$ref": "#/components/schemas/WsAuth"}
    # every type the hub sends and the desk handles (cti/web/static/desk.js's handlers)
    handled = set()
    for page in ("desk.js", "wallboard.js"):  # the agent's desk and the supervisors' wallboard
        code = (Path(__file__).parent.parent / "cti" / "web" / "static" / page).read_text(encoding="utf-8")
        handlers = code[code.index("const handlers = {"):code.index("function connect()")]
        handled |= set(re.findall(r"^  (\w+): \(", handlers, re.MULTILINE))
    assert "ringing" in handled and "error" in handled
    assert set(described["messages"]) == {"auth"} | handled
    for name in WEBSOCKET_MESSAGES:
        assert spec["components"]["schemas"][name] == json.loads(json.dumps(COMPONENTS[name]))
    for hook in spec["webhooks"].values():
        headers = {p["name"] for p in hook["post"]["parameters"] if p["in"] == "header"}
        assert {"Idempotency-Key", "Content-Type"} <= headers
        assert "not signed" in hook["post"]["description"]


async def test_every_route_of_the_router_is_in_the_document(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        served = await desk.request("GET", "/api/openapi.json")
        router = desk.service.web.router
        found = {(route.method, resource.canonical) for resource in router.resources() for route in resource
                 if route.method != "HEAD"}
    assert served == document()
    api = {(method, path) for method, path in found if path not in NOT_API}
    assert {path for _, path in found} - {path for _, path in api} == NOT_API
    documented = {(method.upper(), path) for path, ops in served["paths"].items() for method in ops}
    assert api == documented
    for method, path in api:
        assert served["paths"][path][method.lower()]["responses"], (method, path)


# -- real answers of a running service ------------------------------------------------------------------

async def checked(desk: Desk, contract: Contract, method: str, path: str, token: str | None = None,
                  expect: int = 200, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """A request whose answer must have the status expected and match the document."""
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    async with desk.http.request(method, desk.base + path, headers=headers, **kwargs) as reply:
        raw = await reply.read()
        assert reply.status == expect, (method, path, reply.status, raw[:300])
        try:
            contract.answer(method, path, reply.status, reply.content_type, raw)
        except ValidationError as error:
            raise AssertionError(f"{method} {path} {reply.status}: {error.message} at {list(error.absolute_path)}"
                                 f" ({error.json_path})") from None
        return json.loads(raw) if reply.content_type == "application/json" else raw


async def signed_in(desk: Desk, contract: Contract, user: str, role: str, agent: str | None = None) -> str:
    await desk.database.users.add(user, user, role, PASSWORD, agent)
    reply = await checked(desk, contract, "POST", "/api/session", json={"user": user, "password": PASSWORD})
    return str(reply["token"])


def strict_pops(contract: Contract, seen: list[dict[str, Any]]) -> list[str]:
    """Every WebSocket message seen validates against WsServerMessage, and as its own type."""
    by_type = {s["properties"]["type"]["const"]: name for name, s in WEBSOCKET_MESSAGES.items()
               if name != "WsServerMessage"}
    for message in seen:
        try:
            contract.component("WsServerMessage", message)
            contract.component(by_type[message["type"]], message)
        except ValidationError as error:
            raise AssertionError(f"{message['type']} message: {error.message} at {error.json_path}") from None
    return [m["type"] for m in seen]


async def test_real_answers_and_pops_match_the_document(tmp_path: Path) -> None:
    """The desk's day on P5 (13800000043 dials 12369, agent 1001 answers, transfers): every answer
    of the REST calls on the way, errors included, and every pop, validated."""
    contract = Contract()
    session, start, talk = p5_with_pause()
    session.on_action["QueuePause"] = "error:Interface not found"  # a refusal: 409 pbx_refused
    async with running_desk(tmp_path, [session]) as desk:
        await desk.database.calls.save([CallRecord(
            linkedid="1795200000.1", direction="inbound", caller_number="13800000043", caller_name="Citizen",
            dialled_number="12315", arrived_at=1795200000.0, ended_at=1795200100.0, unit="市市场监管局",
            treatment="remote_seat", answered_at=1795200010.0, answered_by="PJSIP/agent1002",
            answered_by_name="Seat 1002", queue="q12345", queued_at=1795200001.0, queue_wait=9.0, talk_time=90.0,
            hangup_cause=16, hangup_cause_text="Normal Clearing", recording="/var/x.wav",
            transfers=(Transfer("blind", "110", 1795200050.0, "PJSIP/agent1002-1", "PJSIP/carrier-1", "answered",
                                "PJSIP/110@carrier", "13800000043"),),
            legs=(Leg("PJSIP/agent1002", "Seat 1002", "PJSIP/agent1002-1", 1795200002.0, "answered",
                      1795200010.0),))])
        earlier = await desk.service.cases.open(caller_number="13800000043", category="report", actor="1002",
                                                content="举报河道排污（上周）", role="agent")
        await desk.database.cases.add_missed(MissedCall("1795100000.1", "13900000009", "", "12345",
                                                        datetime(2026, 11, 20, 1, 0, tzinfo=UTC), 42.5))
        c = contract
        agent = await signed_in(desk, c, "1001", "agent", "1001")
        supervisor = await signed_in(desk, c, "boss", "supervisor")
        listener = await signed_in(desk, c, "9001", "supervisor")  # agents.yaml's supervisor with a phone
        admin = await signed_in(desk, c, "root", "admin")
        await desk.database.users.add("eco", "eco", "integrator", unit_id="ecology-environment")
        unit = await desk.database.users.issue_token("eco", "unit", None)
        await desk.database.users.add("crm", "crm", "integrator")
        loose = await desk.database.users.issue_token("crm", "reader", None)

        await checked(desk, c, "POST", "/api/session", expect=401, json={"user": "1001", "password": "wrong"})
        await checked(desk, c, "POST", "/api/session", expect=400, data=b"{nope")
        await checked(desk, c, "POST", "/api/session", expect=422, json={"user": ""})
        await checked(desk, c, "GET", "/api/openapi.json")
        await checked(desk, c, "GET", "/api/ws", expect=400)  # not an upgrade
        for token in (agent, supervisor, unit):
            await checked(desk, c, "GET", "/api/me", token)
            await checked(desk, c, "GET", "/api/guidance", token)
            await checked(desk, c, "GET", "/api/units", token)
        await checked(desk, c, "GET", "/api/me", expect=401)
        await checked(desk, c, "GET", "/api/agents", supervisor)
        await checked(desk, c, "GET", "/api/agents", agent, expect=403)
        await checked(desk, c, "GET", "/api/agents/1001", agent)
        await checked(desk, c, "GET", "/api/agents/1002", agent, expect=403)
        await checked(desk, c, "GET", "/api/agents/9999", supervisor, expect=404)
        await checked(desk, c, "POST", "/api/agents/1001/login", agent)
        await checked(desk, c, "POST", "/api/agents/1001/pause", agent, expect=409, json={"reason": "培训"})
        await checked(desk, c, "POST", "/api/agents/1001/pause", agent, expect=422, json={"reason": "打游戏"})
        await checked(desk, c, "POST", "/api/agents/1001/ready", agent, expect=409)
        await checked(desk, c, "GET", "/api/targets", agent)
        await checked(desk, c, "GET", "/api/route/12315", unit)
        await checked(desk, c, "GET", "/api/route/12369?at=2026-11-22T10:00:00", supervisor)
        await checked(desk, c, "GET", "/api/route/12369?at=yesterday", supervisor, expect=422)
        await checked(desk, c, "GET", "/api/metrics", supervisor)
        await checked(desk, c, "GET", "/api/admin/webhooks", admin)
        await checked(desk, c, "POST", "/api/admin/webhooks/1/retry", admin, expect=404)
        await checked(desk, c, "GET", "/api/tasks", agent)

        async with desk.socket(agent) as mine, desk.socket(supervisor) as wallboard:
            await desk.route("12369", CALL, recording_of(tmp_path))
            start.set()
            await mine.next("answered")
            await mine.next("recording")
            await checked(desk, c, "GET", "/api/live", supervisor)
            await checked(desk, c, "POST", f"/api/calls/{CALL}/answer", agent, expect=404)  # no softphone here
            await checked(desk, c, "POST", f"/api/calls/{CALL}/transfer", agent,
                          json={"target": "120", "kind": "attended"})
            await checked(desk, c, "POST", f"/api/calls/{CALL}/transfer/cancel", agent)
            await checked(desk, c, "POST", f"/api/calls/{CALL}/transfer", agent,
                          json={"target": "seat-12369", "kind": "conference"})
            await checked(desk, c, "POST", f"/api/calls/{CALL}/transfer", agent,
                          json={"target": "999", "kind": "blind"}, expect=404)
            await checked(desk, c, "POST", f"/api/calls/{CALL}/transfer", agent, json={"kind": "sideways"}, expect=422)
            await checked(desk, c, "POST", "/api/calls/1.1/hangup", agent, expect=404)
            await checked(desk, c, "POST", f"/api/calls/{CALL}/transfer/complete", supervisor)
            await checked(desk, c, "POST", f"/api/calls/{CALL}/listen", listener, json={"mode": "whisper"})
            await checked(desk, c, "POST", f"/api/calls/{CALL}/listen", supervisor, json={"mode": "listen"},
                          expect=409)  # no phone
            await checked(desk, c, "POST", f"/api/calls/{CALL}/listen", agent, json={"mode": "listen"}, expect=403)
            await checked(desk, c, "POST", "/api/calls/1.1/listen", listener, json={"mode": "barge"}, expect=404)
            await checked(desk, c, "POST", f"/api/calls/{CALL}/listen", listener, json={"mode": "x"}, expect=422)
            await checked(desk, c, "POST", f"/api/calls/{CALL}/hangup", agent)
            # a handover that reached nobody (the tracker's event, through the real hub to the desk)
            desk.service.hub.on_events([TransferFailed(CALL, 1795281900.0, "blind", "110", "noanswer")])
            await mine.next("transfer_failed")
            case = await checked(desk, c, "POST", "/api/cases", agent, json={
                "linkedid": CALL, "category": "complaint", "content": "河道有人倾倒垃圾", "location": "盐湖区",
                "confidential": True})
            await checked(desk, c, "POST", "/api/cases", agent, expect=422, json={
                "category": "complaint", "content": "no caller", "unit": "nowhere"})
            await checked(desk, c, "PATCH", f"/api/cases/{case['id']}", agent, json={"caller_name": "张先生"})
            await checked(desk, c, "POST", f"/api/cases/{case['id']}/actions/dispatch", agent,
                          json={"unit": "ecology-environment"})
            await checked(desk, c, "POST", "/api/cases", agent, expect=409, json={  # dispatched: not edited
                "linkedid": CALL, "category": "complaint", "content": "again"})
            writer = desk.server._writers[0]  # Asterisk reports the member's changes: agent messages
            writer.write(member_event("QueueMemberAdded") + member_event("QueueMemberPause", "1", "培训"))
            await wallboard.next("agent")
            talk.set()
            await mine.next("ended")
            await until(lambda: desk.service.writer.written == 1, what="the record")
            await mine.drain()
            await wallboard.drain()
        kinds = strict_pops(c, mine.seen) + strict_pops(c, wallboard.seen)
        assert {"hello", "ringing", "history", "answered", "recording", "transferred", "transfer_failed", "ended",
                "agent"} <= set(kinds), kinds

        case_id = case["id"]
        await kb_contract(desk, c, checked, agent, supervisor, unit, loose, case_id)  # the knowledge base's routes
        await checked(desk, c, "GET", f"/api/cases/{case_id}", unit)  # confidential: masked for the unit
        await checked(desk, c, "GET", "/api/cases?state=dispatched", unit)
        await checked(desk, c, "GET", "/api/cases", loose, expect=403)
        await checked(desk, c, "POST", f"/api/cases/{case_id}/actions/sign", unit, json={})
        await checked(desk, c, "POST", f"/api/cases/{case_id}/actions/request_extension", unit,
                      json={"days": 2, "reason": "需现场核查"})
        await checked(desk, c, "POST", f"/api/cases/{case_id}/actions/request_extension", unit, expect=409,
                      json={"days": 2, "reason": "又一次"})
        await checked(desk, c, "POST", f"/api/cases/{case_id}/actions/overdue", supervisor, expect=403, json={})
        await checked(desk, c, "POST", f"/api/cases/{case_id}/actions/approve_extension", supervisor, json={})
        await checked(desk, c, "POST", f"/api/cases/{case_id}/actions/reply", unit,
                      json={"reply": "已清理\r\n已处罚", "note": "现场照片已存档"})
        await checked(desk, c, "POST", f"/api/cases/{case_id}/actions/fly", unit, expect=422, json={})
        await checked(desk, c, "POST", f"/api/cases/{earlier.id}/calls", agent, json={"linkedid": "1795200000.1"})
        await checked(desk, c, "POST", f"/api/cases/{earlier.id}/calls", agent, json={"linkedid": CALL}, expect=409)
        await checked(desk, c, "GET", f"/api/cases/{earlier.id}", supervisor)
        await checked(desk, c, "GET", f"/api/cases/{2**40}", supervisor, expect=404)
        await checked(desk, c, "GET", "/api/cases?escalated=false&from=2026-01-01&limit=5", supervisor)
        await checked(desk, c, "GET", "/api/cases?from=2026-02-30", supervisor, expect=422)
        await checked(desk, c, "GET", "/api/tasks", supervisor)
        await checked(desk, c, "POST", "/api/missed/1795100000.1", agent, json={"state": "called_back"})
        await checked(desk, c, "POST", "/api/missed/1.1", agent, expect=404, json={"state": "unreachable"})
        for by in ("unit", "category", "legacy_number", "day", "month", "channel"):
            await checked(desk, c, "GET", f"/api/stats?by={by}", supervisor)
        await checked(desk, c, "GET", "/api/stats?by=unit&format=csv", unit)
        await checked(desk, c, "GET", "/api/stats?by=color", supervisor, expect=422)
        await checked(desk, c, "GET", "/api/stats?by=month&format=xlsx", supervisor)
        for by in ("total", "hour", "day", "queue", "unit", "agent"):
            await checked(desk, c, "GET", f"/api/stats/calls?by={by}&from=2026-01-01&to=2099-12-31", supervisor)
        await checked(desk, c, "GET", "/api/stats/calls", unit)
        await checked(desk, c, "GET", "/api/stats/calls?by=day&format=csv", unit)
        await checked(desk, c, "GET", "/api/stats/calls?by=agent&format=xlsx", supervisor)
        await checked(desk, c, "GET", "/api/stats/calls", agent, expect=403)
        await checked(desk, c, "GET", "/api/stats/calls", loose, expect=403)
        await checked(desk, c, "GET", "/api/stats/calls?by=week", supervisor, expect=422)
        await checked(desk, c, "GET", "/api/hotspots", supervisor)
        await checked(desk, c, "GET", "/api/hotspots", unit)
        await checked(desk, c, "GET", "/api/alerts", supervisor)
        await checked(desk, c, "GET", "/api/alerts", unit, expect=403)
        await checked(desk, c, "GET", "/api/stats/heat?from=2026-01-01&to=2099-12-31", supervisor)
        await checked(desk, c, "GET", "/api/stats/heat", unit)
        await checked(desk, c, "GET", "/api/stats/heat", loose, expect=403)

        await checked(desk, c, "GET", "/api/calls", supervisor)
        await checked(desk, c, "GET", "/api/calls?caller=13800000043&limit=1", unit)
        await checked(desk, c, "GET", "/api/calls", loose, expect=403)
        detail = await checked(desk, c, "GET", f"/api/calls/{CALL}", agent)
        assert {e["kind"] for e in detail["timeline"]} >= {"offered", "routed", "answered", "ended"}
        assert all(e["at"].endswith("+08:00") for e in detail["timeline"])  # in the service's zone, as every time
        await checked(desk, c, "GET", f"/api/calls/{CALL}", unit)  # the confidential caller masked
        await checked(desk, c, "GET", "/api/calls/1795200000.1", agent, expect=403)  # 1002 answered it
        await checked(desk, c, "GET", "/api/calls/9.9", supervisor, expect=404)
        await checked(desk, c, "GET", f"/api/calls/{CALL}/recording", agent, expect=404)  # not written
        Path(recording_of(tmp_path)).parent.mkdir(parents=True)
        Path(recording_of(tmp_path)).write_bytes(b"RIFF....WAVEfmt fake audio")
        await checked(desk, c, "GET", f"/api/calls/{CALL}/recording", supervisor)
        await checked(desk, c, "POST", "/api/admin/reload", admin)
        await checked(desk, c, "POST", "/api/admin/reload", supervisor, expect=403)
        await checked(desk, c, "GET", "/api/agents", supervisor)
        await checked(desk, c, "POST", "/api/agents/1001/logout", supervisor)
        # the web form and the SMS gateway: public (the gateway signs)
        form = {"category": "request", "content": "路灯不亮", "caller_number": "13900000001"}
        await checked(desk, c, "POST", "/api/requests", json=form)
        await checked(desk, c, "POST", "/api/requests", expect=422, json={"content": "x"})
        sms = json.dumps({"message_id": "gw-1", "from": "13900000002", "to": "12345", "text": "井盖丢失",
                          "received_at": "2026-11-22T10:00:00+08:00"}).encode()
        stamp = str(int(time.time()))
        signed = {"Content-Type": "application/json", "X-CTI-Timestamp": stamp,
                  "X-CTI-Signature": signature("contract", stamp, sms)}
        await checked(desk, c, "POST", "/api/sms/inbound", expect=404, data=sms, headers=signed)
        desk.service.web[CONTEXT].sms = SmsSettings(secret="contract")
        taken = await checked(desk, c, "POST", "/api/sms/inbound", data=sms, headers=signed)
        await checked(desk, c, "POST", "/api/sms/inbound", expect=401, data=sms,
                      headers={**signed, "X-CTI-Signature": "x"})
        await checked(desk, c, "GET", f"/api/cases?channel=sms&reference={taken['reference']}", supervisor)
        await checked(desk, c, "GET", "/api/ledger?at=2020-07-01")  # public: no token
        await checked(desk, c, "GET", "/api/ledger?format=csv")
        await checked(desk, c, "GET", "/api/ledger?at=2020-02-30", expect=422)
        await checked(desk, c, "DELETE", "/api/session", agent)
        await checked(desk, c, "GET", "/api/me", agent, expect=401)

    operations = {(m.upper(), p) for p, ops in contract.document["paths"].items() for m in ops}
    answered = {(m, p) for m, p, _ in contract.checked}
    assert operations - answered == set(), "call each operation at least once above: its answers are checked"


async def test_pops_of_a_lost_link_and_a_refused_socket_match_the_document(tmp_path: Path) -> None:
    """The stale pop after a reconnect (link down, cleared, link up) and a socket's refused token."""
    contract = Contract()
    ringing = ringing_then_lost()
    assert ringing.gate is not None
    async with running_desk(tmp_path, [ringing, Session(close_at_end=False)]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        async with desk.socket(agent) as mine:
            ringing.gate.set()
            await mine.next("cleared")
            await mine.next("link")
            await mine.next("link")
        async with desk.http.ws_connect(desk.base.replace("http", "ws") + "/api/ws") as ws:
            await ws.send_json({"type": "auth", "token": "cti_wrong"})
            refused = await ws.receive_json(timeout=5)
        async with desk.socket(agent) as signed_out:  # a sign-out closes the desks its token opened
            await desk.request("DELETE", "/api/session", agent)
            ended = await signed_out.next("error")
    assert {"hello", "ringing", "link", "cleared"} <= set(strict_pops(contract, mine.seen + [refused]))
    assert strict_pops(contract, signed_out.seen) == ["hello", "error"]
    assert refused["type"] == ended["type"] == "error"
    contract.component("WsAuth", {"type": "auth", "token": agent})


# -- the units' webhooks ----------------------------------------------------------------------------

async def test_webhooks_a_unit_receives_match_the_document(sqlite_db: Database, unit_endpoint) -> None:
    url, received = unit_endpoint
    contract = Contract()
    configuration = load_configuration(Settings(paths=REPO_PATHS))
    units = dict(configuration.catalogue.units)
    units["yanhu-district"] = HandlingUnit("yanhu-district", "盐湖区人民政府", url)
    catalogue = dataclasses.replace(configuration.catalogue, units=units)
    zone = configuration.trunk_map.zone
    cases = CaseService(sqlite_db.cases, lambda: catalogue, zone, sms=SmsSettings(gateway=url))
    await cases.open(caller_number="13800000003", category="consultation", content="办证需要什么材料",
                     actor="1001", role="agent", unit="yanhu-district", confidential=True)
    await cases.sms_received(InboundSms("gw-1", "13800000004", "12345", "井盖丢失", datetime.now(UTC)))
    record = CallRecord(linkedid="1795281884.19", direction="inbound", caller_number="13800000043",
                        caller_name="Citizen", dialled_number="2587777", arrived_at=1795281884.0,
                        ended_at=1795281944.0, unit="民生天然气", unit_id="gas", treatment="interconnected",
                        answered_at=1795281890.0, answered_by="PJSIP/2587777@carrier", talk_time=54.0,
                        hangup_cause=16, hangup_cause_text="Normal Clearing")
    # not signed: a unit authenticates cti by the credentials in its URL, sent as HTTP Basic
    await sqlite_db.outbox.add([call_ended(url.replace("http://", "http://gas:s3cret@"), "gas", record, zone)])
    sender = WebhookSender(sqlite_db.outbox, WebhookSettings(timeout=2, retry_min=0.05, retry_max=0.2))
    sender.start()
    try:
        await until(lambda: len(received) == 3, what="the three webhooks")
    finally:
        await sender.close(grace=0.1)
    hooks = contract.document["webhooks"]
    by_event = {body["event"]: (body, headers) for body, headers in received}
    for event, hook in (("case.dispatch", hooks["case"]), ("call.ended", hooks["call.ended"]),
                        ("sms.send", hooks["sms.send"])):
        body, headers = by_event[event]
        post = hook["post"]
        contract.validate(post["requestBody"]["content"]["application/json"]["schema"], body)
        for parameter in post["parameters"]:
            if parameter["required"]:
                assert parameter["name"] in headers, (event, parameter["name"])
        assert headers["Idempotency-Key"].startswith('"') and headers["Content-Type"].startswith("application/json")
    assert by_event["case.dispatch"][0]["case"]["caller_number"] == "138****0003"
    assert by_event["call.ended"][1]["Authorization"] == "Basic " + base64.b64encode(b"gas:s3cret").decode()
    with pytest.raises(ValidationError):  # the schema is closed: a key the code added and the document lacks
        contract.validate(hooks["call.ended"]["post"]["requestBody"]["content"]["application/json"]["schema"],
                          {**by_event["call.ended"][0], "extra": 1})
