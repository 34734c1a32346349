"""The database goes away while calls end: their records and cases wait in memory and are all written,
once each, when it is back. PostgreSQL behind a TCP proxy that refuses new connections and drops the
open ones; SQLite locked by another connection (a backup holding BEGIN EXCLUSIVE) for longer than
cti's busy_timeout. The drills of RELIABILITY.md do the same for a minute under traffic."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import func, select

from cti.calls.record import CallRecord
from cti.cases.service import CaseService
from cti.store.database import Database
from cti.store.models import CallRow, CaseCallRow, MissedCallRow
from cti.store.writer import RecordWriter
from drills.common import TcpProxy
from tests.conftest import _PG, PG_URL
from tests.fakeami import until
from tests.test_cases_store import CONFIGURATION
from tests.test_store import make_record

CALLS = 20  # ten answered (each gets a case), ten not (each goes on the missed-call list)


def calls(first: int, count: int) -> list[CallRecord]:
    return [make_record(f"1795281200.{n}", caller_number=f"1380000{n:04d}",
                        **({} if n % 2 else {"answered_at": None, "answered_by": "", "talk_time": None}))
            for n in range(first, first + count)]


async def counts(database: Database) -> tuple[int, int, int, int]:
    """Call rows, distinct Linkedids among them, calls with a case, missed-call entries."""
    async with database.engine.connect() as connection:
        rows = await connection.scalar(select(func.count()).select_from(CallRow))
        distinct = await connection.scalar(select(func.count(func.distinct(CallRow.linkedid))))
        cased = await connection.scalar(select(func.count()).select_from(CaseCallRow))
        missed = await connection.scalar(select(func.count()).select_from(MissedCallRow))
    return int(rows or 0), int(distinct or 0), int(cased or 0), int(missed or 0)


async def through_an_outage(database: Database, outage: Callable[[], Awaitable[None]]) -> tuple[int, int, int, int]:
    """Half the calls end before the outage, half during it (``outage`` returns when it is over)."""
    writer = RecordWriter(database.calls, batch_size=5, flush_interval=0.01, retry_max=0.3)
    cases = CaseService(database.cases, lambda: CONFIGURATION.catalogue, CONFIGURATION.trunk_map.zone)
    stop = asyncio.Event()
    writer.start()
    intake = asyncio.create_task(cases.intake(stop, interval=0.01))

    def end(records: list[CallRecord]) -> None:
        for record in records:  # as Service._finished does
            writer.put(record)
            cases.call_ended(record)

    try:
        end(calls(0, CALLS // 2))
        await writer.flush()
        await until(lambda: cases.backlog == 0, what="the first cases")
        during = asyncio.create_task(outage())
        await asyncio.sleep(0.2)
        end(calls(CALLS // 2, CALLS // 2))
        await during
        await asyncio.wait_for(writer.flush(), 30)
        await until(lambda: cases.backlog == 0, what="the cases", timeout=30)
        for _ in range(300):
            seen = await counts(database)
            if seen[2] + seen[3] == CALLS:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(intake, 30)
        await writer.close()
    return await counts(database)


def failed_writes(caplog: pytest.LogCaptureFixture) -> int:
    return sum("call records failed; retrying" in r.getMessage() for r in caplog.records)


@asynccontextmanager
async def postgresql_through(proxy: TcpProxy) -> AsyncIterator[Database]:
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_URL)
    await admin.execute(f"CREATE SCHEMA {schema}")
    parts = urlsplit(PG_URL)
    host = f"{parts.username}@" if parts.username else ""
    via = urlunsplit(parts._replace(netloc=f"{host}127.0.0.1:{proxy.port}"))
    database = await Database.open(via, connect_args={"server_settings": {"search_path": schema}})
    try:
        yield database
    finally:
        await database.close()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.mark.skipif(not _PG, reason=f"PostgreSQL not reachable at {PG_URL} (set CTI_TEST_PG_URL)")
async def test_postgresql_unreachable_delays_records_and_cases_and_loses_none(
        caplog: pytest.LogCaptureFixture) -> None:
    parts = urlsplit(PG_URL)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.up()

    async def outage() -> None:
        dropped = await proxy.down()
        assert dropped >= 1  # the pool's connections, cut under it
        await asyncio.sleep(2.0)
        await proxy.up()

    try:
        async with postgresql_through(proxy) as database:
            rows, distinct, cased, missed = await through_an_outage(database, outage)
    finally:
        await proxy.close()
    assert (rows, distinct, cased, missed) == (CALLS, CALLS, CALLS // 2, CALLS // 2)
    assert failed_writes(caplog) >= 1  # the fault was felt


async def test_sqlite_locked_by_another_process_delays_records_and_cases_and_loses_none(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "locked.db"
    database = await Database.open(f"sqlite:///{path}")

    async def outage() -> None:
        # longer than cti's busy_timeout (5 s): its writes fail, then retry. Taken off the event loop: a
        # write cti began must be able to commit (through the loop) before the lock can be had
        other = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        await asyncio.to_thread(other.execute, "BEGIN EXCLUSIVE")
        await asyncio.sleep(6.0)
        other.execute("COMMIT")
        other.close()

    try:
        rows, distinct, cased, missed = await through_an_outage(database, outage)
    finally:
        await database.close()
    assert (rows, distinct, cased, missed) == (CALLS, CALLS, CALLS // 2, CALLS // 2)
    assert failed_writes(caplog) >= 1  # the fault was felt
