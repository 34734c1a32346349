"""The FastAGI service: Asterisk asks "route this call", cti answers by running a flow.

The dialplan calls ``AGI(agi://cti:4573/route,${EXTEN},${CHANNEL(linkedid)})``.
cti decides with the router, runs the decision's IVR flow (the notice, the
guidance…) and hands the call back with channel variables (``CTI_NEXT``,
``CTI_QUEUE``, ``CTI_DIAL``…). When cti is down or says nothing, the dialplan
sends the call to the 12345 queue: no call is lost because cti is.

Written on asyncio streams rather than panoramisk.fast_agi, whose 1.4 handler
spins forever on a connection closed before its environment and wraps plain
functions with ``asyncio.coroutine``, gone since Python 3.11.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cti.agi.protocol import (
    HANGUP_LINE,
    MAX_ENVIRONMENT_BYTES,
    AgiProtocolError,
    parse_environment,
    parse_reply,
    script_of,
)
from cti.ivr.engine import FlowRun, Outcome
from cti.ivr.flows import Flow
from cti.routing.model import Decision

log = logging.getLogger(__name__)

REPLY_TIMEOUT = 120.0  # a prompt plus a survey's retries; Asterisk answers every command


@dataclass(frozen=True, slots=True)
class AgiCall:
    """Who is asking, from the AGI environment."""

    script: str
    uniqueid: str
    linkedid: str
    channel: str
    number: str
    caller: str
    env: dict[str, str]


Router = Callable[[str, datetime], Decision]
DecisionListener = Callable[[AgiCall, Decision, float], None]
OutcomeListener = Callable[[AgiCall, str, Outcome, float], None]


class FastAgiServer:
    def __init__(self, router: Router, flows: Callable[[], dict[str, Flow]], *,
                 on_decision: DecisionListener | None = None, on_outcome: OutcomeListener | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._route = router
        self._flows = flows
        self._on_decision = on_decision
        self._on_outcome = on_outcome
        self._now = now
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self.sessions = 0

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._session, host, port)
        bound = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI listening on %s:%d", host, bound)
        return bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.wait(self._sessions, timeout=2)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        self.sessions += 1
        peer = writer.get_extra_info("peername")
        try:
            env = await _read_environment(reader)
            call = _call_of(env)
            await self._serve(call, reader, writer)
        except AgiProtocolError as exc:
            log.warning("FastAGI session from %s dropped: %s", peer, exc)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.info("FastAGI session from %s ended early: %s", peer, exc or type(exc).__name__)
        except asyncio.CancelledError:  # cti is shutting down; Asterisk's dialplan falls back to the queue
            log.info("FastAGI session from %s closed at shutdown", peer)
        finally:
            self._sessions.discard(task)
            writer.close()

    async def _serve(self, call: AgiCall, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        flows = self._flows()
        if call.script == "route":
            decision = self._route(call.number, self._now())
            if self._on_decision is not None:
                self._on_decision(call, decision, self._now().timestamp())
            flow, variables = flows[decision.action], _variables(decision)
        elif call.script in flows:
            decision, flow, variables = None, flows[call.script], {"number": call.number}
        else:
            raise AgiProtocolError(f"unknown AGI script {call.script!r} (channel {call.channel})")
        run = FlowRun(flow, variables)
        command = run.start()
        while command is not None:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            line = await _read_reply(reader, run)
            if line is None:
                break
            command = run.reply(parse_reply(line))
        log.info("FastAGI %s %s (%s) -> %s%s", call.script, call.number, call.channel,
                 decision.action if decision else flow.name, " [caller hung up]" if run.outcome.hung_up else "")
        if self._on_outcome is not None:
            self._on_outcome(call, flow.name, run.outcome, self._now().timestamp())


async def _read_environment(reader: asyncio.StreamReader) -> dict[str, str]:
    try:
        block = await asyncio.wait_for(reader.readuntil(b"\n\n"), 10)
    except asyncio.LimitOverrunError:
        raise AgiProtocolError(f"AGI environment larger than {MAX_ENVIRONMENT_BYTES} bytes") from None
    except asyncio.IncompleteReadError as exc:
        raise AgiProtocolError(f"connection closed inside the AGI environment ({len(exc.partial)} bytes)") from None
    return parse_environment(block.decode("utf-8", "replace"))


async def _read_reply(reader: asyncio.StreamReader, run: FlowRun) -> str | None:
    """The next reply line; a ``HANGUP`` notice on the way is noted, not returned."""
    while True:
        raw = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
        if not raw:
            run.caller_hung_up()
            return None  # Asterisk closed the session
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line == HANGUP_LINE:
            run.caller_hung_up()
            continue
        if line.startswith("520-"):  # usage text follows until "520 End of proper usage."
            while not line.startswith("520 "):
                line = (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n")
        return line


def _call_of(env: dict[str, str]) -> AgiCall:
    return AgiCall(
        script=script_of(env), uniqueid=env.get("agi_uniqueid", ""), linkedid=env.get("agi_arg_2", ""),
        channel=env.get("agi_channel", ""),
        number=env.get("agi_arg_1") or env.get("agi_extension", ""), caller=env.get("agi_callerid", ""), env=env,
    )


def _variables(decision: Decision) -> dict[str, str]:
    queues = [t.split(":", 1)[1] for t in decision.targets if t.startswith("queue:")]
    queue = queues[0] if queues else ""
    dial = "&".join(f"Local/{t.split(':', 1)[1]}@cti-queue/n" if t.startswith("queue:") else t
                    for t in decision.targets)
    return {
        "number": decision.number, "unit": decision.unit or "", "treatment": decision.treatment,
        "prompt": decision.prompt or "", "queue": queue, "dial": dial,
        "dial_timeout": str(decision.ring_timeout or 60),
        "fallback": "queue" if queue else "hangup",
    }
