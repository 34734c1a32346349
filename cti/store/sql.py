"""SQL that SQLite and PostgreSQL spell each their own way, in one place for every store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Insert, Numeric, TextClause, case, cast, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_insert(dialect: str, table: Any) -> Any:
    """``dialect``'s own ``insert`` of ``table``: the one with ``on_conflict_do_…`` and ``excluded``."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


# What holds pg_advisory_xact_lock, one key each: two cti instances doing the same thing take turns
MIGRATING = 12345
CASE_INTAKE = 12346
CALL_WRITES = 12347


def one_at_a_time(dialect: str, key: int) -> TextClause | None:
    """The statement that makes the rest of this transaction wait for any other instance's
    transaction holding ``key`` (PostgreSQL's transaction advisory lock); None on SQLite, where
    one writer at a time is the rule already."""
    if dialect != "postgresql":
        return None
    return text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=key)


async def take_turn(session: AsyncSession, dialect: str, key: int) -> None:
    """Wait, in ``session``'s transaction, for any other instance's transaction holding ``key`` (one_at_a_time)."""
    if (turn := one_at_a_time(dialect, key)) is not None:
        await session.execute(turn)


def insert_new(dialect: str, table: Any, keys: Sequence[str] | None = None) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` on ``dialect`` ("sqlite" or "postgresql"): a row whose
    ``keys`` (any unique constraint when None) are taken already is left as it is, silently. Both
    backends spell it the same, but SQLAlchemy has it only in their own dialects' ``insert``."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=list(keys) if keys is not None else None)


def upsert(dialect: str, table: Any, keys: Sequence[str], columns: Sequence[str]) -> Insert:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` of ``columns`` with the new row's values, on ``dialect``."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return insert.on_conflict_do_update(index_elements=list(keys),
                                        set_={column: insert.excluded[column] for column in columns})


# -- times in queries: SQLite keeps a UTC time as text ('YYYY-MM-DD HH:MM:SS.ffffff', cti.store.models.UtcDateTime),
# PostgreSQL as a timestamp with time zone

def seconds_between(dialect: str, later: Any, earlier: Any) -> ColumnElement[Any]:
    """``later - earlier`` in seconds, to the millisecond (SQLite's julianday keeps milliseconds; rounding
    both backends there makes them agree with each other and with cti.stats.measures.wait_of)."""
    if dialect == "postgresql":
        return func.round(cast(func.extract("epoch", later - earlier), Numeric), 3)
    return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)


LOCAL_FORMATS = {"day": ("%Y-%m-%d", "YYYY-MM-DD"), "month": ("%Y-%m", "YYYY-MM"), "hour": ("%H", "HH24")}


def local_text(dialect: str, column: Any, zone: ZoneInfo, unit: str,
               since: datetime, until: datetime) -> ColumnElement[Any]:
    """The local day (YYYY-MM-DD), month (YYYY-MM) or hour of the day (00-23) in ``zone`` of a time column,
    for times from ``since`` to ``until``. PostgreSQL knows the zones; SQLite does not, so it is given the zone's
    offsets over the period, a CASE at each change (daylight saving time; none in China since 1991)."""
    sqlite_format, pg_format = LOCAL_FORMATS[unit]
    if dialect == "postgresql":
        return func.to_char(func.timezone(zone.key, column), pg_format)
    spans = offsets(zone, since, until)
    shifted = [func.strftime(sqlite_format, column, f"{offset:+d} seconds") for _, offset in spans]
    if len(spans) == 1:
        return shifted[0]
    whens = [(column < change, expr)
             for (change, _), expr in zip(spans[1:], shifted[:-1], strict=True)]
    return case(*whens, else_=shifted[-1])


def offsets(zone: ZoneInfo, since: datetime, until: datetime) -> list[tuple[datetime, int]]:
    """The zone's UTC offsets (seconds) from ``since`` to ``until``: (from when, offset), the first from ``since``;
    each change found to the second."""
    def offset(at: datetime) -> int:
        delta = at.astimezone(zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    spans = [(since, offset(since))]
    step = timedelta(hours=6)
    at = since
    while at < until:
        following = min(at + step, until)
        if offset(following) != spans[-1][1]:
            low, high = at, following  # the change is in (low, high]
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == spans[-1][1] else (low, middle)
            spans.append((high.replace(microsecond=0), offset(high)))
        at = following
    return spans
