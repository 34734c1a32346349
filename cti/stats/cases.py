"""The case measures of cti.cases.stats over a period, counted by the database: one GROUP BY over the cases
opened in it (by unit, category, legacy number, day or month), one over the missed calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cti.cases.model import CATEGORIES, WITH_UNIT
from cti.cases.stats import GROUPS, Row, rate
from cti.stats.calls import bounds, in_period
from cti.store.models import CaseEventRow, CaseRow, MissedCallRow
from cti.store.sql import local_text

K = CaseRow.__table__.c
M = MissedCallRow.__table__.c
SUMS = ("cases", "closed", "replied", "on_time", "overdue", "satisfied", "basically_satisfied", "unsatisfied",
        "unreachable", "first_call_resolved", "dispatched", "returned", "rehandled", "escalated")


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


async def case_statistics(engine: AsyncEngine, by: str, zone: ZoneInfo, now: datetime,
                          since: datetime | None = None, until: datetime | None = None, *,
                          unit: str | None = None) -> list[Row]:
    """One row per group, sorted by key, and a last row "total", of the cases opened from ``since`` (included)
    to ``until`` (excluded); a unit's own only when ``unit`` is given (missed calls have no unit: they count only
    in everyone's)."""
    if by not in GROUPS:
        raise ValueError(f"group by one of {', '.join(GROUPS)}")
    dialect = engine.dialect.name
    returned = K.id.in_(select(CaseEventRow.case_id).where(CaseEventRow.action == "return"))
    closed = K.state.in_(("closed", "archived"))
    key: ColumnElement[Any] = {"unit": K.unit, "category": K.category, "legacy_number": K.legacy_number}.get(
        by, literal(""))
    filters = [K.state != "merged", *in_period(K.created_at, since, until)]  # a duplicate counts in the case it joined
    if unit is not None:
        filters.append(K.unit == unit)
    period = await bounds(engine, K.created_at, since, until) if by in ("day", "month") else None
    if period is not None:
        key = local_text(dialect, K.created_at, zone, by, *period)
    cases = select(key.label("key"), *(
        _count(c).label(n) for n, c in (
            ("cases", literal(True)), ("closed", closed), ("replied", K.on_time.is_not(None)),
            ("on_time", K.on_time.is_(True)),
            ("overdue", or_(K.on_time.is_(False), and_(K.state.in_(WITH_UNIT), K.due_at < now))),
            ("satisfied", K.satisfaction == "1"), ("basically_satisfied", K.satisfaction == "2"),
            ("unsatisfied", K.satisfaction == "3"), ("unreachable", K.satisfaction == "unreachable"),
            ("first_call_resolved", and_(closed, K.dispatched_at.is_(None), K.rehandled == 0, ~returned)),
            ("dispatched", or_(K.dispatched_at.is_not(None), returned)), ("returned", returned),
            ("rehandled", K.rehandled > 0), ("escalated", K.escalated_at.is_not(None))))
    ).where(*filters).group_by(key)
    groups: dict[str, dict[str, int]] = {}
    async with engine.connect() as connection:
        for row in await connection.execute(cases):
            groups[_key(by, row.key)] = {name: int(getattr(row, name) or 0) for name in SUMS}
        missed: dict[str, tuple[int, int]] = {}
        if unit is None:
            missed = await _missed(connection, by, zone, since, until)
    everything = {name: sum(g[name] for g in groups.values()) for name in SUMS}
    names = sorted(set(groups) | {k for k in missed if k != "total"})
    return [_row(name, groups.get(name, {}), missed.get(name, (0, 0))) for name in names] + [
        _row("total", everything, missed.get("total", (0, 0)))]


def _key(by: str, value: Any) -> str:
    if by == "unit":
        return str(value) or "12345"
    if by == "category":
        return CATEGORIES.get(str(value), str(value))
    if by == "legacy_number":
        return str(value) or "—"
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
        return_rate=rate(get("returned", 0), get("dispatched", 0)), missed_calls=missed[0], called_back=missed[1])
