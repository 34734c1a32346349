"""The wallboard's feed: a snapshot for each supervisor's or admin's socket as it opens, then what changed,
pushed over the same WebSocket (no polling).

Changes are coalesced: the first change after a quiet spell is sent at once (on the next turn of the event
loop), later ones at most every ``interval`` seconds, each update holding the agents and seats that changed
since the last one and the small figures whole (queue, today, the window, units). A tick each second
checks the alerts (a wait grows with no event) and the day's rollover. The figures are cti.stats.live's;
callers are masked as a unit sees a confidential caller (cti.privacy): a wall screen stands in a public
office.
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
from cti.agents.directory import Directory
from cti.calls.events import CallEvent
from cti.calls.record import CallRecord, LiveCall
from cti.privacy import mask
from cti.stats.calls import call_sums
from cti.stats.live import Alerts, LiveFigures, Thresholds, day_bounds, is_waiting, wait_started
from cti.stats.rows import total
from cti.web.hub import PopHub

log = logging.getLogger(__name__)
QUEUE_SHOWN = 12  # waiting callers listed (the longest waits); the count is of all


def _call(call: LiveCall) -> dict[str, Any]:
    return {"linkedid": call.linkedid, "caller": mask(call.caller_number) if call.caller_number else "",
            "dialled_number": call.dialled_number, "unit": call.unit, "unit_id": call.unit_id,
            "arrived_at": call.arrived_at, "answered_at": call.answered_at}


class Wallboard:
    def __init__(self, hub: PopHub, board: AgentBoard, live_calls: Callable[[], list[LiveCall]],
                 directory: Callable[[], Directory], link_up: Callable[[], bool], zone: ZoneInfo,
                 thresholds: Thresholds, *, window: float = 1800.0, interval: float = 0.2,
                 clock: Callable[[], float] = time.time) -> None:
        self.hub = hub
        self.board = board
        self.live_calls = live_calls
        self.directory = directory
        self.link_up = link_up
        self.zone = zone
        self.thresholds = thresholds
        self.figures = LiveFigures(zone, window)
        self.alerts = Alerts(thresholds, zone)
        self.interval = interval
        self.clock = clock
        self.updates = 0  # updates sent
        self._sent: dict[str, Any] = {}  # what the last update (or snapshot) showed, to send only changes
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
        if events:
            self.changed()

    def on_agent(self, statuses: Sequence[AgentStatus]) -> None:
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

    def view(self) -> dict[str, Any]:
        """Everything the board shows, now."""
        now = self.clock()
        live = self.live_calls()
        directory = self.directory()
        on_phone: dict[str, LiveCall] = {}
        waiting: list[LiveCall] = []
        units: dict[str, dict[str, Any]] = {}
        for call in live:
            if call.answered_at is not None and call.agent_channel:
                person = directory.by_phone(call.answered_by)
                if person is not None:
                    on_phone[person.id] = call
            if is_waiting(call):
                waiting.append(call)
            if call.unit_id and call.direction == "inbound" and (is_waiting(call) or call.answered_at is not None):
                unit = units.setdefault(call.unit_id, {"unit_id": call.unit_id, "name": call.unit, "waiting": 0,
                                                       "talking": 0})
                unit["waiting" if call.answered_at is None else "talking"] += 1
        waiting.sort(key=wait_started)
        agents = {}
        for status in self.board.all():
            mine = on_phone.get(status.agent_id)
            agents[status.agent_id] = {**status.to_json(), "call": _call(mine) if mine else None}
        seats = {}
        for seat in directory.seats:
            taken = on_phone.get(seat.id)
            seats[seat.id] = {"id": seat.id, "name": seat.name, "unit": seat.unit, "device": seat.device,
                              "call": _call(taken) if taken else None}
        window = self.figures.window(now, live)
        for alert in self.alerts.check(now, window, [now - wait_started(c) for c in waiting]):
            self.hub.on_alert(alert)
        return {
            "agents": agents, "seats": seats,
            "queue": {"waiting": len(waiting), "longest_since": wait_started(waiting[0]) if waiting else None,
                      "calls": [{**_call(c), "since": wait_started(c), "queue": c.queue}
                                for c in waiting[:QUEUE_SHOWN]]},
            "today": dataclasses.asdict(self.figures.today(now)),
            "window": window.to_json(),
            "units": [units[key] for key in sorted(units)],
            "pbx": "up" if self.link_up() else "down",
        }

    def snapshot(self) -> dict[str, Any]:
        """The whole board, for a socket that opens: pending changes go to the others first, so that the
        updates after it are counted from what it shows."""
        self.flush()
        shown = self._sent or self._remember(self.view())
        t = self.thresholds
        return {"type": "wallboard", "now": self.clock(), "agents": list(shown["agents"].values()),
                "seats": list(shown["seats"].values()), "queue": shown["queue"], "today": shown["today"],
                "window": shown["window"], "units": shown["units"], "pbx": shown["pbx"],
                "alerts": list(self.hub.alerts.values()),
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
            self._sent = {}
            return
        now = self.view()
        before, self._sent = self._sent, now
        if not before:
            return  # nobody had a board: the next snapshot shows it all
        agents = [a for key, a in now["agents"].items() if before["agents"].get(key) != a]
        seats = [s for key, s in now["seats"].items() if before["seats"].get(key) != s]
        same = all(before[k] == now[k] for k in ("queue", "today", "window", "units", "pbx"))
        if same and not agents and not seats:
            return
        self.updates += 1
        self.hub.to_supervisors({"type": "wallboard_update", "now": self.clock(), "agents": agents, "seats": seats,
                                 **{k: now[k] for k in ("queue", "today", "window", "units", "pbx")}})

    def _remember(self, view: dict[str, Any]) -> dict[str, Any]:
        self._sent = view
        return view

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
                    self.changed()
                else:  # nobody looks, but the alerts still hold or clear
                    now = self.clock()
                    live = self.live_calls()
                    waits = [now - wait_started(c) for c in live if is_waiting(c)]
                    for alert in self.alerts.check(now, self.figures.window(now, live), waits):
                        self.hub.on_alert(alert)
            except Exception:
                log.exception("the wallboard's tick failed")

