"""The FastAGI service over TCP, against a peer that speaks as Asterisk's res_agi does."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cti.agi.server import AgiCall, FastAgiServer
from cti.configuration import load_configuration
from cti.ivr.engine import Outcome
from cti.routing.model import Decision
from cti.routing.router import decide
from cti.settings import Settings
from tests.conftest import REPO

CONFIG = load_configuration(Settings(source=str(REPO / "cti.yaml")))
SPRING_2020 = datetime(2020, 3, 2, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def environment(script: str, number: str, uniqueid: str = "1795281884.19", linkedid: str = "1795281884.19") -> bytes:
    """The opening block res_agi sends to a FastAGI server (setup_env, in its order)."""
    lines = [
        "agi_network: yes", f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1:4573/{script}", "agi_channel: PJSIP/carrier-0000000f",
        "agi_language: zh", "agi_type: PJSIP", f"agi_uniqueid: {uniqueid}", "agi_version: 22.10.1",
        "agi_callerid: 13800000043", "agi_calleridname: 市民张三", "agi_callingpres: 0", "agi_callingani2: 0",
        "agi_callington: 0", "agi_callingtns: 0", f"agi_dnid: {number}", "agi_rdnis: unknown",
        "agi_context: from-carrier", f"agi_extension: {number}", "agi_priority: 4", "agi_enhanced: 0.0",
        "agi_accountcode: ", "agi_threadid: 140123456789", f"agi_arg_1: {number}", f"agi_arg_2: {linkedid}",
    ]
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
    def __init__(self) -> None:
        self.decisions: list[tuple[AgiCall, Decision]] = []
        self.outcomes: list[tuple[str, Outcome]] = []
        self.server = FastAgiServer(lambda number, at: decide(CONFIG.trunk_map, number, at), lambda: CONFIG.flows,
                                    on_decision=lambda call, d, at: self.decisions.append((call, d)),
                                    on_outcome=lambda call, flow, o, at: self.outcomes.append((flow, o)),
                                    now=lambda: SPRING_2020)

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
