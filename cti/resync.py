"""What cti does each time its AMI link opens: catch up with the PBX.

Nothing Asterisk sends later repeats the state of a live call (trace R3), and a
restarted Asterisk forgets its queue members (``persistentmembers = no``, trace
R4b), so after every login:

1. wait for the session's ``FullyBooted``: a starting Asterisk accepts the login
   before app_queue has loaded and answers QueueStatus with "Invalid/unknown
   command" (R4b); a running one sends FullyBooted at once;
2. list the live channels and the queue members, each tried again with backoff
   until it succeeds (or the link drops): the tracker reads the channel list in
   stream order and rebuilds or ends calls, the board reads the members;
3. ask the PBX what the rebuilt calls had dialled (Getvar ``CTI_DIALLED``,
   ``CTI_NEXT``, ``CTI_RECORDING``, which the dialplan sets in [from-carrier]),
   so that each gets its unit, treatment and recording;
4. when Asterisk restarted since the last session (its boot time moved, or it
   said ``Shutdown``), put every agent back into the queues they were in, paused
   as they were: cti is the keeper of who is logged in. With ``persistentmembers
   = yes`` Asterisk restores them itself (R4c) and there is nothing to add; the
   shipped ``no`` leaves it to cti, so that an agent who logged out while the PBX
   was down is not brought back by an old astdb entry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cti.agents.board import AgentBoard, AgentStatus
from cti.agents.directory import Agent
from cti.ami.client import AmiActionError, AmiClient, AmiTimeout
from cti.ami.message import AmiMessage
from cti.calls.events import CallEvent, RouteDecided
from cti.calls.tracker import NoteFactory
from cti.desk.actions import Desk
from cti.pipeline import CallPipeline
from cti.routing.model import Decision

log = logging.getLogger(__name__)

RESTART_TOLERANCE = 5.0  # seconds two sessions' boot times may differ by (Uptime is whole seconds)
RETRY_MIN, RETRY_MAX = 0.5, 10.0
RECOVERED = ("CTI_DIALLED", "CTI_NEXT", "CTI_RECORDING")


@dataclass(frozen=True, slots=True)
class Membership:
    """What cti knew of an agent when the link dropped."""

    queues: tuple[str, ...]
    paused: bool
    reason: str


class Resync:
    def __init__(self, ami: AmiClient, pipeline: CallPipeline, board: AgentBoard, desk: Desk,
                 route: Callable[[str, datetime], Decision], *, boot_timeout: float, node: str = "",
                 on_done: Callable[[], None] = lambda: None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.ami = ami
        self.pipeline = pipeline
        self.board = board
        self.desk = desk
        self.route = route
        self.boot_timeout = boot_timeout
        self.node = node  # the node this resync is of: its agents are the ones it puts back
        self._on_done = on_done
        self._sleep = sleep
        self._booted_at: float | None = None  # when the PBX of the last session started
        self._shutdown = False  # the last session's PBX said it was shutting down
        self._known: dict[str, Membership] = {}
        self.restored = 0  # agents put back after PBX restarts, for the log and tests

    # -- fed by the service ------------------------------------------------------------

    def on_message(self, message: AmiMessage) -> None:
        if message.name == "Shutdown" and message.kind == "event":
            self._shutdown = True
            log.warning("Asterisk is shutting down (restart: %s)", message.get("restart") or "?")

    def on_lost(self) -> None:
        """Remember who was logged in; a restarted PBX will have forgotten."""
        self._known = {s.agent_id: Membership(s.queues, s.paused, s.reason) for s in self.board.all() if s.queues}

    # -- after every login -------------------------------------------------------------

    async def __call__(self) -> None:
        uptime = await self.ami.booted(self.boot_timeout)
        restarted = self._restarted(uptime)
        self.pipeline.on_listing_requested()
        channels = await self._list({"Action": "CoreShowChannels"})
        items = await self._list({"Action": "QueueStatus"})
        members = sum(1 for m in items if m.name == "QueueMember")
        log.info("AMI resync: %d live channels, %d calls tracked, %d queue members%s", len(channels),
                 len(self.pipeline.tracker.calls), members, " (Asterisk restarted)" if restarted else "")
        self._on_done()
        await self._recover_routes()
        if restarted:
            await self._restore_agents()

    def _restarted(self, uptime: int | None) -> bool:
        if uptime is None:
            log.warning("Asterisk sent no FullyBooted within %gs of the login; resynchronising anyway",
                        self.boot_timeout)
            return self._shutdown
        booted_at = time.time() - uptime
        before, self._booted_at = self._booted_at, booted_at
        restarted = self._shutdown or (before is not None and booted_at - before > RESTART_TOLERANCE)
        self._shutdown = False
        return restarted

    async def _list(self, action: dict[str, Any]) -> list[AmiMessage]:
        """A list action, asked again with backoff until Asterisk answers it (AmiDisconnected ends it)."""
        delay = RETRY_MIN
        while True:
            try:
                return await self.ami.collect(dict(action))
            except (AmiActionError, AmiTimeout) as exc:
                log.warning("AMI %s: %s; asking again in %.1fs", action["Action"], exc, delay)
                await self._sleep(delay)
                delay = min(RETRY_MAX, delay * 2)

    async def _recover_routes(self) -> None:
        """Rebuilt calls sit in [cti-next] by now: the dialplan's variables say what they dialled."""
        tracker = self.pipeline.tracker
        for linkedid in list(tracker.unrouted):
            call = tracker.live(linkedid)
            if call is None or not call.citizen_channel:
                continue
            values = {name: await self._getvar(call.citizen_channel, name) for name in RECOVERED}
            number = values["CTI_DIALLED"]
            if not number:
                log.warning("call %s: what was dialled is unknown (no CTI_DIALLED on %s)", linkedid,
                            call.citizen_channel)
                continue
            decision = self.route(number, datetime.fromtimestamp(call.arrived_at, UTC))
            # CTI_NEXT empty: cti did not answer the route request, the dialplan queued the call
            action = decision.action if values["CTI_NEXT"] else "fallback"
            self.pipeline.note(linkedid, linkedid, _recovered(decision, action, call.arrived_at,
                                                              values["CTI_RECORDING"]))

    async def _getvar(self, channel: str, name: str) -> str:
        try:
            return (await self.ami.send({"Action": "Getvar", "Channel": channel, "Variable": name})).get("value")
        except (AmiActionError, AmiTimeout) as exc:
            log.warning("AMI Getvar %s on %s: %s", name, channel, exc)
            return ""

    async def _restore_agents(self) -> None:
        for agent_id, known in self._known.items():
            agent = self.board.directory.get(agent_id)
            now = self.board.status(agent_id)
            if not isinstance(agent, Agent) or now is None or (self.node and self.board.node_of(agent) != self.node):
                continue
            if await self._restore(agent, known, now):
                self.restored += 1

    async def _restore(self, agent: Agent, known: Membership, now: AgentStatus) -> bool:
        missing = [q for q in known.queues if q not in now.queues]
        try:
            for queue in missing:
                await self.desk.join(agent, queue, paused=known.paused, reason=known.reason)
            if not missing and now.paused != known.paused:
                await (self.desk.pause(agent, known.reason) if known.paused else self.desk.ready(agent))
        except (AmiActionError, AmiTimeout) as exc:
            log.error("agent %s not put back into %s after the Asterisk restart: %s", agent.id,
                      ", ".join(missing) or "their pause state", exc)
            return False
        if missing:
            log.info("agent %s put back into %s after the Asterisk restart%s", agent.id, ", ".join(missing),
                     f" (paused: {known.reason})" if known.paused else "")
        return bool(missing) or now.paused != known.paused


def _recovered(decision: Decision, action: str, at: float, recording: str) -> NoteFactory:
    def make(linkedid: str) -> CallEvent:
        return RouteDecided(linkedid, at, decision.number, decision.unit or "", decision.unit_id or "",
                            decision.treatment, action, recording=recording)
    return make
