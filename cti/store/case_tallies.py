"""The case tallies in the database (cti.stats.case_tallies): moved in the transaction that writes a case
(CaseStore), made from the cases when the table is new or the service's zone changed."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cti.cases.model import Case
from cti.stats.case_tallies import SUMS, changes
from cti.store.models import CASE_TALLIES, CaseEventRow, CaseRow, CaseTallyRow
from cti.store.sql import dialect_insert
from cti.store.tallies import lock_zones, made_from, stale, tally_zone

log = logging.getLogger(__name__)
T = CaseTallyRow.__table__
K = CaseRow.__table__.c
# what cti.stats.case_tallies.figures reads of a case
COUNTED = ("id", "created_at", "state", "unit", "category", "legacy_number", "on_time", "satisfaction",
           "dispatched_at", "rehandled", "escalated_at", "channel", "taken_at")


async def move(session: AsyncSession, dialect: str, moves: Sequence[tuple[Case, bool, int]]) -> None:
    """Move the tallies by these (case, returned, ±1), in the caller's transaction (nothing when there are
    none)."""
    zone = await tally_zone(session, share=True, which=CASE_TALLIES)
    if zone is None:
        return
    rows = changes(moves, zone)
    if not rows:
        return
    insert = dialect_insert(dialect, T)
    await session.execute(insert.on_conflict_do_update(
        index_elements=["grouping", "day", "key"],
        set_={name: T.c[name] + insert.excluded[name] for name in SUMS}), rows)


async def was_returned(session: AsyncSession, case_id: int) -> bool:
    """Whether a unit ever returned the case (退单): it counts in the returns and not as a first-call answer."""
    query = select(exists().where(CaseEventRow.action == "return", CaseEventRow.case_id == case_id))
    return bool((await session.execute(query)).scalar())


async def rebuild(engine: AsyncEngine, zone: ZoneInfo) -> int:
    """The tallies made again from every case, in ``zone``, in one transaction (cases written meanwhile wait for
    it, then move them). Returns the cases counted."""
    started = time.monotonic()
    async with engine.begin() as connection:
        await lock_zones(connection, CASE_TALLIES)
        await connection.execute(delete(CaseTallyRow))
        returned = set((await connection.execute(
            select(CaseEventRow.case_id).where(CaseEventRow.action == "return"))).scalars())
        counted, made = await made_from(
            connection, CASE_TALLIES, zone, T, select(*(K[name] for name in COUNTED)),
            lambda part: changes(((_case(row), row.id in returned, 1) for row in part), zone), _merge)
    log.info("case tallies made in %s from %d cases (%d rows) in %.1f s", zone.key, counted, made,
             time.monotonic() - started)
    return counted


async def ensure(engine: AsyncEngine, zone: ZoneInfo | None) -> None:
    """At start, as cti.store.tallies.ensure for the calls."""
    fresh = await stale(engine, zone, CASE_TALLIES, "case")
    if fresh is not None:
        await rebuild(engine, fresh)


def _merge(found: dict[tuple[str, str, str], dict[str, Any]], row: dict[str, Any]) -> None:
    key = (row["grouping"], row["day"], row["key"])
    have = found.setdefault(key, {**row, **dict.fromkeys(SUMS, 0)})
    for name in SUMS:
        have[name] += row[name]


def _case(row: Any) -> Case:
    """What the figures read of a stored case."""
    return Case(id=row.id, caller_number="", caller_name="", category=row.category, content="",
                created_at=row.created_at, created_by="", legacy_number=row.legacy_number, state=row.state,
                unit=row.unit, on_time=row.on_time, satisfaction=row.satisfaction, dispatched_at=row.dispatched_at,
                rehandled=row.rehandled, escalated_at=row.escalated_at, channel=row.channel,
                taken_at=row.taken_at)
