"""The wallboard's figures, live: today's call measures, the callers waiting, the 15-second answer rate of the
last minutes, and the alerts they raise. Pure.

Every figure is cti.stats.measures' definition. Today's counters start from the database's sums of the day
(cti.stats.calls.call_sums, at start) and grow by each finished call record (a call counts in the local day
it arrived in, as in the SQL). The window's rate also counts the calls still in progress whose outcome is
already known: answered (within the target or not), or waiting past the target (it can only be answered
late or abandoned, and it is offered either way: past the 5 s of a short abandon). A call still waiting
under the target is undecided and counts nowhere yet.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cti.calls.record import CallRecord, LiveCall, iso_time
from cti.stats import measures
from cti.stats.rows import CallStatsRow, CallSums

WINDOW = 30 * 60.0  # seconds: the alert's rolling window


def day_bounds(at: float, zone: ZoneInfo) -> tuple[float, float]:
    """The local day holding ``at``: its first moment and the next day's, in seconds since the epoch."""
    day = datetime.fromtimestamp(at, zone).date()
    start = datetime.combine(day, time(), zone)
    return start.timestamp(), datetime.combine(day + timedelta(days=1), time(), zone).timestamp()


def is_waiting(call: LiveCall) -> bool:
    """A caller waiting for a person: inbound, not answered, in the queue or ringing phones (a call in an IVR or
    hearing a notice is not waiting)."""
    return call.direction == "inbound" and call.answered_at is None and bool(call.queue or call.rung)


def wait_started(call: LiveCall) -> float:
    """measures.wait_started, for a call in progress."""
    return call.queued_at if call.queued_at is not None else call.arrived_at


@dataclass(slots=True)
class Sums:
    """Today's counters (the mutable form of rows.CallSums)."""

    asked: int = 0
    short_abandons: int = 0
    answered: int = 0
    answered_in_15s: int = 0
    wait_sum: float = 0.0
    max_wait: float | None = None
    answer_wait_sum: float = 0.0
    talk_sum: float = 0.0
    talked: int = 0

    @classmethod
    def of(cls, sums: CallSums) -> Sums:
        return cls(sums.asked, sums.short_abandons, sums.answered, sums.answered_in_15s, sums.wait_sum,
                   sums.max_wait, sums.answer_wait_sum, sums.talk_sum, sums.talked)

    def add(self, record: CallRecord) -> None:
        """One finished call that asked for a person, as measures counts it."""
        self.asked += 1
        if measures.is_short_abandon(record):
            self.short_abandons += 1
            return
        wait = measures.wait_of(record)
        self.wait_sum += wait
        self.max_wait = wait if self.max_wait is None else max(self.max_wait, wait)
        if record.answered_at is not None:
            self.answered += 1
            self.answer_wait_sum += wait
            self.answered_in_15s += measures.answered_in_time(record)
            talk = measures.talk_of(record)
            if talk is not None:
                self.talk_sum += talk
                self.talked += 1

    def row(self, key: str) -> CallStatsRow:
        return CallSums(key, "", self.asked, self.short_abandons, self.answered, self.answered_in_15s,
                        round(self.wait_sum, 3), self.max_wait, round(self.answer_wait_sum, 3),
                        round(self.talk_sum, 3), self.talked).row()


@dataclass(frozen=True, slots=True)
class Window:
    """The 15-second answer rate of the calls that arrived in the last ``minutes``."""

    minutes: int
    offered: int  # decided: finished and offered, answered, or waiting past the target
    answered_in_15s: int
    undecided: int  # waiting, under the target yet
    rate: float | None  # None when nothing was offered

    def to_json(self) -> dict[str, Any]:
        return {"minutes": self.minutes, "offered": self.offered, "answered_in_15s": self.answered_in_15s,
                "undecided": self.undecided, "rate": self.rate}


class LiveFigures:
    def __init__(self, zone: ZoneInfo, window: float = WINDOW, target: float = measures.ANSWER_TARGET) -> None:
        self.zone = zone
        self.window_seconds = window
        self.target = target
        self.day = (0.0, 0.0)  # the local day the counters are of
        self.sums = Sums()
        self._recent: list[tuple[float, bool]] = []  # finished offered calls of the window: (arrival, in time)
        self._recent_in_time = 0

    def start(self, now: float, sums: CallSums | None = None) -> None:
        """Begin today's counters: from the database's sums of the day (None: nothing yet)."""
        self.day = day_bounds(now, self.zone)
        self.sums = Sums.of(sums) if sums is not None else Sums()

    def add(self, record: CallRecord) -> bool:
        """A call ended; whether it changed today's figures."""
        if not measures.asked_for_a_person(record):
            return False
        if measures.is_offered(record):
            in_time = measures.answered_in_time(record, self.target)
            heapq.heappush(self._recent, (record.arrived_at, in_time))
            self._recent_in_time += in_time
        self._roll(record.ended_at)
        if not self.day[0] <= record.arrived_at < self.day[1]:
            return False  # it arrived yesterday (before the counters' day: the database has it there)
        self.sums.add(record)
        return True

    def _roll(self, now: float) -> bool:
        if now < self.day[1]:
            return False
        self.start(now)
        return True

    def today(self, now: float) -> CallStatsRow:
        """Today's measures (a new day starts from nothing); key: the day, YYYY-MM-DD."""
        self._roll(now)
        return self.sums.row(datetime.fromtimestamp(self.day[0], self.zone).date().isoformat())

    def window(self, now: float, live: Sequence[LiveCall]) -> Window:
        since = now - self.window_seconds
        while self._recent and self._recent[0][0] < since:
            self._recent_in_time -= heapq.heappop(self._recent)[1]
        offered, in_time, undecided = len(self._recent), self._recent_in_time, 0
        for call in live:
            if call.direction != "inbound" or call.arrived_at < since:
                continue
            if call.answered_at is not None:
                offered += 1
                in_time += call.answered_at - wait_started(call) <= self.target
            elif is_waiting(call):
                if now - wait_started(call) > self.target:
                    offered += 1
                else:
                    undecided += 1
        return Window(round(self.window_seconds / 60), offered, in_time, undecided,
                      round(in_time / offered, 4) if offered else None)


@dataclass(frozen=True, slots=True)
class Thresholds:
    answer_rate: float = 0.8  # the window's 15-second rate below this raises answer_rate
    wait: float = 60.0  # a caller waiting longer raises long_wait
    min_calls: int = 10  # the window's rate is judged once this many calls are decided in it


class Alerts:
    """The wallboard's two alerts, raised once and cleared when back to normal (WsAlert messages)."""

    IDS = {"answer_rate": "wallboard.answer_rate", "long_wait": "wallboard.long_wait"}

    def __init__(self, thresholds: Thresholds, zone: ZoneInfo) -> None:
        self.thresholds = thresholds
        self.zone = zone
        self.active: dict[str, dict[str, Any]] = {}

    def check(self, now: float, window: Window, waits: Sequence[float]) -> list[dict[str, Any]]:
        """The alerts raised or cleared now; ``waits``: the seconds each waiting caller has waited."""
        t = self.thresholds
        messages = []
        low = window.rate is not None and window.offered >= t.min_calls and window.rate < t.answer_rate
        if low:
            rate = window.rate or 0.0
            messages += self._set("answer_rate", now, "warning",
                                  f"近{window.minutes}分钟15秒接通率 {rate:.0%}，低于 {t.answer_rate:.0%}",
                                  {"rate": window.rate, "threshold": t.answer_rate, "offered": window.offered,
                                   "answered_in_15s": window.answered_in_15s, "minutes": window.minutes})
        else:
            messages += self._clear("answer_rate", now)
        over = [w for w in waits if w > t.wait]
        if over:
            messages += self._set("long_wait", now, "critical",
                                  f"{len(over)} 位来电人等候超过 {t.wait:.0f} 秒，最长 {max(over):.0f} 秒",
                                  {"waiting": len(over), "longest": round(max(over), 1), "limit": t.wait})
        else:
            messages += self._clear("long_wait", now)
        return messages

    def _set(self, kind: str, now: float, severity: str, title: str,
             details: dict[str, Any]) -> list[dict[str, Any]]:
        if kind in self.active:
            return []
        message = {"type": "alert", "id": self.IDS[kind], "state": "raised", "kind": kind, "severity": severity,
                   "title": title, "details": details, "at": iso_time(now, self.zone)}
        self.active[kind] = message
        return [message]

    def _clear(self, kind: str, now: float) -> list[dict[str, Any]]:
        raised = self.active.pop(kind, None)
        if raised is None:
            return []
        return [{**raised, "state": "cleared", "at": iso_time(now, self.zone)}]
