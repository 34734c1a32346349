"""The detectors and the alerts' lifecycle. Pure: counts and texts in, detections and alert messages out.

Spike (突增): one category in one district (or calls to one unit's line) in the current window against the same
window of the same weekday in each of the last N weeks. With x cases now and y in the N baseline windows, the
question is whether the rate now is above the baseline's rate. Under "no change" both are Poisson with the same
rate, and given n = x + y, x is Binomial(n, 1/(N+1)): the exact conditional test of two Poisson rates
(Przyborowski and Wilenski, 1940). Its p-value P(X >= x | n) is exact for small counts, where a z-score of a
mean and a standard deviation of mostly-zero weeks is meaningless, and it counts the baseline's own uncertainty
(a cell with one case in eight weeks is not "infinitely" above its mean of 0.125). A spike is raised when
p < p_value (default 0.001: many category × district cells are tested every sweep, so a small threshold keeps
false alarms rare) and x >= min_count (a handful of cases is no hotspot, however quiet the place usually is).

Burst (聚集): in the last hour, several callers in one district whose complaints share topic words: the word
said by the most distinct callers, when they are at least ``callers``, is the burst's topic; its cases are
those with the word, and its words those in at least half of them; the cases saying any of its words join it
(停水 without 爆管, about the same main). The cases are then set aside and the next word tried, so one
district can hold two bursts (停水 and 停电).

Repeat caller (重复来电): one number calling ``calls`` times or more within ``hours``, about the case most of
those calls were linked to (else the caller's latest case).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


def binomial_tail(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p), summed exactly in logarithms (n up to the tens of thousands)."""
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for k in range(x, n + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p
                          + (n - k) * log_q)
    return min(1.0, total)


def spike_p_value(current: int, baseline: int, weeks: int) -> float:
    """The exact conditional test's p-value of ``current`` against ``baseline`` counted over ``weeks`` windows
    of the same length."""
    return binomial_tail(current, current + baseline, 1.0 / (weeks + 1))


@dataclass(frozen=True, slots=True)
class SpikeRules:
    window_hours: float = 24.0  # the current window: the last day
    weeks: int = 8  # baseline: the same window on the same weekday of each of the weeks before
    p_value: float = 0.001
    min_count: int = 5
    call_window_minutes: float = 60.0  # calls to a unit's line: the last hour against the same hour of the weeks


@dataclass(frozen=True, slots=True)
class BurstRules:
    minutes: float = 60.0
    callers: int = 3  # distinct callers in one district with the same topic word
    critical_callers: int = 10


# The case ids a burst's details name: its first ones. The alert travels to every supervisor's socket, the
# webhook and the other instances (cti.bus, a NOTIFY of at most 8000 bytes): a blackout's thousand cases would
# not fit, and ``cases`` counts them all.
BURST_CASE_IDS = 100


@dataclass(frozen=True, slots=True)
class RepeatRules:
    hours: float = 72.0
    calls: int = 3
    critical_calls: int = 6


@dataclass(frozen=True, slots=True)
class Detection:
    """Something the detectors found now: ``key`` names it (the same thing found again has the same key)."""

    kind: str  # spike, burst, repeat_caller
    key: str
    severity: str  # info, warning, critical
    title: str
    details: dict[str, Any]
    since: datetime  # when what it counts began (the window's start, the first case)

    @property
    def id(self) -> str:
        return f"{self.kind}-{hashlib.sha256(self.key.encode()).hexdigest()[:12]}"


def spikes(cells: dict[tuple[str, str], tuple[int, int]], rules: SpikeRules, since: datetime, *,
           what: str, names: dict[str, str] | None = None) -> list[Detection]:
    """Spikes among ``cells``: (category or "calls", place) -> (count now, count over the baseline weeks)."""
    found = []
    for (category, place), (current, baseline) in sorted(cells.items()):
        if current < rules.min_count:
            continue
        p = spike_p_value(current, baseline, rules.weeks)
        if p >= rules.p_value:
            continue
        expected = baseline / rules.weeks
        name = (names or {}).get(category, category)
        title = (f"{place}{name}{what}突增：{current} 件，往常约 {expected:.1f} 件" if category != "calls"
                 else f"{place}来电突增：{current} 个，往常约 {expected:.1f} 个")
        found.append(Detection(
            "spike", f"spike|{category}|{place}", "critical" if p < rules.p_value / 100 else "warning", title,
            {"place": place, "category": category, "category_name": name, "count": current,
             "baseline": baseline, "weeks": rules.weeks, "expected": round(expected, 2),
             "ratio": round(current / expected, 1) if expected else None, "p_value": p,
             "since": since.isoformat()}, since))
    return found


@dataclass(frozen=True, slots=True)
class RecentCase:
    id: int
    caller_number: str
    place: str
    category: str
    created_at: datetime
    words: tuple[str, ...]


def bursts(cases: Sequence[RecentCase], rules: BurstRules) -> list[Detection]:
    """Bursts among the cases of the last ``rules.minutes``."""
    found = []
    by_place: dict[str, list[RecentCase]] = {}
    for case in cases:
        by_place.setdefault(case.place, []).append(case)
    for place, members in sorted(by_place.items()):
        left = list(members)
        while left:
            callers: dict[str, set[str]] = {}
            for case in left:
                for word in case.words:
                    callers.setdefault(word, set()).add(case.caller_number or f"case {case.id}")
            if not callers:
                break
            word, who = max(callers.items(), key=lambda item: (len(item[1]), item[0]))
            if len(who) < rules.callers:
                break
            core = [c for c in left if word in c.words]
            counts = Counter(w for c in core for w in set(c.words))
            words = [w for w, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
                     if n * 2 >= len(core)][:5]
            # the cases saying any of those words belong to it too (停水 without 爆管, of the same burst main)
            chosen = set(words)
            cluster = [c for c in left if chosen & set(c.words)]
            who = {c.caller_number or f"case {c.id}" for c in cluster}
            first = min(c.created_at for c in cluster)
            categories = Counter(c.category for c in cluster)
            found.append(Detection(
                "burst", f"burst|{place}|{word}",
                "critical" if len(who) >= rules.critical_callers else "warning",
                f"{place}集中反映「{'、'.join(words)}」：{len(who)} 位来电人，{len(cluster)} 件",
                {"place": place, "words": words, "callers": len(who), "cases": len(cluster),
                 "case_ids": sorted(c.id for c in cluster)[:BURST_CASE_IDS],
                 "category": categories.most_common(1)[0][0],
                 "minutes": rules.minutes, "since": first.isoformat()}, first))
            # by the same test, not ``c not in cluster``: that compares every case with every case of the
            # cluster, field by field, and held the event loop for seconds at 100 calls a second
            left = [c for c in left if not chosen & set(c.words)]
    return found


@dataclass(frozen=True, slots=True)
class RepeatCaller:
    caller_number: str
    calls: int
    first: datetime
    case_id: int | None  # the case most of the calls were linked to, else the caller's latest
    linked: int  # how many of the calls were linked to it


def repeats(callers: Sequence[RepeatCaller], rules: RepeatRules, shown: dict[str, str]) -> list[Detection]:
    """Repeat callers; ``shown`` gives each number as people may see it (masked)."""
    found = []
    for caller in callers:
        if caller.calls < rules.calls:
            continue
        number = shown.get(caller.caller_number, caller.caller_number)
        about = f"（工单 {caller.case_id}）" if caller.case_id is not None else ""
        found.append(Detection(
            "repeat_caller", f"repeat|{caller.caller_number}|{caller.case_id}",
            "warning" if caller.calls >= rules.critical_calls else "info",
            f"{number} {rules.hours:g} 小时内来电 {caller.calls} 次{about}",
            {"caller_number": caller.caller_number, "calls": caller.calls, "hours": rules.hours,
             "case_id": caller.case_id, "linked_calls": caller.linked, "since": caller.first.isoformat()},
            caller.first))
    return found


# -- the alerts: raised once, cleared when over ---------------------------------------------------------

@dataclass
class Alert:
    id: str
    detection: Detection
    raised_at: datetime
    seen_at: datetime  # the last sweep that found it

    def message(self, state: str, at: datetime, zone: Any = None) -> dict[str, Any]:
        """The WebSocket's alert message (cti.web.schemas WsAlert)."""
        d = self.detection
        moment = at.astimezone(zone) if zone is not None else at
        return {"type": "alert", "id": self.id, "state": state, "kind": d.kind, "severity": d.severity,
                "title": d.title, "details": {**d.details, "raised_at": _iso(self.raised_at, zone)},
                "at": moment.isoformat()}


def _iso(at: datetime, zone: Any) -> str:
    return (at.astimezone(zone) if zone is not None else at).isoformat()


@dataclass
class AlertBook:
    """The alerts in force. ``update`` with each sweep's detections: a new one is raised (once), one found again
    is kept (its counts refreshed, nothing sent), and one not found for ``clear_after`` is cleared."""

    clear_after: timedelta = timedelta(minutes=10)
    alerts: dict[str, Alert] = field(default_factory=dict)

    def update(self, detections: Sequence[Detection], now: datetime) -> tuple[list[Alert], list[Alert]]:
        raised: list[Alert] = []
        for detection in detections:
            alert = self.alerts.get(detection.id) or self._same_burst(detection, now)
            if alert is None:
                alert = self.alerts[detection.id] = Alert(detection.id, detection, now, now)
                raised.append(alert)
            else:
                alert.detection, alert.seen_at = detection, now
        cleared = [a for a in self.alerts.values() if a.seen_at < now and now - a.seen_at >= self.clear_after]
        for alert in cleared:
            del self.alerts[alert.id]
        return raised, cleared

    def _same_burst(self, detection: Detection, now: datetime) -> Alert | None:
        """A burst whose leading word changed as callers came (爆管, then 停水): the alert of the same place whose
        words it shares, not a new one."""
        if detection.kind != "burst":
            return None
        words = set(detection.details.get("words", ()))
        for alert in self.alerts.values():
            d = alert.detection
            if (d.kind == "burst" and alert.seen_at < now and d.details.get("place") == detection.details.get("place")
                    and words & set(d.details.get("words", ()))):
                return alert
        return None

    def current(self) -> list[Alert]:
        return sorted(self.alerts.values(), key=lambda a: a.raised_at, reverse=True)
