"""The running tallies of the call measures (cti.stats.tallies, cti.store.tallies) against the SQL over the calls:
the same rows for test_stats' mixes on SQLite and PostgreSQL, by every grouping; counted once per call however
often it is saved; made again from the calls, and in another zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from cti.cases.stats import period
from cti.stats.calls import call_sums
from cti.stats.rows import CALL_GROUPS
from cti.stats.tallies import aligned, local_start
from cti.store import tallies
from cti.store.database import Database
from cti.store.models import CallTallyRow
from tests.test_stats import DAY1, ZONE, call, mix

BERLIN = ZoneInfo("Europe/Berlin")


async def both(database: Database, by: str, zone: ZoneInfo, since: datetime | None,
               until: datetime | None) -> tuple[list[Any], list[Any]]:
    """The rows (the figures: a sum of waits differs in its last bit, the tallies' being exact) from the tallies
    and from the calls."""
    return ([g.row() for g in await call_sums(database.engine, by, zone, since, until)],
            [g.row() for g in await call_sums(database.engine, by, zone, since, until, use_tallies=False)])


async def tally_rows(database: Database) -> int:
    async with database.engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(CallTallyRow))).scalar() or 0)


def summer() -> list[Any]:
    """Calls around the end of summer time in Berlin: the repeated hour 02:00-03:00 twice."""
    start = datetime(2026, 10, 24, 22, 0, tzinfo=BERLIN)
    return [call(100 + n, start + timedelta(minutes=37 * n), answer=float(n % 20), agent=f"PJSIP/a{n % 3}",
                 unit=f"u-{n % 2}", queue="q12345" if n % 4 else "") for n in range(60)]


@pytest.mark.parametrize("by", CALL_GROUPS)
async def test_the_tallies_give_the_rows_of_the_calls(database: Database, by: str) -> None:
    await database.calls.save(mix())
    for since, until in (period(date(2026, 11, 9), date(2026, 11, 10), ZONE), (None, None),
                         period(date(2026, 11, 10), date(2026, 11, 10), ZONE)):
        tallied, counted = await both(database, by, ZONE, since, until)
        assert tallied == counted and counted


async def test_saved_twice_counted_once(database: Database) -> None:
    records = mix()
    await database.calls.save(records[:6])
    await database.calls.save(records)  # the first six again, in a batch with the others
    await database.calls.save(records[3:9])
    for by in CALL_GROUPS:
        tallied, counted = await both(database, by, ZONE, None, None)
        assert tallied == counted


async def test_made_again_from_the_calls_and_in_another_zone(database: Database) -> None:
    await database.calls.save(mix() + summer())
    rows = await tally_rows(database)
    before = {by: [g.row() for g in await call_sums(database.engine, by, ZONE)] for by in CALL_GROUPS}
    assert await tallies.rebuild(database.engine, ZONE) == len(mix() + summer())
    assert await tally_rows(database) == rows
    assert {by: [g.row() for g in await call_sums(database.engine, by, ZONE)] for by in CALL_GROUPS} == before
    await tallies.ensure(database.engine, BERLIN)  # the service's zone changed: made again in it
    async with database.engine.connect() as connection:
        assert await tallies.tally_zone(connection) == BERLIN
    for since, until in ((None, None), period(date(2026, 10, 25), date(2026, 10, 25), BERLIN)):
        for by in CALL_GROUPS:
            tallied, counted = await both(database, by, BERLIN, since, until)
            assert tallied == counted
    hours = await call_sums(database.engine, "hour", BERLIN, *period(date(2026, 10, 25), date(2026, 10, 25), BERLIN))
    assert "02" in {g.key for g in hours}
    await database.calls.save([call(999, datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1), answer=3.0,
                                    agent="PJSIP/a1")])
    for by in CALL_GROUPS:
        tallied, counted = await both(database, by, BERLIN, None, None)
        assert tallied == counted


async def test_other_periods_zones_and_units_are_counted_from_the_calls(database: Database) -> None:
    """A period not on the tallies' hours, another zone, a unit's view: the calls are read (and agree)."""
    await database.calls.save(mix())
    since = DAY1 + timedelta(hours=9, minutes=30)
    assert not aligned(since, ZONE, "hour") and aligned(DAY1, ZONE, "day") and aligned(None, ZONE, "hour")
    assert [g.asked for g in await call_sums(database.engine, "total", ZONE, since)] == [4]
    assert [g.key for g in await call_sums(database.engine, "unit", ZONE, unit="u-b")] == ["u-b"]
    assert [g.key for g in await call_sums(database.engine, "day", BERLIN)] == ["2026-11-08", "2026-11-09",
                                                                                 "2026-11-10"]


def test_local_starts() -> None:
    at = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1)  # the second 02:30, 01:30 UTC
    assert local_start(at, BERLIN, "hour") == datetime(2026, 10, 25, 1, 0, tzinfo=UTC)  # the second 02:00
    assert local_start(at, BERLIN, "day") == datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN)
    assert local_start(datetime(2026, 3, 1, 0, 0, tzinfo=ZONE), ZONE, "day") == datetime(2026, 3, 1, tzinfo=ZONE)
