"""The public web form and the SMS gateway's webhook against a running service (fake Asterisk, SQLite, HTTP):
the form's answer holds the case number and nothing sent, its bound per client address (behind a proxy only when
configured), its hidden field; the webhook's signature good, wrong, replayed and old, a message reported twice,
malformed payloads; the desk's tasks and the statistics by channel; `cti case list --channel`, `show NUMBER`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from cti.auth_throttle import AddressThrottle
from cti.cases.channels import is_reference, signature
from cti.cli import main
from cti.settings import SmsSettings
from cti.web.api import CONTEXT, FORM_BOUND
from tests.desk_harness import Desk, running_desk
from tests.fakeami import Session

SECRET = "test-secret-not-a-real-one"
GATEWAY = "http://127.0.0.1:9/sms"  # nothing listens: the SMS stay in the outbox, where the test reads them
FORM = {"category": "complaint", "content": "兰山区某小区夜间施工噪音扰民", "caller_number": "13900000001",
        "caller_name": "王小明", "location": "兰山区金雀山路"}


def configured(desk: Desk, **context: Any) -> None:
    """The service's SMS settings (its secret and gateway) and the web context's, as cti.yaml would give them."""
    sms = SmsSettings(secret=SECRET, gateway=GATEWAY)
    desk.service.cases.sms = sms
    web = desk.service.web[CONTEXT]
    web.sms = sms
    for name, value in context.items():
        setattr(web, name, value)


async def post(desk: Desk, path: str, expect: int, *, raw: bytes | None = None, headers: dict[str, str] | None = None,
               **kwargs: Any) -> tuple[Any, bytes, dict[str, str]]:
    async with desk.http.post(desk.base + path, data=raw, headers=headers or {}, **kwargs) as reply:
        body = await reply.read()
        assert reply.status == expect, (path, reply.status, body[:300])
        return json.loads(body), body, dict(reply.headers)


def signed(payload: dict[str, Any], *, at: float | None = None, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(payload, ensure_ascii=False).encode()
    stamp = str(int(time.time() if at is None else at))
    return raw, {"Content-Type": "application/json", "X-CTI-Timestamp": stamp,
                 "X-CTI-Signature": signature(secret, stamp, raw)}


def sms(message_id: str, text: str = "小区路灯坏了一周", number: str = "13900000002") -> dict[str, Any]:
    return {"message_id": message_id, "from": number, "to": "12345", "text": text,
            "received_at": "2026-11-09T10:00:00+08:00"}


async def test_the_web_form(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        configured(desk)
        answer, raw, _ = await post(desk, "/api/requests", 200, json=FORM)
        assert set(answer) == {"reference", "next"} and is_reference(answer["reference"])
        text = raw.decode()
        for given in FORM.values():  # nothing personal, nothing sent, given back
            assert given not in text and json.dumps(given)[1:-1] not in text
        [case] = await desk.database.cases.find(reference=answer["reference"])
        assert (case.channel, case.content, case.caller_number, case.category, case.state) == (
            "web", FORM["content"], "13900000001", "complaint", "accepted")
        # the hidden field: answered alike, nothing kept
        robot, _, _ = await post(desk, "/api/requests", 200, json=FORM | {"website": "http://spam.example"})
        assert set(robot) == {"reference", "next"} and await desk.database.cases.find(reference=robot["reference"]) \
            == []
        assert len(await desk.database.cases.find()) == 1
        # malformed: 422 naming the field (and counted against the address all the same)
        bad, _, _ = await post(desk, "/api/requests", 422, json=FORM | {"caller_number": "call me"})
        assert set(bad["error"]["details"]["fields"]) == {"caller_number"}
        await post(desk, "/api/requests", 200, json=FORM)
        await post(desk, "/api/requests", 200, json=FORM)
        refused, _, headers = await post(desk, "/api/requests", 429, json=FORM)  # the sixth from this address
        assert refused["error"]["code"] == "too_many_requests" and int(headers["Retry-After"]) >= 60
        # X-Forwarded-For is not believed unless cti is told it is behind a proxy
        await post(desk, "/api/requests", 429, json=FORM, headers={"X-Forwarded-For": "203.0.113.9"})
        configured(desk, forwarded_for=True, refusal_hold=0.0)
        for _ in range(5):
            await post(desk, "/api/requests", 200, json=FORM, headers={"X-Forwarded-For": "203.0.113.9"})
        await post(desk, "/api/requests", 429, json=FORM, headers={"X-Forwarded-For": "203.0.113.9"})
        await post(desk, "/api/requests", 200, json=FORM, headers={"X-Forwarded-For": "203.0.113.10"})
        assert len(await desk.database.cases.find(channels=["web"])) == 9
        async with desk.http.get(desk.base + "/submit") as page:
            assert page.status == 200 and "网上诉求" in await page.text()


async def test_the_sms_gateways_webhook(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        raw, headers = signed(sms("gw-1"))
        off, _, _ = await post(desk, "/api/sms/inbound", 404, raw=raw, headers=headers)  # no secret configured
        assert off["error"]["code"] == "sms_not_configured"
        configured(desk)
        made, _, _ = await post(desk, "/api/sms/inbound", 200, raw=raw, headers=headers)
        assert made["outcome"] == "case" and is_reference(made["reference"])
        again, _, _ = await post(desk, "/api/sms/inbound", 200, raw=raw, headers=headers)  # replayed in the window
        assert again == {"outcome": "seen", "reference": made["reference"]}
        [case] = await desk.database.cases.find()
        assert (case.channel, case.content, case.caller_number) == ("sms", "小区路灯坏了一周", "13900000002")
        [receipt] = await desk.database.outbox.messages(state="pending")
        body = json.loads(receipt.body)
        assert (receipt.destination, receipt.event, body["kind"], body["to"], body["reference"]) == (
            GATEWAY, "sms.send", "receipt", "13900000002", made["reference"])
        assert made["reference"] in body["text"]
        # refused, nothing made: a wrong secret, a body changed after signing, an old timestamp, none at all
        other, other_headers = signed(sms("gw-2"), secret="guess")
        for attempt, sent_headers in ((other, other_headers), (raw.replace(b"gw-1", b"gw-3"), headers),
                                      signed(sms("gw-4"), at=time.time() - 301),
                                      (raw, {"Content-Type": "application/json"})):
            refused, _, _ = await post(desk, "/api/sms/inbound", 401, raw=attempt, headers=sent_headers)
            assert refused["error"]["code"] == "bad_signature"
        assert len(await desk.database.cases.find()) == 1
        # signed but malformed: 422 naming the field
        for payload, field in ((sms("gw-5") | {"received_at": "10:00"}, "received_at"),
                               ({k: v for k, v in sms("gw-6").items() if k != "from"}, "from"),
                               (sms("gw-7") | {"text": "   "}, "text"), (sms("gw-8") | {"extra": 1}, "extra")):
            body_raw, body_headers = signed(payload)
            invalid, _, _ = await post(desk, "/api/sms/inbound", 422, raw=body_raw, headers=body_headers)
            assert field in invalid["error"]["details"]["fields"], (field, invalid)
        not_json, not_json_headers = signed({})
        await post(desk, "/api/sms/inbound", 400, raw=b"{nope", headers={
            **not_json_headers, "X-CTI-Signature": signature(SECRET, not_json_headers["X-CTI-Timestamp"], b"{nope")})
        assert len(await desk.database.cases.find()) == 1

        # the desk: the request waits in the agents' tasks with its channel, until an agent takes it
        agent = await desk.user("1001", "agent", "1001")
        tasks = await desk.request("GET", "/api/tasks", agent)
        assert [(c["reference"], c["channel"], c["channel_name"]) for c in tasks["requests"]] == [
            (made["reference"], "sms", "短信")]
        taken = await desk.request("POST", f"/api/cases/{case.id}/actions/take", agent, json={})
        assert taken["taken_by"] == "1001" and taken["taken_at"]
        assert (await desk.request("GET", "/api/tasks", agent))["requests"] == []
        supervisor = await desk.user("boss", "supervisor")
        found = await desk.request("GET", f"/api/cases?reference={made['reference']}", supervisor)
        assert [c["id"] for c in found] == [case.id]
        assert await desk.request("GET", "/api/cases?channel=web", supervisor) == []
        rows = await desk.request("GET", "/api/stats?by=channel", supervisor)
        assert [(r["key"], r["media_cases"], r["answered_3min"]) for r in rows] == [("短信", 1, 1), ("total", 1, 1)]


async def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        configured(desk)
        raw, headers = signed(sms("gw-cli", "噪音扰民"))
        made, _, _ = await post(desk, "/api/sms/inbound", 200, raw=raw, headers=headers)
        await post(desk, "/api/requests", 200, json=FORM)
        await desk.service.cases.open(caller_number="13900000003", category="request", content="电话来的",
                                      actor="1001", role="agent")
    assert await asyncio.to_thread(main, ["case", "list", "--channel", "sms", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "短信" in out and "噪音扰民" in out and made["reference"] in out and "电话来的" not in out
    assert await asyncio.to_thread(main, ["case", "list", "--channel", "web", "--json", "--db", url]) == 0
    [web] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (web["channel"], web["content"]) == ("web", FORM["content"])
    assert await asyncio.to_thread(main, ["case", "show", made["reference"], "--db", url]) == 0
    assert "噪音扰民" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["case", "show", "20261109-0000000", "--db", url]) == 1
    assert "no case" in capsys.readouterr().err


def test_the_forms_bound_is_the_sign_ins_throttle() -> None:
    """One throttle: the form's bound is cti.auth_throttle's keys, its waits doubling."""
    now = [0.0]
    throttle = AddressThrottle(dataclasses.replace(FORM_BOUND, max_keys=2), clock=lambda: now[0])
    assert [throttle.attempt("a") for _ in range(5)] == [0.0] * 5
    assert throttle.attempt("a") == 60.0
    now[0] += 60
    assert throttle.attempt("a") == 0.0 and throttle.attempt("a") == 120.0
    throttle.attempt("b"), throttle.attempt("c")
    assert len(throttle) == 2  # bounded
