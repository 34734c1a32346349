"""Call records persisted per second: the service's RecordWriter (batches off the AMI path)
into SQLite (WAL, synchronous=FULL: every committed record survives a power cut) and into
PostgreSQL when one is reachable. Each record carries a realistic timeline (offered, routed,
ringing, answered, recording, ended) and two parallel-ring legs. The database is counted
afterwards: nothing may be lost.

    .venv/bin/python bench/records.py [--count 20000] [--pg postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from bench.machine import describe  # noqa: E402
from cti.calls.events import CallAnswered, CallEnded, CallOffered, LegRinging, RecordingStarted, RouteDecided  # noqa: E402
from cti.calls.record import CallRecord, Leg  # noqa: E402
from cti.store.database import Database  # noqa: E402
from cti.store.models import CallRow  # noqa: E402
from cti.store.writer import RecordWriter  # noqa: E402

T0 = 1795281168.0


def record(n: int) -> CallRecord:
    linkedid = f"{int(T0) + n}.{n}"
    at = T0 + n
    timeline = (
        CallOffered(linkedid, at, "inbound", f"138{n:08d}", "张伟", "12369", f"PJSIP/carrier-{n:08x}"),
        RouteDecided(linkedid, at + 0.01, "12369", "市生态环境局", "ecology-environment", "remote_seat",
                     "parallel_ring"),
        LegRinging(linkedid, at + 0.5, "PJSIP/agent1001", "王芳", f"PJSIP/agent1001-{n:08x}"),
        CallAnswered(linkedid, at + 4, "PJSIP/agent1001", "王芳", f"PJSIP/agent1001-{n:08x}", 4.0),
        RecordingStarted(linkedid, at + 4.1, f"/var/spool/asterisk/monitor/cti/{linkedid}.wav"),
        CallEnded(linkedid, at + 64, 16, "Normal Clearing", True, False),
    )
    return CallRecord(
        linkedid=linkedid, direction="inbound", caller_number=f"138{n:08d}", caller_name="张伟",
        dialled_number="12369", arrived_at=at, ended_at=at + 64, unit="市生态环境局", unit_id="ecology-environment",
        treatment="remote_seat", queue="q12345", answered_at=at + 4, queue_wait=4.0, talk_time=60.0,
        answered_by="PJSIP/agent1001", answered_by_name="王芳", answered_channel=f"PJSIP/agent1001-{n:08x}",
        legs=(Leg("Local/q12345@cti-queue", "", "", at + 0.5, "answered", at + 4),
              Leg("PJSIP/seat-12369", "", "", at + 0.5, "cancel", at + 4)),
        hangup_cause=16, hangup_cause_text="Normal Clearing",
        recording=f"/var/spool/asterisk/monitor/cti/{linkedid}.wav", timeline=timeline)


async def persist(url: str, count: int, **engine: object) -> tuple[float, int]:
    database = await Database.open(url, **engine)
    records = [record(n) for n in range(count)]
    writer = RecordWriter(database.calls)
    writer.start()
    start = time.perf_counter()
    for r in records:
        writer.put(r)
        if writer.backlog > 1000:
            await asyncio.sleep(0)  # the AMI path keeps putting; the writer drains in batches
    await writer.close()
    seconds = time.perf_counter() - start
    async with database.engine.connect() as connection:
        stored = (await connection.execute(select(func.count()).select_from(CallRow))).scalar_one()
    await database.close()
    return seconds, stored


def bare_sqlite(path: str, count: int) -> float:
    """The baseline: Python's sqlite3 alone writing the same rows (the call and its six timeline
    events) in batches of 200, WAL and synchronous=FULL like cti, no SQLAlchemy, no asyncio."""
    import json
    import sqlite3

    records = [record(n) for n in range(count)]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE calls (linkedid TEXT PRIMARY KEY, caller TEXT, dialled TEXT, arrived REAL, "
               "ended REAL, answered_by TEXT, legs TEXT, recording TEXT)")
    db.execute("CREATE TABLE events (linkedid TEXT, seq INTEGER, at REAL, kind TEXT, data TEXT, "
               "PRIMARY KEY (linkedid, seq))")
    start = time.perf_counter()
    for i in range(0, count, 200):
        batch = records[i:i + 200]
        db.execute("BEGIN")
        db.executemany("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
            (r.linkedid, r.caller_number, r.dialled_number, r.arrived_at, r.ended_at, r.answered_by,
             json.dumps([[leg.device, leg.name, leg.channel, leg.rang_at, leg.outcome, leg.ended_at]
                         for leg in r.legs]), r.recording)
            for r in batch])
        db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", [
            (r.linkedid, n, e.at, e.kind, json.dumps(e.data(), ensure_ascii=False))
            for r in batch for n, e in enumerate(r.timeline)])
        db.execute("COMMIT")
    seconds = time.perf_counter() - start
    db.close()
    return seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory() as folder:
        seconds, stored = await persist(f"sqlite:///{folder}/bench.db", args.count)
        floor = bare_sqlite(f"{folder}/bare.db", args.count)
    print(f"sqlite      {args.count:,} records in {seconds:.2f} s: {args.count / seconds:,.0f} records/s; "
          f"{stored:,} in the database")
    print(f"baseline    sqlite3 alone, same rows and durability: {args.count / floor:,.0f} records/s; "
          f"cti / baseline: {floor / seconds:.2f}")
    try:
        import asyncpg

        admin = await asyncio.wait_for(asyncpg.connect(args.pg), 3)
    except Exception as exc:  # no PostgreSQL here: say so, measure SQLite only
        print(f"postgresql  not reachable at {args.pg}: {exc}")
        return
    schema = "bench_records"
    await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    try:
        seconds, stored = await persist(args.pg, args.count,
                                        connect_args={"server_settings": {"search_path": schema}})
        print(f"postgresql  {args.count:,} records in {seconds:.2f} s: {args.count / seconds:,.0f} records/s; "
              f"{stored:,} in the database")
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
