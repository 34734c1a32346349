"""The case measures of cti.cases.stats over a period, counted by the database: one GROUP BY over the cases
opened in it (by unit, category, legacy number, day or month), one over the missed calls; or, for a period of
whole local days, over the case tallies of cti.stats.case_tallies (a year: some 25,000 rows instead of 300,000
cases and their events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cti.cases.channels import ANSWER_WITHIN, CHANNELS, MEDIA
from cti.cases.model import CATEGORIES, WITH_UNIT
from cti.cases.stats import GROUPS, Row, rate
from cti.stats.calls import bounds, in_period
from cti.stats.case_tallies import CLOSED
from cti.stats.case_tallies import SUMS as TALLIED
from cti.stats.tallies import aligned
from cti.store.models import CASE_TALLIES, CaseEventRow, CaseRow, CaseTallyRow, MissedCallRow
from cti.store.sql import local_text, seconds_between
from cti.store.tallies import tally_zone

K = CaseRow.__table__.c
T = CaseTallyRow.__table__.c
M = MissedCallRow.__table__.c
# the tallies' sums, their "late" read as "overdue" once the cases still out past their deadline are added
SUMS = tuple("overdue" if name == "late" else name for name in TALLIED)


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


async def case_statistics(engine: AsyncEngine, by: str, zone: ZoneInfo, now: datetime,
                          since: datetime | None = None, until: datetime | None = None, *,
                          unit: str | None = None, use_tallies: bool = True) -> list[Row]:
    """One row per group, sorted by key, and a last row "total", of the cases opened from ``since`` (included)
    to ``until`` (excluded); a unit's own only when ``unit`` is given (missed calls have no unit: they count only
    in everyone's). Read from the case tallies when they can give them (their zone, a period of whole local days,
    everyone's cases or, by unit, day or month, a unit's), else counted from the cases: the same figures."""
    if by not in GROUPS:
        raise ValueError(f"group by one of {', '.join(GROUPS)}")
    if use_tallies and await _tallied(engine, by, zone, since, until, unit):
        groups = await _tally_sums(engine, by, zone, now, since, until, unit)
    else:
        groups = await _counted_sums(engine, by, zone, now, since, until, unit)
    missed: dict[str, tuple[int, int]] = {}
    if unit is None:
        async with engine.connect() as connection:
            missed = await _missed(connection, by, zone, since, until)
    everything = {name: sum(g[name] for g in groups.values()) for name in SUMS}
    names = sorted(set(groups) | {k for k in missed if k != "total"})
    return [_row(name, groups.get(name, {}), missed.get(name, (0, 0))) for name in names] + [
        _row("total", everything, missed.get("total", (0, 0)))]


async def _tallied(engine: AsyncEngine, by: str, zone: ZoneInfo, since: datetime | None, until: datetime | None,
                   unit: str | None) -> bool:
    if by == "channel" or (unit is not None and by not in ("unit", "day", "month")):
        return False  # the tallies group by one thing at a time: a unit's categories are counted from its cases;
        # the channels are three, read through the index on the time of opening
    async with engine.connect() as connection:
        tallied = await tally_zone(connection, which=CASE_TALLIES)
    return tallied is not None and tallied.key == zone.key and aligned(since, zone, "day") \
        and aligned(until, zone, "day")


async def _key_of(engine: AsyncEngine, by: str, zone: ZoneInfo, since: datetime | None,
                  until: datetime | None) -> ColumnElement[Any]:
    """What the cases are grouped by, as SQL over the cases."""
    if by in ("day", "month"):
        period = await bounds(engine, K.created_at, since, until)
        if period is not None:
            return local_text(engine.dialect.name, K.created_at, zone, by, *period)
    return {"unit": K.unit, "category": K.category, "legacy_number": K.legacy_number,
            "channel": K.channel}.get(by, literal(""))


def _filters(since: datetime | None, until: datetime | None, unit: str | None) -> list[ColumnElement[bool]]:
    filters = [K.state != "merged", *in_period(K.created_at, since, until)]  # a duplicate counts in the case it joined
    return [*filters, K.unit == unit] if unit is not None else filters


async def _counted_sums(engine: AsyncEngine, by: str, zone: ZoneInfo, now: datetime, since: datetime | None,
                        until: datetime | None, unit: str | None) -> dict[str, dict[str, int]]:
    """The sums per group counted from the cases: one GROUP BY over those opened in the period."""
    returned = K.id.in_(select(CaseEventRow.case_id).where(CaseEventRow.action == "return"))
    closed = K.state.in_(CLOSED)
    key = await _key_of(engine, by, zone, since, until)
    cases = select(key.label("key"), *(
        _count(c).label(n) for n, c in (
            ("cases", literal(True)), ("closed", closed), ("replied", K.on_time.is_not(None)),
            ("on_time", K.on_time.is_(True)), ("overdue", or_(K.on_time.is_(False), _out_past_due(now))),
            ("satisfied", K.satisfaction == "1"), ("basically_satisfied", K.satisfaction == "2"),
            ("unsatisfied", K.satisfaction == "3"), ("unreachable", K.satisfaction == "unreachable"),
            ("first_call_resolved", and_(closed, K.dispatched_at.is_(None), K.rehandled == 0, ~returned)),
            ("dispatched", or_(K.dispatched_at.is_not(None), returned)), ("returned", returned),
            ("rehandled", K.rehandled > 0), ("escalated", K.escalated_at.is_not(None)),
            ("media_cases", K.channel.in_(MEDIA)),
            ("answered_3min", and_(K.channel.in_(MEDIA), K.taken_at.is_not(None),
                                   seconds_between(engine.dialect.name, K.taken_at, K.created_at) <= ANSWER_WITHIN))))
    ).where(*_filters(since, until, unit)).group_by(key)
    async with engine.connect() as connection:
        return {_key(by, row.key): {name: int(getattr(row, name) or 0) for name in SUMS}
                for row in await connection.execute(cases)}


def _out_past_due(now: datetime) -> ColumnElement[bool]:
    return and_(K.state.in_(WITH_UNIT), K.due_at < now)


async def _tally_sums(engine: AsyncEngine, by: str, zone: ZoneInfo, now: datetime, since: datetime | None,
                      until: datetime | None, unit: str | None) -> dict[str, dict[str, int]]:
    """The sums per group from the case tallies (cti.stats.case_tallies), and the overdue cases still with their
    unit from the cases (few: an index on state and deadline finds them)."""
    grouping = by if by in ("unit", "category", "legacy_number") else "unit"
    key: ColumnElement[Any] = {"day": T.day, "month": func.substr(T.day, 1, 7)}.get(by, T.key)
    filters = [T.grouping == grouping]
    if since is not None:
        filters.append(T.day >= since.astimezone(zone).date().isoformat())
    if until is not None:
        filters.append(T.day < until.astimezone(zone).date().isoformat())
    if unit is not None:
        filters.append(T.key == unit)
    tallied = select(key.label("key"), *(func.sum(T[name]).label(name) for name in TALLIED)).where(
        *filters).group_by(key).having(func.sum(T.cases) > 0)  # a case moved away leaves its old group at 0
    out = await _key_of(engine, by, zone, since, until)
    overdue = select(out, func.count()).where(  # what the tallies' "late" leaves out of "overdue"
        K.state.in_(WITH_UNIT), or_(K.on_time.is_(False), K.due_at < now), *_filters(since, until, unit)
    ).group_by(out)
    async with engine.connect() as connection:
        groups = {_key(by, row.key): {name: int(getattr(row, name) or 0) for name in TALLIED}
                  for row in await connection.execute(tallied)}
        for value, count in await connection.execute(overdue):
            group = groups.setdefault(_key(by, value), dict.fromkeys(TALLIED, 0))
            group["late"] += int(count)
    return {name: {**sums, "overdue": sums.pop("late")} for name, sums in groups.items()}


def _key(by: str, value: Any) -> str:
    if by == "unit":
        return str(value) or "12345"
    if by == "category":
        return CATEGORIES.get(str(value), str(value))
    if by == "legacy_number":
        return str(value) or "—"
    if by == "channel":
        return CHANNELS.get(str(value), str(value))
    return str(value)


async def _missed(connection: Any, by: str, zone: ZoneInfo, since: datetime | None,
                  until: datetime | None) -> dict[str, tuple[int, int]]:
    """Missed calls and how many were called back: per legacy number, day or month, and "total"."""
    filters = []
    if since is not None:
        filters.append(M.at >= since)
    if until is not None:
        filters.append(M.at < until)
    counts = (func.count(), _count(M.state == "called_back"))
    found: dict[str, tuple[int, int]] = {}
    if by in ("legacy_number", "day", "month"):
        key: ColumnElement[Any] = M.dialled_number
        if by != "legacy_number":
            period = await bounds(connection.engine, M.at, since, until)
            if period is None:
                return {}
            key = local_text(connection.dialect.name, M.at, zone, by, *period)
        for value, calls, back in await connection.execute(select(key, *counts).where(*filters).group_by(key)):
            found[str(value) or "—"] = (int(calls), int(back or 0))
    calls, back = (await connection.execute(select(*counts).where(*filters))).one()
    found["total"] = (int(calls), int(back or 0))
    return found


def _row(key: str, sums: dict[str, int], missed: tuple[int, int]) -> Row:
    get = sums.get
    surveyed = get("satisfied", 0) + get("basically_satisfied", 0) + get("unsatisfied", 0)
    return Row(
        key=key, **{name: get(name, 0) for name in SUMS},
        on_time_rate=rate(get("on_time", 0), get("replied", 0)), surveyed=surveyed,
        satisfaction_rate=rate(get("satisfied", 0) + get("basically_satisfied", 0), surveyed),
        first_call_rate=rate(get("first_call_resolved", 0), get("closed", 0)),
        return_rate=rate(get("returned", 0), get("dispatched", 0)), missed_calls=missed[0], called_back=missed[1],
        answer_3min_rate=rate(get("answered_3min", 0), get("media_cases", 0)))
