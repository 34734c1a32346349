"""The wallboard's feed: a snapshot for each supervisor's or admin's socket as it opens, then what changed,
pushed over the same WebSocket (no polling).

The view is kept, not rebuilt: BoardView mirrors the live calls and the agents and seats as last sent, and
an update looks only at what was marked changed since (the calls named by domain events, the agents the
agent board reported). Rebuilding it whole (1,500 agents, 1,000 live calls) five times a second was a fifth
of cti's time at 100 arrivals a second. The tracker changes a few things with no event of their own (a
caller's number from NewCallerid, an agent's leg going), so each second's tick compares the mirror with
the tracker's calls: whatever an event did not say shows within a second.

Changes are coalesced: the first change after a quiet spell is sent at once (on the next turn of the event
loop), later ones at most every ``interval`` seconds, each update holding the agents and seats that changed
since the last one and, of the small parts (queue, today, the window, units, pbx), those that changed. Each
update has the next sequence number (``seq``) and the snapshot the last one folded into it: a client that
sees a number skipped asks for the board whole again (it reconnects). A tick each second checks the alerts
(a wait grows with no event) and the day's rollover. The figures are cti.stats.live's; callers are masked as
a unit sees a confidential caller (cti.privacy): a wall screen stands in a public office.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from cti.agents.board import AgentBoard, AgentStatus
from cti.agents.directory import Directory, Seat, Supervisor
from cti.calls.events import CallEvent
from cti.calls.record import CallRecord, LiveCall
from cti.privacy import mask
from cti.stats.calls import call_sums
from cti.stats.live import Alerts, LiveFigures, Thresholds, day_bounds, is_waiting, wait_started
from cti.stats.rows import total
from cti.web.hub import PopHub

log = logging.getLogger(__name__)
QUEUE_SHOWN = 12  # waiting callers listed (the longest waits); the count is of all
PARTS = ("queue", "today", "window", "units", "pbx")  # the board's small parts, sent whole when they change


def _call(call: LiveCall) -> dict[str, Any]:
    return {"linkedid": call.linkedid, "caller": mask(call.caller_number) if call.caller_number else "",
            "dialled_number": call.dialled_number, "unit": call.unit, "unit_id": call.unit_id,
            "arrived_at": call.arrived_at, "answered_at": call.answered_at}


def _holder(call: LiveCall, directory: Directory) -> str | None:
    """The agent or seat the board shows on this call: the person whose phone answered it, while their leg
    is up."""
    if call.answered_at is None or not call.agent_channel:
        return None
    person = directory.by_phone(call.answered_by)
    return person.id if person is not None and not isinstance(person, Supervisor) else None


def _shown(calls: dict[str, LiveCall]) -> LiveCall | None:
    """Of the calls one person holds (rare: a conference), the one shown: the last answered."""
    return max(calls.values(), key=lambda c: (c.answered_at or 0.0, c.linkedid), default=None)


class BoardView:
    """The agents, seats and live calls as the board shows them, moved by what changed. Pure.

    ``call_changed`` and ``person_changed`` mark; ``changes`` applies the marks and returns the agents and
    seats whose shown form differs from what it returned before. ``rebuild`` starts it from the sources whole
    (the first socket, a new directory)."""

    def __init__(self, statuses: Callable[[], Sequence[AgentStatus]], status: Callable[[str], AgentStatus | None],
                 live: Callable[[str], LiveCall | None], live_calls: Callable[[], list[LiveCall]],
                 directory: Callable[[], Directory]) -> None:
        self._statuses, self._status, self._live, self._live_calls = statuses, status, live, live_calls
        self._directory = directory
        self.directory: Directory | None = None  # the one the view was built from (None: not built)
        self.calls: dict[str, LiveCall] = {}  # linkedid -> the live call
        self._held: dict[str, dict[str, LiveCall]] = {}  # person id -> the calls they are on
        self._holders: dict[str, str] = {}  # linkedid -> the person on it
        self.agents: dict[str, dict[str, Any]] = {}  # agent id -> as last returned
        self.seats: dict[str, dict[str, Any]] = {}
        self._dirty_calls: set[str] = set()
        self._dirty_people: set[str] = set()

    @property
    def built(self) -> bool:
        return self.directory is not None

    def forget(self) -> None:
        """Nobody looks: stop following (the next look rebuilds)."""
        self.directory = None
        self.calls, self._held, self._holders = {}, {}, {}
        self._dirty_calls, self._dirty_people = set(), set()

    def rebuild(self) -> None:
        directory = self._directory()
        self.forget()
        self.directory = directory
        for call in self._live_calls():
            self._put(call)
        self.agents = {s.agent_id: self._agent(s) for s in self._statuses()}
        self.seats = {seat.id: self._seat(seat) for seat in directory.seats}

    def call_changed(self, linkedid: str) -> None:
        if self.built:
            self._dirty_calls.add(linkedid)

    def person_changed(self, person_id: str) -> None:
        if self.built:
            self._dirty_people.add(person_id)

    def reconcile(self) -> None:
        """Mark every call that differs from the tracker's (what no event said)."""
        if not self.built:
            return
        live = {call.linkedid: call for call in self._live_calls()}
        self._dirty_calls.update(k for k, call in live.items() if self.calls.get(k) != call)
        self._dirty_calls.update(k for k in self.calls if k not in live)

    def changes(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The agents and seats changed since the last call, as now shown (a new directory: every one that
        differs from before)."""
        if self.directory is not self._directory() or self.directory is None:
            agents, seats = self.agents, self.seats
            self.rebuild()
            return ([a for k, a in self.agents.items() if agents.get(k) != a],
                    [s for k, s in self.seats.items() if seats.get(k) != s])
        dirty_calls, self._dirty_calls = self._dirty_calls, set()
        for linkedid in dirty_calls:
            call = self._live(linkedid)
            self._drop(linkedid)
            if call is not None:
                self._put(call)
        dirty, self._dirty_people = self._dirty_people, set()
        changed_agents: list[dict[str, Any]] = []
        changed_seats: list[dict[str, Any]] = []
        for person_id in dirty:
            status = self._status(person_id)
            seat = self.directory.get(person_id) if status is None else None
            if status is not None and self.agents.get(person_id) != (agent := self._agent(status)):
                self.agents[person_id] = agent
                changed_agents.append(agent)
            elif isinstance(seat, Seat) and self.seats.get(person_id) != (shown := self._seat(seat)):
                self.seats[person_id] = shown
                changed_seats.append(shown)
        return changed_agents, changed_seats

    def _put(self, call: LiveCall) -> None:
        self.calls[call.linkedid] = call
        assert self.directory is not None
        holder = _holder(call, self.directory)
        if holder is not None:
            self._held.setdefault(holder, {})[call.linkedid] = call
            self._holders[call.linkedid] = holder
            self._dirty_people.add(holder)

    def _drop(self, linkedid: str) -> None:
        self.calls.pop(linkedid, None)
        holder = self._holders.pop(linkedid, None)
        if holder is not None:
            held = self._held[holder]
            del held[linkedid]
            if not held:
                del self._held[holder]
            self._dirty_people.add(holder)

    def _agent(self, status: AgentStatus) -> dict[str, Any]:
        call = _shown(self._held.get(status.agent_id, {}))
        return {**status.to_json(), "call": _call(call) if call else None}

    def _seat(self, seat: Seat) -> dict[str, Any]:
        call = _shown(self._held.get(seat.id, {}))
        return {"id": seat.id, "name": seat.name, "unit": seat.unit, "device": seat.device,
                "call": _call(call) if call else None}


def parts(calls: Sequence[LiveCall]) -> tuple[list[LiveCall], dict[str, Any], list[dict[str, Any]]]:
    """Of the live calls: the callers waiting (longest first), the queue as the board shows it, and the
    units whose numbers have live calls. Pure."""
    waiting: list[LiveCall] = []
    units: dict[str, dict[str, Any]] = {}
    for call in calls:
        waits = is_waiting(call)
        if waits:
            waiting.append(call)
        if call.unit_id and call.direction == "inbound" and (waits or call.answered_at is not None):
            unit = units.setdefault(call.unit_id, {"unit_id": call.unit_id, "name": call.unit, "waiting": 0,
                                                   "talking": 0})
            unit["waiting" if call.answered_at is None else "talking"] += 1
    waiting.sort(key=wait_started)
    queue = {"waiting": len(waiting), "longest_since": wait_started(waiting[0]) if waiting else None,
             "calls": [{**_call(c), "since": wait_started(c), "queue": c.queue} for c in waiting[:QUEUE_SHOWN]]}
    return waiting, queue, [units[key] for key in sorted(units)]


class Wallboard:
    def __init__(self, hub: PopHub, board: AgentBoard, live_calls: Callable[[], list[LiveCall]],
                 directory: Callable[[], Directory], link_up: Callable[[], bool], zone: ZoneInfo,
                 thresholds: Thresholds, live: Callable[[str], LiveCall | None], *, window: float = 1800.0,
                 interval: float = 0.2, clock: Callable[[], float] = time.time) -> None:
        self.hub = hub
        self.board = board
        self.link_up = link_up
        self.zone = zone
        self.thresholds = thresholds
        self.figures = LiveFigures(zone, window)
        self.alerts = Alerts(thresholds, zone)
        self.interval = interval
        self.clock = clock
        self.live_calls = live_calls
        self.view = BoardView(board.all, board.status, live, live_calls, directory)
        self.updates = 0  # updates sent
        self.seq = 0  # the last update's number
        self._parts: dict[str, Any] = {}  # the small parts as last sent
        self._due: asyncio.Handle | None = None
        self._last = 0.0
        self._ticking: asyncio.Task[None] | None = None

    # -- the day's figures ---------------------------------------------------------------------

    async def initialise(self, engine: AsyncEngine) -> None:
        """Today's counters from the database (cti.stats.calls), before the first call ends."""
        now = self.clock()
        start, end = (datetime.fromtimestamp(t, self.zone) for t in day_bounds(now, self.zone))
        try:
            groups = await call_sums(engine, "total", self.zone, start, end)
        except Exception:  # the database is away: the board starts from nothing and says so in the log
            log.warning("today's call figures could not be read; the wallboard counts from now", exc_info=True)
            groups = []
        self.figures.start(now, total(groups) if groups else None)

    # -- what happens ---------------------------------------------------------------------------

    def finished(self, record: CallRecord) -> None:
        if self.figures.add(record):
            self.changed()

    def on_events(self, events: Sequence[CallEvent]) -> None:
        for event in events:
            self.view.call_changed(event.linkedid)
        if events:
            self.changed()

    def on_agent(self, statuses: Sequence[AgentStatus]) -> None:
        for status in statuses:
            self.view.person_changed(status.agent_id)
        if statuses:
            self.changed()

    def on_link(self, up: bool) -> None:
        self.changed()

    def changed(self) -> None:
        """Something on the board may have changed: an update is sent soon (coalesced)."""
        if self._due is not None or not self.hub.supervising:
            return
        loop = asyncio.get_running_loop()
        wait = max(0.0, self._last + self.interval - loop.time())
        self._due = loop.call_later(wait, self.flush)

    # -- the messages ---------------------------------------------------------------------------

    def _now_parts(self) -> dict[str, Any]:
        """The small parts, now (and the alerts they raise or clear)."""
        now = self.clock()
        live = list(self.view.calls.values())
        waiting, queue, units = parts(live)
        window = self.figures.window(now, live)
        for alert in self.alerts.check(now, window, [now - wait_started(c) for c in waiting]):
            self.hub.on_alert(alert)
        return {"queue": queue, "today": dataclasses.asdict(self.figures.today(now)), "window": window.to_json(),
                "units": units, "pbx": "up" if self.link_up() else "down"}

    def snapshot(self) -> dict[str, Any]:
        """The whole board, for a socket that opens: pending changes go to the others first, so that the
        updates after it (seq + 1 on) are counted from what it shows."""
        self.flush()
        if not self.view.built:
            self.view.rebuild()
            self._parts = self._now_parts()
        t = self.thresholds
        return {"type": "wallboard", "seq": self.seq, "now": self.clock(), "agents": list(self.view.agents.values()),
                "seats": list(self.view.seats.values()), **self._parts, "alerts": list(self.hub.alerts.values()),
                "thresholds": {"answer_rate": t.answer_rate, "wait": t.wait, "min_calls": t.min_calls}}

    def snapshot_text(self) -> str:
        return json.dumps(self.snapshot(), ensure_ascii=False)

    def flush(self) -> None:
        """Send what changed since the last update, if anything did."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        try:
            self._last = asyncio.get_running_loop().time()
        except RuntimeError:
            self._last = 0.0
        if not self.hub.supervising:
            self.view.forget()
            return
        if not self.view.built:
            return  # nobody had a board: the next snapshot shows it all
        agents, seats = self.view.changes()
        now = self._now_parts()
        changed = {k: v for k, v in now.items() if self._parts.get(k) != v}
        self._parts = now
        if not changed and not agents and not seats:
            return
        self.updates += 1
        self.seq += 1
        self.hub.to_supervisors({"type": "wallboard_update", "seq": self.seq, "now": self.clock(), "agents": agents,
                                 "seats": seats, **changed})

    # -- the tick ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._ticking = asyncio.create_task(self._tick(), name="wallboard")

    async def close(self) -> None:
        if self._due is not None:
            self._due.cancel()
        if self._ticking is not None:
            self._ticking.cancel()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                if self.hub.supervising:
                    self.view.reconcile()
                    self.changed()
                else:  # nobody looks, but the alerts still hold or clear
                    now = self.clock()
                    live = self.live_calls()
                    waits = [now - wait_started(c) for c in live if is_waiting(c)]
                    for alert in self.alerts.check(now, self.figures.window(now, live), waits):
                        self.hub.on_alert(alert)
            except Exception:
                log.exception("the wallboard's tick failed")

