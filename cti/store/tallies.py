"""The call tallies in the database (cti.stats.tallies): added to in the transaction that writes the calls, made
from the calls when the table is new or the service's zone changed (the local hours and days are the zone's)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from cti.calls.record import CallRecord, Leg
from cti.stats.tallies import SUMS, tallies
from cti.store.models import CALL_TALLIES, CallRow, CallTallyRow, TallyZoneRow
from cti.store.sql import dialect_insert

log = logging.getLogger(__name__)
T = CallTallyRow.__table__
C = CallRow.__table__.c
DEFAULT_ZONE = "Asia/Shanghai"  # cti.settings' default timezone: a database opened without one
_RANG = Leg("", "", "", 0.0, "")  # a call's legs matter to the measures only in whether there are any


async def tally_zone(connection: AsyncConnection | AsyncSession, *, share: bool = False,
                     which: int = CALL_TALLIES) -> ZoneInfo | None:
    """The zone the call (or, ``which`` CASE_TALLIES, case) tallies are in; None when there are none. With
    ``share`` (a writer of calls or cases), a rebuild waits for this transaction, and this one for a rebuild
    (PostgreSQL; SQLite has one writer at a time)."""
    query = select(TallyZoneRow.zone).where(TallyZoneRow.id == which)
    name = (await connection.execute(query.with_for_update(read=True) if share else query)).scalar()
    return ZoneInfo(name) if name else None


async def lock_zones(connection: AsyncConnection, which: int) -> None:
    """A rebuild's start: writers wait for it (PostgreSQL), and the tallies have no zone until it is done."""
    if connection.dialect.name == "postgresql":
        await connection.execute(text(f"LOCK TABLE {TallyZoneRow.__tablename__} IN EXCLUSIVE MODE"))
    await connection.execute(delete(TallyZoneRow).where(TallyZoneRow.id == which))  # on SQLite, takes the lock


async def set_zone(connection: AsyncConnection, which: int, zone: ZoneInfo) -> None:
    await connection.execute(dialect_insert(connection.dialect.name, TallyZoneRow.__table__),
                             [{"id": which, "zone": zone.key, "built_at": datetime.now(UTC)}])


async def made_from(connection: AsyncConnection, which: int, zone: ZoneInfo, table: Any, query: Any,
                    tally: Callable[[Sequence[Any]], Iterable[dict[str, Any]]],
                    merge: Callable[[dict[Any, dict[str, Any]], dict[str, Any]], None]) -> tuple[int, int]:
    """A rebuild's work, once its tallies are locked and emptied: ``query``'s rows read in parts, each part's
    tally rows merged per key, all written, and the zone recorded. Returns (rows read, tally rows written)."""
    found: dict[Any, dict[str, Any]] = {}
    counted = 0
    result = await connection.stream(query.execution_options(yield_per=20_000))
    async for part in result.partitions(20_000):
        counted += len(part)
        for row in tally(part):
            merge(found, row)
    rows = list(found.values())
    insert = dialect_insert(connection.dialect.name, table)
    for at in range(0, len(rows), 5_000):
        await connection.execute(insert, rows[at:at + 5_000])
    await set_zone(connection, which, zone)
    return counted, len(rows)


async def stale(engine: AsyncEngine, zone: ZoneInfo | None, which: int, kind: str) -> ZoneInfo | None:
    """The zone to make the tallies in at start, or None when they are fine as they are: ``zone`` when they are
    in another, the default zone when there are none yet and no zone is given."""
    async with engine.connect() as connection:
        current = await tally_zone(connection, which=which)
    if current is not None and (zone is None or zone.key == current.key):
        return None
    if current is not None and zone is not None:
        log.warning("the %s tallies are in %s, the service's zone is %s: making them again", kind, current.key,
                    zone.key)
    return zone or ZoneInfo(DEFAULT_ZONE)


async def add(session: AsyncSession, dialect: str, records: Sequence[CallRecord]) -> None:
    """Add these newly stored calls to the tallies, in the caller's transaction (nothing when there are none)."""
    zone = await tally_zone(session, share=True)
    if zone is None or not records:
        return
    rows = tallies(records, zone)
    if not rows:
        return
    insert = dialect_insert(dialect, T)
    grown = T.c.max_wait_ms
    new = insert.excluded.max_wait_ms
    columns: dict[str, Any] = {name: T.c[name] + insert.excluded[name] for name in SUMS}
    columns["max_wait_ms"] = case((grown.is_(None), new), (new > grown, new), else_=grown)
    columns["name"] = case((insert.excluded.name > T.c.name, insert.excluded.name), else_=T.c.name)
    await session.execute(insert.on_conflict_do_update(index_elements=["grouping", "starts_at", "key"],
                                                       set_=columns), rows)


async def rebuild(engine: AsyncEngine, zone: ZoneInfo) -> int:
    """The tallies made again from every stored call, in ``zone``, in one transaction (calls written meanwhile wait
    for it, then add themselves). Returns the calls counted."""
    started = time.monotonic()
    columns = (C.direction, C.queue, func.json_array_length(C.legs), C.arrived_at, C.queued_at, C.answered_at,
               C.ended_at, C.talk_time, C.unit, C.unit_id, C.answered_by, C.answered_by_name)
    async with engine.begin() as connection:
        await lock_zones(connection, CALL_TALLIES)
        await connection.execute(delete(CallTallyRow))
        counted, made = await made_from(connection, CALL_TALLIES, zone, T, select(*columns),
                                        lambda part: tallies([_record(row) for row in part], zone), _merge)
    log.info("call tallies made in %s from %d calls (%d rows) in %.1f s", zone.key, counted, made,
             time.monotonic() - started)
    return counted


async def ensure(engine: AsyncEngine, zone: ZoneInfo | None) -> None:
    """At start: tallies in ``zone`` (when given and they are in another, they are made again), or in the zone
    they are in, or, none yet, made in ``zone`` or the default zone from the calls there are."""
    fresh = await stale(engine, zone, CALL_TALLIES, "call")
    if fresh is not None:
        await rebuild(engine, fresh)


def _merge(found: dict[tuple[str, datetime, str], dict[str, Any]], row: dict[str, Any]) -> None:
    key = (row["grouping"], row["starts_at"], row["key"])
    have = found.get(key)
    if have is None:
        found[key] = row
        return
    for name in SUMS:
        have[name] += row[name]
    have["name"] = max(have["name"], row["name"])
    waits = [w for w in (have["max_wait_ms"], row["max_wait_ms"]) if w is not None]
    have["max_wait_ms"] = max(waits) if waits else None


def _seconds(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _record(row: Any) -> CallRecord:
    """What the measures read of a stored call."""
    direction, queue, legs, arrived, queued, answered, ended, talk, unit, unit_id, agent, agent_name = row
    return CallRecord(
        linkedid="", direction=direction, caller_number="", caller_name="", dialled_number="",
        arrived_at=arrived.timestamp(), ended_at=ended.timestamp(), unit=unit, unit_id=unit_id, queue=queue,
        queued_at=_seconds(queued), answered_at=_seconds(answered), talk_time=talk, answered_by=agent,
        answered_by_name=agent_name, legs=(_RANG,) if legs else ())
