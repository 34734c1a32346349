"""The FastAGI service over TCP, against a peer that speaks as Asterisk's res_agi does."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cti.agi.server import MAX_USAGE_LINES, STREAM_LIMIT, AgiCall, FastAgiServer
from cti.configuration import load_configuration
from cti.ivr.engine import Outcome
from cti.routing.model import Decision
from cti.routing.router import decide
from cti.settings import Settings
from tests.conftest import REPO

CONFIG = load_configuration(Settings(source=str(REPO / "cti.yaml")))
SPRING_2020 = datetime(2020, 3, 2, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def environment(script: str, number: str, uniqueid: str = "1795281884.19", linkedid: str = "1795281884.19",
                recording: str = "") -> bytes:
    """The opening block res_agi sends to a FastAGI server (setup_env, in its order); the route's
    third argument is the file the dialplan will record the call into."""
    lines = [
        "agi_network: yes", f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1:4573/{script}", "agi_channel: PJSIP/carrier-0000000f",
        "agi_language: zh", "agi_type: PJSIP", f"agi_uniqueid: {uniqueid}", "agi_version: 22.10.1",
        "agi_callerid: 13800000043", "agi_calleridname: 市民张三", "agi_callingpres: 0", "agi_callingani2: 0",
        "agi_callington: 0", "agi_callingtns: 0", f"agi_dnid: {number}", "agi_rdnis: unknown",
        "agi_context: from-carrier", f"agi_extension: {number}", "agi_priority: 4", "agi_enhanced: 0.0",
        "agi_accountcode: ", "agi_threadid: 140123456789", f"agi_arg_1: {number}", f"agi_arg_2: {linkedid}",
    ] + ([f"agi_arg_3: {recording}"] if recording else [])
    return ("\n".join(lines) + "\n\n").encode()


class Asterisk:
    """The PBX side of one AGI session: answers each command like res_agi."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.commands: list[str] = []

    async def session(self, env: bytes, answer) -> list[str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(env)
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), 5)
            if not line:
                break
            command = line.decode().rstrip("\n")
            self.commands.append(command)
            reply = answer(command)
            if reply is None:  # the caller hangs up without a word
                break
            writer.write(reply.encode())
            await writer.drain()
        writer.close()
        return self.commands


def normal(command: str) -> str:
    if command == "ANSWER":
        return "200 result=0\n"
    if command.startswith("STREAM FILE"):
        return "200 result=0 endpos=68160\n"
    if command.startswith("SET VARIABLE"):
        return "200 result=1\n"
    raise AssertionError(f"unexpected command {command!r}")


class Service:
    def __init__(self, **timeouts: float) -> None:
        self.decisions: list[tuple[AgiCall, Decision]] = []
        self.outcomes: list[tuple[str, Outcome]] = []
        self.server = FastAgiServer(lambda number, at: decide(CONFIG.trunk_map, number, at), lambda: CONFIG.flows,
                                    on_decision=lambda call, d, at: self.decisions.append((call, d)),
                                    on_outcome=lambda call, flow, o, at: self.outcomes.append((flow, o)),
                                    now=lambda: SPRING_2020, **timeouts)

    async def __aenter__(self) -> Asterisk:
        return Asterisk(await self.server.start("127.0.0.1", 0))

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()

    async def settled(self) -> None:
        for _ in range(200):
            if self.outcomes:
                return
            await asyncio.sleep(0.005)


@pytest.mark.parametrize(("number", "commands", "next_step"), [
    ("2666110", ["ANSWER", 'STREAM FILE cti/moved-to-12345 ""', 'SET VARIABLE CTI_QUEUE "q12345"',
                 'SET VARIABLE CTI_NEXT "queue"'], "queue"),
    ("12315", ['SET VARIABLE CTI_DIAL "Local/q12345@cti-queue/n&PJSIP/seat-12315"',
               'SET VARIABLE CTI_DIAL_TIMEOUT "30"', 'SET VARIABLE CTI_FALLBACK "queue"',
               'SET VARIABLE CTI_QUEUE "q12345"', 'SET VARIABLE CTI_NEXT "dial"'], "dial"),
    ("110", ['SET VARIABLE CTI_DIAL "PJSIP/110@carrier"', 'SET VARIABLE CTI_DIAL_TIMEOUT "60"',
             'SET VARIABLE CTI_FALLBACK "hangup"', 'SET VARIABLE CTI_QUEUE ""', 'SET VARIABLE CTI_NEXT "dial"'],
     "dial"),
    ("12388", ["ANSWER", 'STREAM FILE cti/guidance-12388 ""', 'SET VARIABLE CTI_NEXT "hangup"'], "hangup"),
    ("12345", ['SET VARIABLE CTI_QUEUE "q12345"', 'SET VARIABLE CTI_NEXT "queue"'], "queue"),
])
async def test_route_requests(number: str, commands: list[str], next_step: str) -> None:
    service = Service()
    async with service as asterisk:
        sent = await asterisk.session(environment("route", number), normal)
        await service.settled()
    assert sent == commands
    [(call, decision)] = service.decisions
    assert (call.number, call.uniqueid, call.linkedid, call.channel) == (
        number, "1795281884.19", "1795281884.19", "PJSIP/carrier-0000000f")
    assert decision.number == number
    [(_, outcome)] = service.outcomes
    assert (outcome.next, outcome.hung_up) == (next_step, False)


async def test_a_caller_hanging_up_during_the_notice_ends_the_session() -> None:
    """res_agi sends HANGUP, then STREAM FILE's own result=-1; cti must send nothing more."""
    service = Service()

    def hang_up(command: str) -> str:
        if command.startswith("STREAM FILE"):
            return "HANGUP\n200 result=-1 endpos=8000\n"
        return normal(command)

    async with service as asterisk:
        sent = await asterisk.session(environment("route", "2666110"), hang_up)
        await service.settled()
    assert sent == ["ANSWER", 'STREAM FILE cti/moved-to-12345 ""']
    [(flow, outcome)] = service.outcomes
    assert (flow, outcome.next, outcome.hung_up) == ("notice_then_queue", "", True)


async def test_a_dead_channel_reply_ends_the_session() -> None:
    service = Service()

    def dead(command: str) -> str:
        if command == "ANSWER":
            return "511 Command Not Permitted on a dead channel or intercept routine\n"
        return normal(command)

    async with service as asterisk:
        sent = await asterisk.session(environment("route", "12388"), dead)
        await service.settled()
    assert sent == ["ANSWER"]
    assert service.outcomes[0][1].hung_up


async def test_asterisk_closing_the_socket_mid_session() -> None:
    service = Service()
    async with service as asterisk:
        sent = await asterisk.session(environment("route", "2666110"),
                                      lambda c: None if c.startswith("STREAM") else normal(c))
        await service.settled()
    assert sent == ["ANSWER", 'STREAM FILE cti/moved-to-12345 ""']
    assert service.outcomes[0][1].hung_up


async def test_the_satisfaction_survey_retries_an_invalid_key() -> None:
    service = Service()
    keys = iter(["200 result=5\n", "200 result= (timeout)\n", "200 result=3\n"])

    def caller(command: str) -> str:
        return next(keys) if command.startswith("GET DATA") else normal(command)

    async with service as asterisk:
        sent = await asterisk.session(environment("survey", "13800000008"), caller)
        await service.settled()
    assert sent == ["ANSWER", "GET DATA cti/survey-question 6000 1", 'STREAM FILE cti/survey-invalid ""',
                    "GET DATA cti/survey-question 6000 1", 'STREAM FILE cti/survey-invalid ""',
                    "GET DATA cti/survey-question 6000 1", 'STREAM FILE cti/survey-thanks ""',
                    'SET VARIABLE CTI_NEXT "hangup"']
    [(flow, outcome)] = service.outcomes
    assert (flow, outcome.answers, outcome.next) == ("survey", {"satisfaction": "3"}, "hangup")


async def test_a_malformed_request_is_dropped_and_the_service_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    service = Service()
    async with service as asterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", asterisk.port)
        writer.write(b"GET / HTTP/1.1\nHost: x\n\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed on it
        writer.close()
        sent = await asterisk.session(environment("route", "12345"), normal)
    assert "line 1 of the AGI environment is not 'agi_name: value'" in caplog.text
    assert sent[-1] == 'SET VARIABLE CTI_NEXT "queue"'


async def test_an_unknown_script_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    service = Service()
    async with service as asterisk:
        sent = await asterisk.session(environment("menu", "12345"), normal)
    assert sent == []
    assert "unknown AGI script 'menu' (channel PJSIP/carrier-0000000f)" in caplog.text


USAGE = "520-Invalid command syntax.  Proper usage follows:\n Usage: ANSWER\n"  # res_agi's usage block, uncut
USAGE_END = "520 End of proper usage.\n"


async def cut(port: int, sent: bytes, reply: bytes | None = None) -> list[str]:
    """A peer that sends ``sent``, answers the first command with ``reply`` (when given), then closes its side;
    the commands the server sent, read until it closes the connection too."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    commands = []
    if reply is not None:
        commands.append((await asyncio.wait_for(reader.readline(), 5)).decode().rstrip("\n"))
        writer.write(reply)
    writer.write_eof()
    commands += await closed(reader)
    writer.close()
    return commands


async def closed(reader: asyncio.StreamReader) -> list[str]:
    """What the server still sends before it closes the connection (a reset counts as closed)."""
    try:
        rest = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        rest = b""
    return rest.decode().splitlines()


async def test_a_well_formed_usage_block_is_one_reply_and_the_flow_goes_on() -> None:
    service = Service()
    async with service as asterisk:
        sent = await asterisk.session(environment("route", "2666110"),
                                      lambda c: USAGE + USAGE_END if c == "ANSWER" else normal(c))
        await service.settled()
    assert sent == ["ANSWER", 'STREAM FILE cti/moved-to-12345 ""', 'SET VARIABLE CTI_QUEUE "q12345"',
                    'SET VARIABLE CTI_NEXT "queue"']


async def test_a_usage_block_cut_by_eof_ends_the_session_and_the_loop_keeps_serving() -> None:
    """Issue 10 item 3: readline() returning b"" inside a 520- block spun the event loop forever."""
    service = Service()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async with service as asterisk:
        clock = asyncio.create_task(ticker())
        cut_short, served = await asyncio.gather(
            cut(asterisk.port, environment("route", "2666110"), USAGE.encode()),
            asterisk.session(environment("route", "12345", uniqueid="1795281884.20"), normal))
        before = ticks
        await asyncio.sleep(0.05)  # the loop still runs other tasks once the cut session is gone
        clock.cancel()
        await service.settled()
    assert cut_short == ["ANSWER"]
    assert served == ['SET VARIABLE CTI_QUEUE "q12345"', 'SET VARIABLE CTI_NEXT "queue"']
    assert ticks > before
    outcomes = dict(service.outcomes)
    assert (outcomes["notice_then_queue"].next, outcomes["notice_then_queue"].hung_up) == ("", True)
    assert outcomes["queue"].next == "queue"


@pytest.mark.parametrize("reply", [b"", b"HANGUP\n", b"200 res"], ids=["before-the-reply", "after-hangup",
                                                                     "inside-the-reply"])
async def test_eof_before_a_reply_is_the_caller_hanging_up(reply: bytes) -> None:
    service = Service()
    async with service as asterisk:
        sent = await cut(asterisk.port, environment("route", "2666110"), reply)
        await service.settled()
    assert sent == ["ANSWER"]
    [(flow, outcome)] = service.outcomes
    assert (flow, outcome.next, outcome.hung_up) == ("notice_then_queue", "", True)


async def test_eof_inside_the_environment_ends_the_session(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "cti.agi.server")
    service = Service()
    async with service as asterisk:
        assert await cut(asterisk.port, environment("route", "12345")[:200]) == []
        sent = await asterisk.session(environment("route", "12345"), normal)
    assert "closed inside its AGI environment" in caplog.text
    assert [flow for flow, _ in service.outcomes] == ["queue"]
    assert sent[-1] == 'SET VARIABLE CTI_NEXT "queue"'


@pytest.mark.parametrize(("sent", "reply", "error"), [
    (environment("route", "2666110"), b"200 result=0 " + b"x" * STREAM_LIMIT + b"\n",
     f"reply to 'ANSWER' longer than {STREAM_LIMIT} bytes"),
    (b"agi_network: yes\nagi_x: " + b"y" * STREAM_LIMIT + b"\n\n", None,
     f"AGI environment longer than {STREAM_LIMIT} bytes"),
], ids=["reply", "environment"])
async def test_an_over_long_line_ends_the_session_with_a_warning(
        sent: bytes, reply: bytes | None, error: str, caplog: pytest.LogCaptureFixture) -> None:
    service = Service()
    async with service as asterisk:
        await cut(asterisk.port, sent, reply)
        good = await asterisk.session(environment("route", "12345"), normal)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "FastAGI session from ('127.0.0.1', " in warning.getMessage()
    assert warning.getMessage().endswith(f"dropped: {error}")
    assert good[-1] == 'SET VARIABLE CTI_NEXT "queue"'


async def test_a_silent_peer_after_the_environment_is_dropped_at_the_reply_timeout(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "cti.agi.server")
    service = Service(reply_timeout=0.2)
    async with service as asterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", asterisk.port)
        writer.write(environment("route", "2666110"))
        assert await asyncio.wait_for(reader.readline(), 5) == b"ANSWER\n"
        asked = time.monotonic()
        assert await closed(reader) == []
        waited = time.monotonic() - asked
        writer.close()
    assert 0.15 < waited < 2
    [(flow, outcome)] = service.outcomes  # the flow was cut short: no next step, and the caller did not hang up
    assert (flow, outcome.next, outcome.hung_up) == ("notice_then_queue", "", False)
    assert "dropped: no reply to 'ANSWER' within 0.2 s" in caplog.text
    assert "-> notice_then_queue [cut short]" in caplog.text


async def test_a_peer_silent_before_its_environment_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    service = Service(environment_timeout=0.2)
    async with service as asterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", asterisk.port)
        assert await closed(reader) == []
        writer.close()
    assert "dropped: no AGI environment within 0.2 s" in caplog.text
    assert service.outcomes == []


async def test_a_usage_block_longer_than_the_bound_ends_the_session(caplog: pytest.LogCaptureFixture) -> None:
    service = Service()
    endless = USAGE + " more usage\n" * MAX_USAGE_LINES + USAGE_END
    async with service as asterisk:
        sent = await asterisk.session(environment("route", "2666110"),
                                      lambda c: endless if c == "ANSWER" else normal(c))
        await service.settled()
    assert sent == ["ANSWER"]
    assert f"dropped: 520 usage block longer than {MAX_USAGE_LINES} lines" in caplog.text
    assert service.outcomes[0][1].next == ""


async def test_shutdown_ends_a_stuck_session_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "cti.agi.server")
    service = Service()  # the default timeouts: 10 s and 120 s
    async with service as asterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", asterisk.port)
        writer.write(environment("route", "2666110") + b"200 result=0\n")  # then silence, after STREAM FILE
        assert await asyncio.wait_for(reader.readline(), 5) == b"ANSWER\n"
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"STREAM FILE")
        started = time.monotonic()
        await service.server.close()
        assert time.monotonic() - started < 1
        assert await closed(reader) == []
        writer.close()
    assert "closed at shutdown" in caplog.text
