"""A property-based fuzzer (schemathesis) against a running demo (``cti demo --rate 0``: the
simulated Asterisk, a real cti, SQLite): every operation of the OpenAPI document, as each role
that may call it — an agent, a supervisor, an admin, an integrator of a unit, nobody on the public
ones — with inputs that fit the document and inputs that do not. No answer may be a 5xx, and
every answer must have a documented status, media type and, for JSON, a body matching its
schema. Bounded (EXAMPLES per operation, role and mode) and deterministic (derandomized).

Below it, the bugs it found, and those found probing around it (on PostgreSQL, with text hypothesis
never generates, on the WebSocket, which it does not speak), each pinned by a test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cti.store.database import Database
from tests.contract import document
from tests.demo_thread import DemoThread
from tests.desk_harness import running_desk
from tests.fakeami import Session

EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 6}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
USERS = {"agent": ("1001", {"agent": "1001"}), "supervisor": ("supervisor", {}), "admin": ("root", {}),
         "integrator": ("gas-system", {"unit": "gas"})}
SIGN_OUT = ("DELETE", "/api/session")  # revokes the token it is called with: a fresh one each time


def operations() -> list[Any]:
    """(method, path, role) for every operation and every role that may call it ("public": no token)."""
    return [pytest.param(method.upper(), path, role, id=f"{method.upper()} {path} as {role}")
            for path, ops in document()["paths"].items() for method, op in ops.items()
            for role in op["x-roles"] or ["public"]]


@dataclass
class Fuzzed:
    demo: DemoThread
    schema: Any  # schemathesis's OpenApiSchema of the document the demo serves
    tokens: dict[str, str]

    def headers(self, role: str, fresh: bool = False) -> dict[str, str]:
        if role == "public":
            return {}
        token = self.tokens[role]
        if fresh:
            user, link = USERS[role]
            token = self.demo.token(user, role, **link)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    with DemoThread(tmp_path_factory.mktemp("demo")) as demo:
        demo.quick_refusals()  # the fuzzer's failed sign-ins are answered at once, not held a second
        tokens = {role: demo.token(user, role, **link) for role, (user, link) in USERS.items()}
        # something to find: calls to the hotline, a remote seat's line, a gas company's (interconnected);
        # their records, the cases cti opens for them and the missed-call list
        demo.citizens([("12345", "13900000001"), ("12369", "13900000002"), ("2587777", "13900000003")])
        demo.records(3)
        served = requests.get(demo.base + "/api/openapi.json", timeout=10).json()
        yield Fuzzed(demo, schemathesis.openapi.from_dict(served), tokens)


@pytest.mark.parametrize(("method", "path", "role"), operations())
def test_no_input_breaks_the_api(fuzzed: Fuzzed, method: str, path: str, role: str) -> None:
    operation = fuzzed.schema[path][method]
    for mode, examples in EXAMPLES.items():
        if mode == GenerationMode.NEGATIVE and not _has_input(operation.definition.raw):
            continue  # nothing to get wrong

        @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: schemathesis.Case) -> None:
            headers = fuzzed.headers(role, fresh=(method, path) == SIGN_OUT)
            response = case.call(base_url=fuzzed.demo.base, headers=headers, timeout=15)
            case.validate_response(response, checks=CHECKS, headers=headers)

        fuzz()


def _has_input(operation: dict[str, Any]) -> bool:
    return "requestBody" in operation or bool(operation.get("parameters"))


# -- what it found ---------------------------------------------------------------------------------

async def test_days_and_moments_beyond_the_calendar_are_refused_naming_the_field(tmp_path: Path) -> None:
    """GET /api/cases?from=0001-01-01 was a 500: the day's first moment in Asia/Shanghai is no datetime in UTC
    (OverflowError in the query); so were to=9999-12-31 (the day after), the same in /api/stats, and a route
    decision at 0001-01-01T00:00+14:00 (the trunk map's zone)."""
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        supervisor = await desk.user("boss", "supervisor")
        for path, name in (("/api/cases?from=0001-01-01", "from"), ("/api/cases?to=9999-12-31", "to"),
                           ("/api/stats?by=day&from=0001-01-01", "from"), ("/api/stats?by=month&to=9999-12-31", "to"),
                           ("/api/cases?from=2026-01-01&to=9999-12-31", "to")):
            refused = await desk.request("GET", path, supervisor, expect=422)
            assert refused["error"] == {"code": "invalid", "message": "invalid query",
                                        "details": {"fields": {name: "a day from 0001-01-02 to 9999-12-30"}}}, path
        assert await desk.request("GET", "/api/cases?from=0001-01-02&to=9999-12-30", supervisor) == []
        [total] = await desk.request("GET", "/api/stats?by=day&from=0001-01-02&to=9999-12-30", supervisor)
        assert total["key"] == "total"
        for at in ("0001-01-01T00:00:00%2B14:00", "9999-12-31T23:59:59-12:00", "9999-12-31"):
            refused = await desk.request("GET", f"/api/route/2666110?at={at}", supervisor, expect=422)
            assert refused["error"]["details"] == {"fields": {"at": "a moment of a day from 0001-01-02 to 9999-12-30"}}
        for at in ("0001-01-02T00:00:00%2B14:00", "9999-12-30T23:59:59-12:00"):
            decided = await desk.request("GET", f"/api/route/2666110?at={at}", supervisor)
            assert decided["unit_id"] == "chuangjian"


async def test_a_lone_surrogate_is_refused_naming_the_field(tmp_path: Path, database: Database) -> None:
    """JSON's "\\ud800" alone is no Unicode text: it reached the database (SQLite's and PostgreSQL's
    drivers cannot encode it) or the password hash, a 500. (Hypothesis never generates one.)"""
    async with running_desk(tmp_path, [Session(close_at_end=False)], database) as desk:
        agent = await desk.user("1001", "agent", "1001")
        for path, body, name in (
                ("/api/cases", b'{"category": "request", "content": "a\\ud800b", "caller_number": "1"}', "content"),
                ("/api/cases", b'{"category": "request", "content": "x", "caller_number": "1", '
                               b'"caller_name": "\\udfff"}', "caller_name"),
                ("/api/cases", b'{"category": "request", "content": "x", "caller_number": "1", '
                               b'"linkedid": "\\ud800"}', "linkedid"),
                ("/api/session", b'{"user": "\\ud800", "password": "x"}', "user"),
                ("/api/agents/1001/pause", b'{"reason": "\\ud83d"}', "reason")):
            refused = await desk.request("POST", path, agent, expect=422, data=body)
            assert refused["error"]["details"] == {"fields": {name: "not Unicode text: a lone surrogate"}}, path
        emoji = await desk.request("POST", "/api/cases", agent, json={  # a pair is a character
            "category": "request", "content": "路灯坏了 \U0001f4a1", "caller_number": "1"})
        assert emoji["content"] == "路灯坏了 \U0001f4a1"


async def test_text_in_the_path_is_bounded_as_in_the_body(tmp_path: Path, database: Database) -> None:
    """GET /api/calls/a%00b was a 500 on PostgreSQL (no NUL in its text); a path's text parameters are
    one line of at most 64 characters, or 422 naming them, after the sign-in is checked."""
    async with running_desk(tmp_path, [Session(close_at_end=False)], database) as desk:
        supervisor = await desk.user("boss", "supervisor")
        agent = await desk.user("1001", "agent", "1001")
        for method, path, token, name, problem in (
                ("GET", "/api/calls/a%00b", supervisor, "linkedid", "one line, without control characters"),
                ("GET", "/api/calls/a%00b/recording", supervisor, "linkedid", "one line, without control characters"),
                ("POST", "/api/missed/a%0Ab", agent, "linkedid", "one line, without control characters"),
                ("GET", "/api/calls/" + "1" * 65, supervisor, "linkedid", "at most 64 characters"),
                ("GET", "/api/agents/%00", supervisor, "agent_id", "one line, without control characters"),
                ("GET", "/api/route/1%002", supervisor, "number", "one line, without control characters"),
                ("POST", "/api/cases/1/actions/sign%00", supervisor, "action", "one line, without control characters")):
            refused = await desk.request(method, path, token, expect=422, json={"state": "called_back"})
            assert refused["error"] == {"code": "invalid", "message": "invalid path",
                                        "details": {"fields": {name: problem}}}, path
        await desk.request("GET", "/api/calls/a%00b", expect=401)  # who asks comes first
        await desk.request("GET", "/api/calls/" + "1" * 64, supervisor, expect=404)
        await desk.request("POST", "/api/missed/1.1", agent, expect=404, json={"state": "called_back"})


@pytest.mark.parametrize("first", ['{"type": "auth", "token": 5}', '{"type": "auth", "token": ["a"]}',
                                   '{"type": "auth", "token": "\\ud800"}', '{"type": "auth", "token": null}'])
async def test_a_socket_whose_first_message_holds_no_token_is_refused(tmp_path: Path, first: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A token that is no text raised in the WebSocket's handler after the upgrade: the desk got a broken
    frame (an HTTP 500 written into the socket) and the log a traceback."""
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        async with desk.http.ws_connect(desk.base.replace("http", "ws") + "/api/ws") as ws:
            await ws.send_str(first)
            refused = await ws.receive_json(timeout=5)
            await ws.receive(timeout=5)
            assert ws.close_code == 4401
    assert refused == {"type": "error", "error": {"code": "unauthorized", "message": "send a valid token"}}
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
