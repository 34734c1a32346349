"""The statistics pages over a year of a big city: 1,000,000 calls and 300,000 cases (with their events and the
missed-call list) generated straight into the database in bulk (sqlite3's executemany on SQLite, in one
transaction without journal or syncing; COPY on PostgreSQL; the indexes made after the rows), the statistics'
tallies made from the calls and the cases (cti.store.tallies.rebuild, cti.store.case_tallies.rebuild, as for an
existing database), then every call and case
statistics query of cti.stats timed over the year and over one month, as the API asks them (the indexes are
those cti.store.database creates). Target: each answers within 1 s. The
databases are made in a temporary folder and a scratch PostgreSQL schema, both removed afterwards.

    .venv/bin/python bench/stats.py [--calls 1000000] [--cases 300000] [--pg postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, DropIndex

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe  # noqa: E402
from cti.cases.stats import period  # noqa: E402
from cti.stats.calls import call_statistics  # noqa: E402
from cti.stats.cases import case_statistics  # noqa: E402
from cti.store import case_tallies, tallies  # noqa: E402
from cti.store.database import Database  # noqa: E402
from cti.store.models import CallRow, CaseEventRow, CaseRow, MissedCallRow  # noqa: E402

ZONE = ZoneInfo("Asia/Shanghai")
YEAR = 2026
START = datetime(YEAR, 1, 1, tzinfo=ZONE).astimezone(UTC)
SECONDS = 365 * 86400
UNITS = [f"unit-{n:02d}" for n in range(50)]
AGENTS = [f"PJSIP/agent{1000 + n}" for n in range(300)]
QUEUES = ["q12345", "q12345-vip", "q12345-en"]
CATEGORIES = ["consultation", "request", "complaint", "report", "suggestion"]
# calls by hour of the day: quiet nights, busy mornings and afternoons
HOURLY = [1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 12, 9, 10, 13, 13, 12, 10, 8, 6, 5, 4, 2, 1]


def moment(rng: random.Random) -> datetime:
    day = rng.randrange(365)
    hour = rng.choices(range(24), HOURLY)[0]
    return START + timedelta(days=day, hours=hour, seconds=rng.uniform(0, 3600))


def calls(count: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Realistic calls: 85 % waited in a queue (most answered, some abandoned, a few within 5 s), 5 % parallel
    rings to a remote seat, 10 % served by a notice alone."""
    rng = random.Random(seed)
    for n in range(count):
        arrived = moment(rng)
        kind = rng.random()
        unit_index = rng.randrange(len(UNITS) + 10)
        unit_id = UNITS[unit_index] if unit_index < len(UNITS) else ""
        queue, legs, queued, answered, agent, talk = "", [], None, None, "", None
        if kind < 0.90:
            queue = rng.choice(QUEUES) if kind < 0.85 else ""
            queued = arrived + timedelta(seconds=rng.uniform(1, 8)) if queue else None
            base = queued or arrived
            fate = rng.random()
            if fate < 0.85:
                answered = base + timedelta(seconds=rng.expovariate(1 / 12))
                agent = rng.choice(AGENTS)
                talk = round(rng.uniform(30, 600), 3)
                ended = answered + timedelta(seconds=talk)
            else:
                ended = base + timedelta(seconds=rng.uniform(0.5, 120))
            legs = [{"device": agent or rng.choice(AGENTS), "name": "", "channel": "", "rang_at": 0.0,
                     "outcome": "answered" if answered else "cancel", "ended_at": None, "attempts": 1}]
        else:
            ended = arrived + timedelta(seconds=rng.uniform(8, 20))
        yield {
            "linkedid": f"{int(arrived.timestamp())}.{n}", "direction": "inbound",
            "caller_number": f"138{rng.randrange(10**8):08d}", "caller_name": "", "dialled_number": "12345",
            "unit": f"单位{unit_id}" if unit_id else "", "unit_id": unit_id,
            "treatment": "remote_seat" if unit_id else "hotline", "queue": queue, "arrived_at": arrived,
            "queued_at": queued, "answered_at": answered, "ended_at": ended, "queue_wait": None, "talk_time": talk,
            "answered_by": agent, "answered_by_name": agent[-4:] if agent else "", "answered_channel": "",
            "transfers": [], "legs": legs, "hangup_cause": 16, "hangup_cause_text": "Normal Clearing",
            "recording": "", "estimated": False}


def cases(count: int, seed: int = 2) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Cases at every stage of their lives, with their events (create, dispatch, return, reply)."""
    rng = random.Random(seed)
    for n in range(1, count + 1):
        created = moment(rng)
        direct = rng.random() < 0.3
        unit = "" if direct else rng.choice(UNITS)
        returned = not direct and rng.random() < 0.05
        fate = rng.random()
        state = ("closed" if fate < 0.6 else "archived" if fate < 0.8 else "replied" if fate < 0.9
                 else "dispatched" if not direct else "accepted")
        replied = created + timedelta(days=rng.uniform(0, 8)) if state != "dispatched" and state != "accepted" \
            else None
        due = None if direct else created + timedelta(days=7)
        satisfaction = rng.choice(["1", "1", "1", "2", "3", "unreachable"]) if state in ("closed", "archived") else ""
        events = [{"case_id": n, "at": created, "actor": "1001", "role": "agent", "action": "create",
                   "from_state": "", "to_state": "accepted", "details": {}}]
        if not direct:
            events.append({"case_id": n, "at": created, "actor": "1001", "role": "agent", "action": "dispatch",
                           "from_state": "accepted", "to_state": "dispatched", "details": {"unit": unit}})
        if returned:
            events.append({"case_id": n, "at": created + timedelta(hours=3), "actor": unit, "role": "unit",
                           "action": "return", "from_state": "dispatched", "to_state": "accepted",
                           "details": {"returned_by": unit, "reason": "非本单位职责"}})
        yield {
            "id": n, "caller_number": f"139{rng.randrange(10**8):08d}", "caller_name": "", "category":
            rng.choice(CATEGORIES), "content": "路灯不亮", "created_at": created, "created_by": "1001",
            "location": "", "legacy_number": rng.choice(["12345", "12315", "12369", "12333"]), "confidential": False,
            "auto": False, "state": state, "unit": unit, "dispatched_at": None if direct else created,
            "due_at": due, "extension_days": 0, "extension_request": None, "reply": "", "replied_at": replied,
            "on_time": None if replied is None else (due is None or replied <= due), "satisfaction": satisfaction,
            "rehandled": 1 if satisfaction == "3" else 0, "reminded": False, "overdue_notices": 0,
            "last_notice_at": None, "escalated_at": created + timedelta(days=9) if rng.random() < 0.02 else None,
            "callback_attempts": 0, "next_callback_at": None,
            "closed_at": replied if state in ("closed", "archived") else None, "archived_at": None,
            "merged_into": None, "version": 3}, events


def missed(count: int, seed: int = 3) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for n in range(count):
        yield {"linkedid": f"m{n}", "caller_number": f"137{n:08d}", "caller_name": "",
               "dialled_number": rng.choice(["12345", "12315", "12369"]), "at": moment(rng), "waited": 30.0,
               "state": rng.choice(["open", "called_back", "called_back", "unreachable"]), "resolved_at": None,
               "resolved_by": "", "case_id": None}


def batches(rows: Iterator[Any], size: int = 20_000) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def tables(n_calls: int, n_cases: int) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """(table, a batch of its rows), every table in turn."""
    for batch in batches(calls(n_calls)):
        yield CallRow.__table__, batch
    for batch in batches(cases(n_cases), 10_000):
        yield CaseRow.__table__, [case for case, _ in batch]
        yield CaseEventRow.__table__, [event for _, events in batch for event in events]
    for batch in batches(missed(n_calls // 12)):  # the unanswered calls' callers
        yield MissedCallRow.__table__, batch


def sqlite_value(value: Any) -> Any:
    """What SQLAlchemy writes into SQLite: UTC text times, JSON text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value


LOADED = (CallRow.__table__, CaseRow.__table__, CaseEventRow.__table__, MissedCallRow.__table__)


def index_ddl(dialect: Any) -> tuple[list[str], list[str]]:
    """The loaded tables' indexes (cti's, from the models): dropped for the load, made again after it (a
    sort is much faster than a million random insertions into each)."""
    indexes = [index for table in LOADED for index in table.indexes]
    return ([str(DropIndex(index).compile(dialect=dialect)) for index in indexes],
            [str(CreateIndex(index).compile(dialect=dialect)) for index in indexes])


def load_sqlite(path: str, n_calls: int, n_cases: int) -> None:
    """The bench's own load, with sqlite3: no journal, no syncing, one transaction, indexes made after."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-500000")  # KiB
    drops, creates = index_ddl(sqlite.dialect())
    db.execute("BEGIN")
    for statement in drops:
        db.execute(statement)
    for table, rows in tables(n_calls, n_cases):
        names = list(rows[0])
        db.executemany(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                       [[sqlite_value(row[name]) for name in names] for row in rows])
    for statement in creates:
        db.execute(statement)
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")  # as cti has it
    db.execute("ANALYZE")
    db.close()


async def load_postgres(url: str, schema: str, n_calls: int, n_cases: int) -> None:
    import asyncpg

    connection = await asyncpg.connect(url, server_settings={"search_path": schema})
    drops, creates = index_ddl(postgresql.dialect())
    for statement in drops:
        await connection.execute(statement)
    for table, rows in tables(n_calls, n_cases):
        names = list(rows[0])
        records = [[json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) or (
            name in ("extension_request", "details") and v is None) else v for name, v in
            ((name, row[name]) for name in names)] for row in rows]
        await connection.copy_records_to_table(table.name, records=records, columns=names, schema_name=schema)
    for statement in creates:
        await connection.execute(statement)
    await connection.execute(f"SELECT setval(pg_get_serial_sequence('{schema}.cases', 'id'), {n_cases})")
    await connection.execute("ANALYZE")
    await connection.close()


async def make_tallies(backend: str, database: Database) -> None:
    """The statistics' tallies made from the loaded calls and cases, as cti does for an existing database."""
    start = time.perf_counter()
    counted = await tallies.rebuild(database.engine, ZONE)
    print(f"{backend}: tallies made from {counted:,} calls in {time.perf_counter() - start:.0f} s", flush=True)
    start = time.perf_counter()
    counted = await case_tallies.rebuild(database.engine, ZONE)
    print(f"{backend}: tallies made from {counted:,} cases in {time.perf_counter() - start:.0f} s", flush=True)


Query = Callable[[], Awaitable[Any]]


def queries(database: Database) -> list[tuple[str, Query]]:
    engine = database.engine
    now = datetime(YEAR + 1, 1, 10, tzinfo=UTC)
    year = period(date(YEAR, 1, 1), date(YEAR, 12, 31), ZONE)
    month = period(date(YEAR, 3, 1), date(YEAR, 3, 31), ZONE)
    found: list[tuple[str, Query]] = []
    for span, (since, until) in (("year", year), ("month", month)):
        assert since is not None and until is not None
        for by in ("total", "hour", "day", "queue", "unit", "agent"):
            found.append((f"calls by {by}, {span}", lambda by=by, s=since, u=until: call_statistics(
                engine, by, ZONE, s, u)))
        found.append((f"calls by day, {span}, one unit", lambda s=since, u=until: call_statistics(
            engine, "day", ZONE, s, u, unit="unit-07")))
        for by in ("unit", "category", "legacy_number", "day", "month"):
            found.append((f"cases by {by}, {span}", lambda by=by, s=since, u=until: case_statistics(
                engine, by, ZONE, now, s, u)))
        found.append((f"cases by month, {span}, one unit", lambda s=since, u=until: case_statistics(
            engine, "month", ZONE, now, s, u, unit="unit-07")))
    return found


async def measure(database: Database, repeat: int) -> list[tuple[str, float, float, int]]:
    """(query, median seconds, slowest, rows) of each query run ``repeat`` times after one warm-up."""
    results = []
    for name, query in queries(database):
        rows = await query()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            await query()
            times.append(time.perf_counter() - start)
        results.append((name, statistics.median(times), max(times), len(rows)))
        print(f"  {name:38} {statistics.median(times) * 1000:8.1f} ms (slowest {max(times) * 1000:7.1f})"
              f"  {len(rows):4} rows", flush=True)
    return results


def report(backend: str, results: list[tuple[str, float, float, int]]) -> None:
    slowest = max(results, key=lambda r: r[1])
    met = sum(1 for r in results if r[1] <= 1.0)
    print(f"{backend}: {met} of {len(results)} queries within 1 s (median); slowest {slowest[0]} "
          f"{slowest[1] * 1000:.0f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    print(f"machine: {describe()}")
    print(f"data: {args.calls:,} calls, {args.cases:,} cases over {YEAR}, {args.calls // 12:,} missed calls")
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/stats.db"
            await (await Database.open(url)).close()  # the tables and indexes, as cti makes them
            start = time.perf_counter()
            load_sqlite(f"{folder}/stats.db", args.calls, args.cases)
            size = Path(f"{folder}/stats.db").stat().st_size
            print(f"sqlite: loaded in {time.perf_counter() - start:.0f} s, {size / 2**20:,.0f} MiB", flush=True)
            database = await Database.open(url)
            await make_tallies("sqlite", database)
            report("sqlite", await measure(database, args.repeat))
            await database.close()
    if args.only == "sqlite":
        return
    try:
        import asyncpg

        admin = await asyncio.wait_for(asyncpg.connect(args.pg), 3)
    except Exception as exc:
        print(f"postgresql: not reachable at {args.pg}: {exc}")
        return
    schema = "bench_stats"
    await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    try:
        options = {"connect_args": {"server_settings": {"search_path": schema}}}
        await (await Database.open(args.pg, **options)).close()
        start = time.perf_counter()
        await load_postgres(args.pg, schema, args.calls, args.cases)
        print(f"postgresql: loaded in {time.perf_counter() - start:.0f} s", flush=True)
        database = await Database.open(args.pg, **options)
        await make_tallies("postgresql", database)
        report("postgresql", await measure(database, args.repeat))
        await database.close()
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
