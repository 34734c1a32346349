"""The running tallies of the case measures (cti.stats.case_tallies, cti.store.case_tallies) against the SQL over
the cases: the same rows for test_stats' mix and for a random walk of cases through the workflow (dispatched,
returned, reassigned, replied late, surveyed, rehandled, merged, escalated), by every grouping and period, on SQLite
and PostgreSQL; made again from the cases, and in another zone."""

from __future__ import annotations

import dataclasses
import random
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from cti.cases.model import CATEGORIES, MOVES, Case, CaseError
from cti.cases.stats import GROUPS, period
from cti.stats.case_tallies import changes, figures
from cti.stats.cases import case_statistics
from cti.store import case_tallies
from cti.store.database import Database
from cti.store.models import CASE_TALLIES, CaseTallyRow
from cti.store.tallies import tally_zone
from tests.test_cases_service import CONFIGURATION, Clock, service
from tests.test_stats import DAY1, ZONE, cases_mix

BERLIN = ZoneInfo("Europe/Berlin")
UNITS = sorted(CONFIGURATION.catalogue.units)[:3]


async def both(database: Database, by: str, zone: ZoneInfo, now: datetime, since: datetime | None,
               until: datetime | None, unit: str | None = None) -> tuple[list[Any], list[Any]]:
    """The rows from the tallies and from the cases."""
    return (await case_statistics(database.engine, by, zone, now, since, until, unit=unit),
            await case_statistics(database.engine, by, zone, now, since, until, unit=unit, use_tallies=False))


def periods(zone: ZoneInfo) -> list[tuple[datetime | None, datetime | None]]:
    return [(None, None), period(date(2026, 11, 9), date(2026, 11, 9), zone),
            period(date(2026, 11, 10), date(2026, 11, 30), zone), period(date(2026, 10, 1), date(2026, 11, 9), zone)]


async def walk(database: Database, seed: int, count: int = 40) -> Clock:
    """``count`` cases over three days, each then moved at random along the workflow's legal moves, the clock
    running on so that deadlines pass."""
    rng = random.Random(seed)
    clock = Clock(datetime(2026, 11, 9, 9, 0, tzinfo=ZONE))
    cases = service(database, clock)
    ids = []
    for n in range(count):
        clock.advance(hours=rng.choice((0.5, 2, 7)))
        opened = await cases.open(category=rng.choice(list(CATEGORIES)), content=f"事项{n}", actor="1001",
                                  role="agent", caller_number=f"1390000{n:04d}", unit=rng.choice(["", *UNITS]),
                                  legacy_number=rng.choice(("12345", "12315", "12369")))
        ids.append(opened.id)
    for _ in range(count * 6):
        case_id = rng.choice(ids)
        case = await database.cases.get(case_id)
        assert case is not None
        legal = [m for m in MOVES.values() if case.state in m.sources]
        if not legal:
            continue
        move = rng.choice(legal)
        params = {"unit": rng.choice(UNITS), "reason": "理由", "days": 2, "reply": "已办",
                  "satisfaction": rng.choice("1233"), "into": rng.choice(ids)}
        role = "system" if "system" in move.roles and "supervisor" not in move.roles else "supervisor"
        clock.advance(hours=rng.choice((1, 5, 30)))
        try:
            await cases.act(case_id, move.action, params, "9001", role)
        except CaseError:
            pass  # a merge into itself, a return after its window: the workflow says no, nothing is written
    return clock


def test_a_move_that_changes_nothing_is_no_row() -> None:
    case = Case(1, "139", "", "complaint", "x", DAY1, "1001", unit="yanhu-district")
    assert changes([(case, False, -1), (case, False, 1)], ZONE) == []
    moved = changes([(case, False, -1), (dataclasses.replace(case, unit="other"), False, 1)], ZONE)
    assert {(r["grouping"], r["key"], r["cases"]) for r in moved} == {("unit", "yanhu-district", -1),
                                                                     ("unit", "other", 1)}
    assert figures(dataclasses.replace(case, state="merged"), False) is None


@pytest.mark.parametrize("by", GROUPS)
async def test_the_tallies_give_the_rows_of_the_cases(database: Database, by: str) -> None:
    _, clock = await cases_mix(database)
    for since, until in periods(ZONE):
        tallied, counted = await both(database, by, ZONE, clock(), since, until)
        assert tallied == counted and counted[-1].key == "total"
    assert (await both(database, by, ZONE, clock(), None, None, "yanhu-district"))[0][-1].cases == 3


async def test_a_random_walk_of_cases(database: Database) -> None:
    clock = await walk(database, seed=7)
    for by in GROUPS:
        for since, until in periods(ZONE):
            for unit in (None, UNITS[0]):
                tallied, counted = await both(database, by, ZONE, clock(), since, until, unit)
                assert tallied == counted, (by, since, unit)
    total = (await both(database, "unit", ZONE, clock(), None, None))[0][-1]
    assert total.cases and total.dispatched and total.closed  # the walk went somewhere


async def tally_rows(database: Database) -> list[tuple[Any, ...]]:
    async with database.engine.connect() as connection:
        query = select(CaseTallyRow.__table__).where(CaseTallyRow.cases != 0).order_by(
            CaseTallyRow.grouping, CaseTallyRow.day, CaseTallyRow.key)
        return [tuple(row) for row in await connection.execute(query)]


async def test_made_again_from_the_cases_and_in_another_zone(database: Database) -> None:
    clock = await walk(database, seed=11, count=25)
    moved = await tally_rows(database)
    async with database.engine.connect() as connection:
        stored = int((await connection.execute(select(func.count()).select_from(CaseTallyRow))).scalar() or 0)
    assert await case_tallies.rebuild(database.engine, ZONE) == 25
    assert await tally_rows(database) == moved and stored >= len(moved)
    await case_tallies.ensure(database.engine, BERLIN)  # the service's zone changed: made again in it
    async with database.engine.connect() as connection:
        assert await tally_zone(connection, which=CASE_TALLIES) == BERLIN
    for by in GROUPS:
        for since, until in periods(BERLIN):
            tallied, counted = await both(database, by, BERLIN, clock(), since, until)
            assert tallied == counted
    for by in ("day", "unit"):  # and a page in another zone than the tallies' is counted from the cases
        tallied, counted = await both(database, by, ZONE, clock(), *period(date(2026, 11, 9), None, ZONE))
        assert tallied == counted
