"""Nothing a person or the PBX sends reaches an AMI action unchecked.

Asterisk's manager takes CR LF or a bare LF as the end of a header line (main/manager.c,
get_input), so a line break inside a value would forge headers, or a whole second action.
Every action is written by one function (cti.ami.action.encode_action), which refuses CR, LF
and NUL in any header before a byte is written; the API refuses them earlier still; text from
the PBX is cleaned where the tracker takes it. Each path is tried here and the bytes the fake
Asterisk received are read back."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cti.ami.action import UnsafeAction, encode_action
from cti.ami.client import AmiUnsafeAction
from cti.cases.model import Case, CaseEvent
from tests.desk_harness import running_desk
from tests.fakeami import FakeAmi, Scripted, Session, first_index, until
from tests.test_desk import AGENT_CHANNEL, CALL, p5_with_pause

FORGED = "x\r\nAction: Originate\r\nChannel: Local/s@default\r\nApplication: System\r\nData: touch /tmp/pwned"


def header_lines(data: bytes) -> list[str]:
    """Every line the PBX would read as a header, bare LF or CR LF ended (as manager.c does)."""
    return [line.rstrip("\r") for line in data.decode("utf-8", "replace").split("\n")]


def forged(server: FakeAmi) -> list[str]:
    """Header lines the PBX would read that no action cti meant to send holds: an Application or
    Data (cti originates into the dialplan only), or more actions than were sent."""
    lines = header_lines(bytes(server.bytes_received))
    sent = sum(len(connection) for connection in server.received)
    actions = [line for line in lines if line.startswith("Action:")]
    return [line for line in lines if line.startswith(("Application:", "Data:"))] + (
        actions if len(actions) != sent else [])


@pytest.mark.parametrize(("value", "what"), [
    ("a\r\nAction: Hangup", "a carriage return (CR) at position 1"),
    ("a\nAction: Hangup", "a line feed (LF) at position 1"),
    ("a\x00b", "a NUL byte at position 1"),
])
def test_a_line_break_or_nul_in_any_header_is_refused_naming_the_header(value: str, what: str) -> None:
    with pytest.raises(UnsafeAction) as refused:
        encode_action({"Action": "QueuePause", "Interface": "PJSIP/agent1001", "Reason": value})
    assert str(refused.value) == f"AMI QueuePause not sent: header 'Reason' holds {what}"
    with pytest.raises(UnsafeAction, match="header 'Variable' holds a line feed"):
        encode_action({"Action": "Originate", "Variable": ["CTI_CASE=1", "X=\n"]})


def test_a_header_name_must_be_a_plain_token() -> None:
    with pytest.raises(UnsafeAction, match="header 'Bad: name' is not a header name"):
        encode_action({"Action": "Ping", "Bad: name": "x"})


def test_an_action_is_written_action_first_with_repeated_headers() -> None:
    assert encode_action({"ActionID": "7", "Action": "Originate", "Variable": ["A=1", "B=2"]}) == (
        b"Action: Originate\r\nActionID: 7\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n")


async def test_a_forged_pause_reason_never_reaches_the_wire(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        await until(lambda: desk.service.ami.connected.is_set(), what="the AMI link")
        refused = await desk.request("POST", "/api/agents/1001/pause", agent, expect=422,
                                     json={"reason": "培训\r\nAction: Hangup"})
        assert refused["error"]["details"]["fields"] == {"reason": "one line, without control characters"}
        # past the API too (a bug, a future caller): the one place that writes actions refuses it
        person = desk.service.configuration.directory.get("1001")
        with pytest.raises(AmiUnsafeAction, match="header 'Reason' holds a carriage return"):
            await desk.service.desk.pause(person, FORGED)  # type: ignore[arg-type]
        await desk.request("POST", "/api/agents/1001/pause", agent, json={"reason": "培训"})
        await until(lambda: desk.server.actions("QueuePause"), what="the good pause")
    assert [a["Reason"] for a in desk.server.actions("QueuePause")] == ["培训"]
    assert forged(desk.server) == []


async def test_a_case_number_that_is_no_number_is_never_dialled(tmp_path: Path) -> None:
    """A case's caller_number went into the callback Originate's Channel and Exten, on every retry.
    Now the API takes only a dialable number, and a case that has another (an old row, an import)
    is not called back: nobody can call it, so it closes as unreachable."""
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        refused = await desk.request("POST", "/api/cases", agent, expect=422, json={
            "caller_number": "138\r\nAction: Originate", "category": "consultation", "content": "问"})
        assert refused["error"]["details"]["fields"] == {"caller_number": "one line, without control characters"}
        refused = await desk.request("POST", "/api/cases", agent, expect=422, json={
            "caller_number": "138 0000; rm", "category": "consultation", "content": "问"})
        assert refused["error"]["details"]["fields"] == {
            "caller_number": "a telephone number: digits, optionally a leading +"}
        await until(lambda: desk.service.ami.connected.is_set(), what="the AMI link")
        cases = desk.service.cases
        now = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # 11:00 in Beijing: within the callback hours
        stored = await cases.store.create(*cases._new(caller_number=FORGED.replace("x", "13800000001", 1),
                                                      caller_name="", category="consultation", content="问",
                                                      actor="import", role="supervisor"), "")
        replied = dataclasses.replace(stored, state="replied", replied_at=now - timedelta(hours=1),
                                      next_callback_at=now - timedelta(minutes=1), unit="market-regulation",
                                      version=stored.version + 1)
        await cases.store.save(stored, replied, _event(stored, now))
        cases.clock = lambda: now
        await cases.sweep()
        after = await cases.get(stored.id)
        assert (after.state, after.satisfaction) == ("closed", "unreachable")
        await asyncio.sleep(0.2)
    assert desk.server.actions("Originate") == []
    assert forged(desk.server) == []


def _event(case: Case, at: datetime) -> CaseEvent:
    return CaseEvent(case.id, at, "import", "supervisor", "reply", "accepted", "replied", {})


async def test_a_callers_name_with_a_line_break_is_cleaned_before_any_action(tmp_path: Path) -> None:
    """A caller name from the carrier with a lone LF inside a CR LF message (the framer keeps it in the
    value) would go into the three-way call's CallerID and forge headers there."""
    session, start, talk = p5_with_pause()
    newchannel = first_index(session, b"Event: Newchannel", b"Channel: PJSIP/carrier-0000000f")
    item = session.script[newchannel]
    session.script[newchannel] = Scripted(item.raw.replace(
        b"CallerIDName: Citizen\r\n", b"CallerIDName: Citizen\nApplication: System\rX\r\n", 1))
    async with running_desk(tmp_path, [session]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        start.set()
        await until(lambda: CALL in desk.service.tracker.calls
                    and desk.service.tracker.calls[CALL].answered_at is not None, what="the answer")
        assert desk.service.tracker.calls[CALL].caller_name == "CitizenApplication: SystemX"
        await desk.request("POST", f"/api/calls/{CALL}/transfer", agent,
                           json={"target": "seat-12369", "kind": "conference"})
        await until(lambda: desk.server.actions("Originate"), what="the third party's Originate")
        talk.set()
    [originate] = desk.server.actions("Originate")
    assert originate["CallerID"] == '"CitizenApplication: SystemX" <13800000043>'
    assert forged(desk.server) == []
    assert AGENT_CHANNEL in {a.get("ExtraChannel") for a in desk.server.actions("Redirect")}

