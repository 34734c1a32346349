"""The call measures of cti.stats.measures over a period, counted by the database: one GROUP BY over the calls
that arrived in it (by hour of the day, day, queue, unit or agent), the averages made from its sums; or, for a
period of whole local hours or days, over the running tallies of cti.stats.tallies (a year: some 35,000 to
110,000 rows instead of a million calls)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cti.stats.measures import ANSWER_TARGET, SHORT_ABANDON
from cti.stats.rows import CALL_GROUPS, NONE, CallStatsRow, CallSums, total
from cti.stats.tallies import READS, SPANS, aligned
from cti.store.models import CallRow, CallTallyRow
from cti.store.sql import local_text, seconds_between
from cti.store.tallies import tally_zone

C = CallRow.__table__.c
T = CallTallyRow.__table__.c


def asked_for_a_person() -> ColumnElement[bool]:
    """measures.asked_for_a_person. (A JSON list's length is spelt alike on both databases.)"""
    return and_(C.direction == "inbound",
                or_(C.queue != "", C.answered_at.is_not(None), func.json_array_length(C.legs) > 0))


def wait(dialect: str) -> ColumnElement[Any]:
    """measures.wait_of: from the queue (or the arrival) to the answer, or to the end; never below 0."""
    seconds = seconds_between(dialect, func.coalesce(C.answered_at, C.ended_at),
                              func.coalesce(C.queued_at, C.arrived_at))
    return case((seconds < 0, 0.0), else_=seconds)


def in_period(column: Any, since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    """``column`` from ``since`` (included) to ``until`` (excluded); an open end is no condition."""
    return [*([column >= since] if since is not None else []), *([column < until] if until is not None else [])]


async def bounds(engine: AsyncEngine, column: Any, since: datetime | None,
                 until: datetime | None) -> tuple[datetime, datetime] | None:
    """The part of the period that holds times in ``column`` (its first to just after its last, an index's two
    ends): what the zone's offsets are needed over. None when there is nothing."""
    async with engine.connect() as connection:
        first, last = (await connection.execute(select(func.min(column), func.max(column)))).one()
    if first is None:
        return None  # min and max keep the column's type: aware UTC datetimes
    after = last + timedelta(seconds=1)
    start, end = max(first, since) if since else first, min(after, until) if until else after
    return (start, end) if start < end else (start, start + timedelta(seconds=1))


async def call_statistics(engine: AsyncEngine, by: str, zone: ZoneInfo, since: datetime | None = None,
                          until: datetime | None = None, *, unit: str | None = None) -> list[CallStatsRow]:
    """One row per group, sorted by key, and a last row "total", of the calls that arrived from ``since``
    (included) to ``until`` (excluded); with ``unit``, only the calls to that unit's numbers."""
    groups = await call_sums(engine, by, zone, since, until, unit=unit)
    rows = [] if by == "total" else [g.row() for g in groups]
    return [*rows, total(groups).row()]


async def call_sums(engine: AsyncEngine, by: str, zone: ZoneInfo, since: datetime | None = None,
                    until: datetime | None = None, *, unit: str | None = None,
                    use_tallies: bool = True) -> list[CallSums]:
    """What call_statistics makes its rows of: the database's sums per group, sorted by key (the wallboard
    starts its day's figures from the total of these). Read from the tallies when they can give them (the
    tallies' zone, a period of whole local hours, or days by unit or agent, everyone's calls), else counted
    from the calls: the same figures."""
    if by not in CALL_GROUPS:
        raise ValueError(f"group by one of {', '.join(CALL_GROUPS)}")
    if use_tallies and unit is None:
        async with engine.connect() as connection:
            tallied = await tally_zone(connection)
        span = SPANS[READS[by]]
        if tallied is not None and tallied.key == zone.key and aligned(since, zone, span) \
                and aligned(until, zone, span):
            return await tally_sums(engine, by, since, until)
    return await counted_sums(engine, by, zone, since, until, unit=unit)


async def tally_sums(engine: AsyncEngine, by: str, since: datetime | None, until: datetime | None) -> list[CallSums]:
    """call_sums from the tallies (cti.stats.tallies), for a period on their zone's hours or days."""
    grouping = READS[by]
    key: ColumnElement[Any] = {"hour": T.hour, "day": T.day, "total": literal("total")}.get(by, T.key)
    filters = [T.grouping == grouping]
    if since is not None:
        filters.append(T.starts_at >= since)
    if until is not None:
        filters.append(T.starts_at < until)
    query = select(key, func.max(T.name), *(func.sum(T[name]) for name in (
        "asked", "short_abandons", "answered", "answered_in_15s", "wait_ms")), func.max(T.max_wait_ms),
        *(func.sum(T[name]) for name in ("answer_wait_ms", "talk_sum", "talked"))).where(*filters).group_by(key)
    async with engine.connect() as connection:
        result = list(await connection.execute(query))
    groups = [CallSums(NONE.get(by, "") if not row[0] else str(row[0]), row[1] or "", int(row[2]),
                       int(row[3] or 0), int(row[4] or 0), int(row[5] or 0),
                       int(row[6] or 0) / 1000, None if row[7] is None else int(row[7]) / 1000,
                       int(row[8] or 0) / 1000, float(row[9] or 0), int(row[10] or 0))
              for row in result if row[2]]
    groups.sort(key=lambda g: g.key)
    return groups


async def counted_sums(engine: AsyncEngine, by: str, zone: ZoneInfo, since: datetime | None = None,
                       until: datetime | None = None, *, unit: str | None = None) -> list[CallSums]:
    """call_sums counted from the calls themselves: one GROUP BY over those of the period (a unit's through
    ix_calls_unit_arrived)."""
    dialect = engine.dialect.name
    period = await bounds(engine, C.arrived_at, since, until)
    if period is None:
        return []
    key: ColumnElement[Any]
    if by in ("hour", "day"):
        key = local_text(dialect, C.arrived_at, zone, by, *period)
    else:
        key = {"queue": C.queue, "unit": C.unit_id, "agent": C.answered_by}.get(by, literal("total"))
    named = {"unit": C.unit, "agent": C.answered_by_name}.get(by, literal(""))
    filters = [asked_for_a_person(), *in_period(C.arrived_at, since, until)]
    if unit is not None:
        filters.append(C.unit_id == unit)
    calls = select(key.label("key"), named.label("name"), wait(dialect).label("wait"), C.answered_at,
                   C.talk_time).where(*filters).subquery()
    answered = calls.c.answered_at.is_not(None)
    short = and_(~answered, calls.c.wait < SHORT_ABANDON)
    query = select(
        calls.c.key, func.max(calls.c.name), func.count(),
        func.sum(case((short, 1), else_=0)), func.sum(case((answered, 1), else_=0)),
        func.sum(case((and_(answered, calls.c.wait <= ANSWER_TARGET), 1), else_=0)),
        func.sum(case((short, 0.0), else_=calls.c.wait)), func.max(case((short, None), else_=calls.c.wait)),
        func.sum(case((answered, calls.c.wait), else_=0.0)),
        func.sum(case((answered, calls.c.talk_time), else_=0.0)),
        func.sum(case((and_(answered, calls.c.talk_time.is_not(None)), 1), else_=0)),
    ).group_by(calls.c.key)
    async with engine.connect() as connection:
        result = list(await connection.execute(query))
    groups = [CallSums(NONE.get(by, "") if not row[0] else str(row[0]), row[1] or "", int(row[2]),
                       int(row[3] or 0), int(row[4] or 0), int(row[5] or 0), float(row[6] or 0),
                       None if row[7] is None else float(row[7]), float(row[8] or 0), float(row[9] or 0),
                       int(row[10] or 0))
              for row in result if row[2]]
    groups.sort(key=lambda g: g.key)
    return groups
