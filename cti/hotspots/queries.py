"""What the detectors and the statistics page count, counted by the database (GROUP BY); only the recent window's
cases are read as rows, for their text. A location's district is made in Python (cti.hotspots.text.district)
from the GROUP BY's distinct locations, which are few beside the cases."""

from __future__ import annotations

from collections import Counter
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


async def recent_cases(engine: AsyncEngine, since: datetime, *, unit: str | None = None) -> list[RecentCase]:
    """The cases opened since ``since``, with their topic words."""
    filters = [K.created_at >= since, K.state != "merged"]
    if unit is not None:
        filters.append(K.unit == unit)
    query = select(K.id, K.caller_number, K.location, K.category, K.created_at, K.content).where(*filters)
    async with engine.connect() as connection:
        rows = list(await connection.execute(query.order_by(K.id).limit(5000)))
    return [RecentCase(r.id, r.caller_number, district(r.location or ""), r.category, r.created_at,
                       tuple(topic_words(r.content or ""))) for r in rows]


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
