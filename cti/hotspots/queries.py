"""What the detectors and the statistics page count, counted by the database (GROUP BY); only the recent window's
cases are read as rows, for their text. A location's district is made in Python (cti.hotspots.text.district)
from the GROUP BY's distinct locations, which are few beside the cases."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cti.cases.model import CATEGORIES
from cti.hotspots.detect import RecentCase, RepeatCaller
from cti.hotspots.text import district, topic_words
from cti.stats.calls import in_period
from cti.store.models import CallRow, CaseCallRow, CaseRow

K = CaseRow.__table__.c
C = CallRow.__table__.c
L = CaseCallRow.__table__.c
WEEK = timedelta(days=7)


def _windows(column: Any, now: datetime, length: timedelta, weeks: int) -> tuple[ColumnElement[Any],
                                                                                ColumnElement[bool]]:
    """0 for a time in the current window (now - length, now], 1 for one in the same window of the weeks
    before; and the condition that it is in one of them."""
    spans = [(now - length - WEEK * i, now - WEEK * i) for i in range(weeks + 1)]
    inside = [and_(column >= start, column < end) for start, end in spans]
    return case((inside[0], 0), else_=1), or_(*inside)


async def case_cells(engine: AsyncEngine, now: datetime, length: timedelta, weeks: int, *,
                     unit: str | None = None) -> dict[tuple[str, str], tuple[int, int]]:
    """(category, district) -> (cases now, cases in the baseline windows)."""
    window, inside = _windows(K.created_at, now, length, weeks)
    filters = [inside, K.state != "merged"]
    if unit is not None:
        filters.append(K.unit == unit)
    query = select(K.category, K.location, window.label("w"), func.count()).where(*filters).group_by(
        K.category, K.location, window)
    cells: dict[tuple[str, str], list[int]] = {}
    async with engine.connect() as connection:
        for category, location, w, count in await connection.execute(query):
            cells.setdefault((category, district(location or "")), [0, 0])[int(w)] += int(count)
    return {key: (now_, base) for key, (now_, base) in cells.items()}


async def call_cells(engine: AsyncEngine, now: datetime, length: timedelta, weeks: int, *,
                     unit: str | None = None) -> dict[tuple[str, str], tuple[int, int]]:
    """("calls", the line's unit) -> (inbound calls now, in the baseline windows)."""
    window, inside = _windows(C.arrived_at, now, length, weeks)
    filters = [inside, C.direction == "inbound"]
    if unit is not None:
        filters.append(C.unit_id == unit)
    query = select(C.unit, window.label("w"), func.count()).where(*filters).group_by(C.unit, window)
    cells: dict[tuple[str, str], list[int]] = {}
    async with engine.connect() as connection:
        for name, w, count in await connection.execute(query):
            cells.setdefault(("calls", name or "12345"), [0, 0])[int(w)] += int(count)
    return {key: (now_, base) for key, (now_, base) in cells.items()}


RECENT_CASES = 5000  # the newest cases of the burst window a sweep reads


class TopicWords:
    """Each recent case's topic words, segmented once, off the event loop: a sweep reads the last hour's cases every
    minute, and jieba takes about half a millisecond a case — seconds for a busy hour's thousands, which held the
    event loop (and the wallboard) once a minute. Keyed by the case and its content (an edited case is segmented
    anew); cases older than the window read are forgotten."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[str, datetime, tuple[str, ...]]] = {}  # id: content, created_at, words

    async def of(self, cases: Sequence[tuple[int, str, datetime]], since: datetime) -> list[tuple[str, ...]]:
        new = [case for case in cases if not self._has(case[0], case[1])]
        if new:
            segmented = await asyncio.to_thread(lambda: [tuple(topic_words(content)) for _, content, _ in new])
            for (i, content, at), words in zip(new, segmented, strict=True):
                self._known[i] = (content, at, words)
        found = [self._known[i][2] for i, _, _ in cases]
        self._known = {i: known for i, known in self._known.items() if known[1] >= since}
        return found

    def _has(self, case_id: int, content: str) -> bool:
        known = self._known.get(case_id)
        return known is not None and known[0] == content


async def recent_cases(engine: AsyncEngine, since: datetime, words: TopicWords, *,
                       unit: str | None = None) -> list[RecentCase]:
    """The newest cases opened since ``since`` (at most RECENT_CASES), with their topic words."""
    filters = [K.created_at >= since, K.state != "merged"]
    if unit is not None:
        filters.append(K.unit == unit)
    query = select(K.id, K.caller_number, K.location, K.category, K.created_at, K.content).where(*filters)
    async with engine.connect() as connection:
        rows = list(await connection.execute(query.order_by(K.id.desc()).limit(RECENT_CASES)))
    rows.reverse()  # oldest first, as they came
    found = await words.of([(r.id, r.content or "", r.created_at) for r in rows], since)
    return [RecentCase(r.id, r.caller_number, district(r.location or ""), r.category, r.created_at, topic)
            for r, topic in zip(rows, found, strict=True)]


async def repeat_callers(engine: AsyncEngine, since: datetime, least: int, *,
                         unit: str | None = None) -> list[RepeatCaller]:
    """The numbers that called ``least`` times or more since ``since``, with the case their calls were about."""
    filters = [C.arrived_at >= since, C.direction == "inbound", C.caller_number != ""]
    if unit is not None:
        filters.append(C.unit_id == unit)
    counted = select(C.caller_number, func.count(), func.min(C.arrived_at)).where(*filters).group_by(
        C.caller_number).having(func.count() >= least)
    async with engine.connect() as connection:
        found = {number: (int(n), first) for number, n, first in await connection.execute(counted)}
        if not found:
            return []
        numbers = list(found)[:1000]
        linked: dict[str, Counter[int]] = {}
        links = select(C.caller_number, L.case_id, func.count()).join(
            CaseCallRow.__table__, L.linkedid == C.linkedid).where(
            *filters, C.caller_number.in_(numbers)).group_by(C.caller_number, L.case_id)
        for number, case_id, n in await connection.execute(links):
            linked.setdefault(number, Counter())[int(case_id)] = int(n)
        latest = dict(list(await connection.execute(select(K.caller_number, func.max(K.id)).where(
            K.caller_number.in_(numbers)).group_by(K.caller_number))))
    callers = []
    for number in numbers:
        calls, first = found[number]
        top = linked.get(number, Counter()).most_common(1)
        case_id, n = top[0] if top else (latest.get(number), 0)
        callers.append(RepeatCaller(number, calls, first, case_id, n))
    return sorted(callers, key=lambda c: (-c.calls, c.caller_number))


async def heat(engine: AsyncEngine, since: datetime | None, until: datetime | None, *,
               unit: str | None = None) -> dict[str, Any]:
    """The category × district table of the cases opened from ``since`` to ``until``: the districts, most cases
    first, each with its count per category."""
    filters = [K.state != "merged", *in_period(K.created_at, since, until)]
    if unit is not None:
        filters.append(K.unit == unit)
    query = select(K.category, K.location, func.count()).where(*filters).group_by(K.category, K.location)
    table: dict[str, Counter[str]] = {}
    async with engine.connect() as connection:
        for category, location, count in await connection.execute(query):
            table.setdefault(district(location or ""), Counter())[category] += int(count)
    places = sorted(table, key=lambda p: (-sum(table[p].values()), p))
    return {"categories": [{"id": c, "name": n} for c, n in CATEGORIES.items()],
            "rows": [{"place": p, "total": sum(table[p].values()),
                      "counts": {c: table[p].get(c, 0) for c in CATEGORIES}} for p in places]}
