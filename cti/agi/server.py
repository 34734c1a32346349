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

ENVIRONMENT_TIMEOUT = 10.0  # res_agi sends the whole environment block at once
REPLY_TIMEOUT = 120.0  # a prompt plus a survey's retries; Asterisk answers every command
STREAM_LIMIT = MAX_ENVIRONMENT_BYTES  # the longest line (or environment block) read: longer ends the session
MAX_USAGE_LINES = 200  # lines of a 520 usage block; more ends the session


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
    caller_name: str = ""
    recording: str = ""  # route: the file the dialplan records the call into (its third argument)


Router = Callable[[str, datetime], Decision]
DecisionListener = Callable[[AgiCall, Decision, float], None]
OutcomeListener = Callable[[AgiCall, str, Outcome, float], None]
NodeListener = Callable[[AgiCall, str, float], None]  # the call, the near part's Linkedid as sent, the time


class FastAgiServer:
    def __init__(self, router: Router, flows: Callable[[], dict[str, Flow]], *,
                 on_decision: DecisionListener | None = None, on_outcome: OutcomeListener | None = None,
                 on_node: NodeListener | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 environment_timeout: float = ENVIRONMENT_TIMEOUT, reply_timeout: float = REPLY_TIMEOUT) -> None:
        self._route = router
        self._flows = flows
        self._on_decision = on_decision
        self._on_outcome = on_outcome
        self._on_node = on_node
        self._now = now
        self._environment_timeout = environment_timeout
        self._reply_timeout = reply_timeout
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self.sessions = 0

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._session, host, port, limit=STREAM_LIMIT)
        bound: int = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI listening on %s:%d", host, bound)
        return bound

    async def close(self) -> None:
        """Stop listening and end the sessions under way (before wait_closed, which waits for them since 3.12)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        if self._sessions:
            await asyncio.wait(self._sessions, timeout=2)
        if self._server is not None:
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        self.sessions += 1
        peer = writer.get_extra_info("peername")
        try:
            env = await _read(reader, self._environment_timeout, "AGI environment", b"\n\n")
            if env is None:
                log.info("FastAGI session from %s closed inside its AGI environment", peer)
                return
            await self._serve(_call_of(parse_environment(env)), reader, writer)
        except AgiProtocolError as exc:  # a timed-out read too
            # AGISTATUS stays SUCCESS when cti closes (res_agi's run_agi), but CTI_NEXT is "": the dialplan queues
            log.warning("FastAGI session from %s dropped: %s", peer, exc)
        except ConnectionError as exc:
            log.info("FastAGI session from %s ended early: %s", peer, exc or type(exc).__name__)
        except asyncio.CancelledError:  # cti is shutting down; Asterisk's dialplan falls back to the queue
            log.info("FastAGI session from %s closed at shutdown", peer)
        finally:
            self._sessions.discard(task)
            writer.close()

    async def _serve(self, call: AgiCall, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if call.script == "node":  # [from-node]: another node sent the call; nothing to ask the caller
            if self._on_node is not None:
                self._on_node(call, call.env.get("agi_arg_3", ""), self._now().timestamp())
            return
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
        try:
            while command is not None:
                writer.write(command.encode() + b"\n")
                await writer.drain()
                line = await _read_reply(reader, run, command, self._reply_timeout)
                if line is None:
                    break
                command = run.reply(parse_reply(line))
        finally:  # however the session ended: cut short, the outcome has no next step
            log.info("FastAGI %s %s (%s) -> %s%s", call.script, call.number, call.channel,
                     decision.action if decision else flow.name,
                     " [caller hung up]" if run.outcome.hung_up else "" if command is None else " [cut short]")
            if self._on_outcome is not None:
                self._on_outcome(call, flow.name, run.outcome, self._now().timestamp())


async def _read(reader: asyncio.StreamReader, timeout: float, what: str, end: bytes = b"\n") -> str | None:
    """Every read of a session: up to ``end`` within ``timeout``, None when the peer closed the connection.
    A read that times out or runs past STREAM_LIMIT is an AgiProtocolError: the session ends."""
    try:
        raw = await asyncio.wait_for(reader.readuntil(end), timeout)
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        raise AgiProtocolError(f"{what} longer than {STREAM_LIMIT} bytes") from None
    except TimeoutError:
        raise AgiProtocolError(f"no {what} within {timeout:g} s") from None
    return raw.decode("utf-8", "replace").rstrip("\r\n")


async def _read_reply(reader: asyncio.StreamReader, run: FlowRun, command: str, timeout: float) -> str | None:
    """The reply to ``command``; a ``HANGUP`` notice on the way is noted, not returned. None when the
    connection closed: for the flow, the caller hung up."""
    while (line := await _read(reader, timeout, f"reply to {command.split(' ', 1)[0]!r}")) == HANGUP_LINE:
        run.caller_hung_up()
    if line is not None and line.startswith("520-"):
        # res_agi.c, after the usage text: ast_agi_send(agi->fd, chan, "520 End of proper usage.\n");
        for _ in range(MAX_USAGE_LINES):
            line = await _read(reader, timeout, "line of a 520 usage block")
            if line is None or line.startswith("520 "):
                break
        else:
            raise AgiProtocolError(f"520 usage block longer than {MAX_USAGE_LINES} lines")
    if line is None:
        run.caller_hung_up()
    return line


def _call_of(env: dict[str, str]) -> AgiCall:
    return AgiCall(
        script=script_of(env), uniqueid=env.get("agi_uniqueid", ""), linkedid=env.get("agi_arg_2", ""),
        channel=env.get("agi_channel", ""),
        number=env.get("agi_arg_1") or env.get("agi_extension", ""), caller=env.get("agi_callerid", ""), env=env,
        caller_name=env.get("agi_calleridname", ""),
        recording=env.get("agi_arg_3", "") if script_of(env) == "route" else "",
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
