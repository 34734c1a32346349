"""The call store on a real database: SQLite file and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Sequence

import pytest

from cti.calls.events import CallEnded, CallOffered, CallTransferred
from cti.calls.record import CallRecord, Leg, LiveCall, Transfer
from cti.replay import replay
from cti.settings import AmiSettings
from cti.store.calls import CallStore, async_url
from cti.store.journal import CallJournal
from cti.store.outbox import message
from cti.store.writer import RecordWriter
from tests.fakeami import FIXTURES

T0 = 1795281168.023  # 2026-11-21 17:12:48.023 UTC


def make_record(linkedid: str = "1795281168.14", **changes: object) -> CallRecord:
    record = CallRecord(
        linkedid=linkedid, direction="inbound", caller_number="13800000001", caller_name="市民张三",
        dialled_number="12315", arrived_at=T0, ended_at=T0 + 10, queue="q12345", queued_at=T0 + 2,
        answered_at=T0 + 4, queue_wait=2.0, talk_time=6.0, answered_by="PJSIP/agent1001",
        answered_by_name="Seat 1001", answered_channel="PJSIP/agent1001-00000003",
        transfers=(Transfer("blind", "110", T0 + 7, "PJSIP/agent1001-00000003", "PJSIP/carrier-00000001"),),
        legs=(Leg("PJSIP/seat2001", "Remote seat 2001", "PJSIP/seat2001-00000002", T0 + 2, "cancel", T0 + 4),
              Leg("PJSIP/agent1001", "Seat 1001", "PJSIP/agent1001-00000003", T0 + 2, "answered", T0 + 4)),
        hangup_cause=16, hangup_cause_text="Normal Clearing", recording="/var/spool/asterisk/monitor/a.wav",
        timeline=(CallOffered(linkedid, T0, "inbound", "13800000001", "市民张三", "12315", "PJSIP/carrier-00000001"),
                  CallTransferred(linkedid, T0 + 7, "blind", "110", "PJSIP/agent1001-00000003",
                                  "PJSIP/carrier-00000001"),
                  CallEnded(linkedid, T0 + 10, 16, "Normal Clearing", True, False)),
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


async def test_a_record_reads_back_field_for_field(store: CallStore) -> None:
    record = make_record()
    assert await store.save([record]) == 1
    [stored] = await store.calls()
    assert stored == record  # every field, times to the microsecond, UTF-8 name intact
    assert [e.kind for e in await store.timeline(record.linkedid)] == ["offered", "transferred", "ended"]
    assert await store.timeline(record.linkedid) == list(record.timeline)


async def test_saving_the_same_call_twice_keeps_one_row(store: CallStore) -> None:
    record = make_record()
    assert await store.save([record]) == 1
    assert await store.save([record, dataclasses.replace(record, caller_name="changed")]) == 0
    [stored] = await store.calls()
    assert stored.caller_name == "市民张三"
    assert len(await store.timeline(record.linkedid)) == 3


async def test_concurrent_writers_of_the_same_calls_do_not_fail(store: CallStore) -> None:
    records = [make_record(f"1795281168.{i}") for i in range(50)]
    results = await asyncio.gather(store.save(records), store.save(records[::-1]))
    assert sum(results) == 50
    assert len(await store.calls(limit=100)) == 50



async def test_instances_writing_the_same_calls_in_other_orders_take_turns(store: CallStore) -> None:
    """Every cti instance writes every call it saw end, each in its own batches and order: on PostgreSQL
    such transactions, inserting the same calls and moving the same tallies, deadlocked (seen in
    drills/pair.py at 70 calls a second) until they took turns."""
    rng = random.Random(7)
    written: set[str] = set()
    for round_ in range(8):
        records = [make_record(f"1795281168.{round_}.{i}", queue=f"q{i % 3}", arrived_at=T0 + i * 60)
                   for i in range(60)]
        batches = [rng.sample(records, 45) for _ in range(4)]
        new = await asyncio.gather(*(store.save(batch) for batch in batches))
        round_ids = {r.linkedid for batch in batches for r in batch}
        assert sum(new) == len(round_ids)  # each call new to exactly one of them
        written |= round_ids
    assert {r.linkedid for r in await store.calls(limit=1000)} == written

async def test_unanswered_call_with_no_legs(store: CallStore) -> None:
    record = make_record(answered_at=None, queue_wait=None, talk_time=None, answered_by="", answered_by_name="",
                         answered_channel="", transfers=(), legs=(), hangup_cause=None, queued_at=None,
                         timeline=())
    await store.save([record])
    assert await store.calls() == [record]


async def test_queries_by_caller_and_by_linkedid(store: CallStore) -> None:
    await store.save([make_record("a", arrived_at=T0), make_record("b", arrived_at=T0 + 60, caller_number="139"),
                      make_record("c", arrived_at=T0 + 120)])
    assert [r.linkedid for r in await store.calls()] == ["c", "b", "a"]  # newest first
    assert [r.linkedid for r in await store.calls(caller_number="13800000001")] == ["c", "a"]
    assert [r.linkedid for r in await store.calls(linkedids=["a", "c"])] == ["a", "c"]


async def test_every_transcript_record_round_trips(store: CallStore) -> None:
    records = [r for name in ("S3_blind_transfer_110", "P6_sip_threeway_confbridge", "S8_originate_callback")
               for r in replay([FIXTURES / f"{name}.raw"], AmiSettings()).records]
    assert await store.save(records) == 4
    stored = await store.calls(linkedids=[r.linkedid for r in records])
    assert stored == records


async def test_the_writer_batches_and_retries_until_the_database_answers(sqlite_store: CallStore) -> None:
    failures = {"left": 2}
    real_save = sqlite_store.save

    async def flaky_save(records, messages=()):  # the database is down for two attempts
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("database unavailable")
        return await real_save(records, messages)

    sqlite_store.save = flaky_save  # type: ignore[method-assign]
    writer = RecordWriter(sqlite_store, batch_size=3, flush_interval=0.01, retry_max=0.05)
    writer.start()
    for i in range(7):  # every other one with its webhook message, which is kept with it through the retries
        record = make_record(f"w{i}")
        key = f"call.ended:{record.linkedid}"
        writer.put(record, [message("http://unit/hook", "unit", "call.ended", key, {}, {})] if i % 2 else [])
    await asyncio.wait_for(writer.flush(), 5)
    await writer.close()
    assert writer.written == 7
    assert len(await sqlite_store.calls(limit=10)) == 7
    assert sorted(m.key for m in await sqlite_store.outbox.messages()) == [
        "call.ended:w1", "call.ended:w3", "call.ended:w5"]


def test_plain_urls_get_the_async_drivers() -> None:
    assert async_url("sqlite:///cti.db") == "sqlite+aiosqlite:///cti.db"
    assert async_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"


async def test_a_lone_record_is_written_after_the_flush_interval(sqlite_store: CallStore) -> None:
    """No flush(), no close(): a single finished call must still reach the database."""
    from tests.fakeami import until

    writer = RecordWriter(sqlite_store, batch_size=200, flush_interval=0.05)
    writer.start()
    writer.put(make_record("lone"))
    await until(lambda: writer.written == 1, timeout=2, what="the lone record")
    await writer.close()
    assert [r.linkedid for r in await sqlite_store.calls()] == ["lone"]


def live_call(linkedid: str, **changes: object) -> LiveCall:
    call = LiveCall(linkedid=linkedid, direction="inbound", caller_number="13800000001", caller_name="市民张三",
                    dialled_number="12315", unit="市市场监管局", unit_id="market-regulation",
                    treatment="remote_seat", arrived_at=T0, queue="q12345", answered_at=None, answered_by="",
                    citizen_channel="PJSIP/carrier-00000001", agent_channel="")
    return dataclasses.replace(call, **changes)  # type: ignore[arg-type]


async def test_the_journal_keeps_the_latest_state_of_each_call_until_its_record(store: CallStore) -> None:
    await store.keep_in_progress([live_call("1795281168.14"), live_call("1795281168.15")])
    answered = live_call("1795281168.14", answered_at=T0 + 4, answered_by="PJSIP/agent1001",
                         agent_channel="PJSIP/agent1001-00000003", recording="/rec/a.wav")
    await store.keep_in_progress([answered])  # the same call, later
    assert sorted(await store.in_progress(), key=lambda c: c.linkedid) == [answered, live_call("1795281168.15")]
    await store.save([make_record("1795281168.14")])  # its record takes its row away, in one transaction
    assert await store.in_progress() == [live_call("1795281168.15")]


async def test_a_journal_row_written_after_its_record_is_forgotten(store: CallStore) -> None:
    """The journal's write and the record's may cross: a row whose call is recorded is not a call in progress."""
    await store.save([make_record("1795281168.16")])
    await store.keep_in_progress([live_call("1795281168.16")])
    assert await store.in_progress() == []


async def test_the_journal_writes_what_changed_and_after_a_failure_all_of_it(store: CallStore) -> None:
    live = [live_call("1795281168.20"), live_call("1795281168.21", direction="outbound")]
    written: list[list[str]] = []
    real = store.keep_in_progress

    async def keep(calls: Sequence[LiveCall]) -> None:
        written.append([c.linkedid for c in calls])
        if len(written) == 2:
            raise OSError("database away")
        await real(calls)

    store.keep_in_progress = keep  # type: ignore[method-assign]
    journal = CallJournal(store, lambda: live, interval=60)
    await journal.write()
    await journal.write()  # nothing changed
    live[0] = dataclasses.replace(live[0], answered_at=T0 + 3, answered_by="PJSIP/agent1002")
    await journal.write()  # fails
    await journal.write()  # the change again
    assert written == [["1795281168.20"], ["1795281168.20"], ["1795281168.20"]]  # callbacks are not journalled
    assert (journal.outage.total, journal.outage.failures) == (1, 0)
    assert [c.answered_by for c in await store.in_progress()] == ["PJSIP/agent1002"]


def test_an_outage_is_told_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from cti.store.outage import Outage

    outage = Outage(logging.getLogger("cti.test"), "reading the outbox")
    with caplog.at_level(logging.INFO, logger="cti.test"):
        for _ in range(300):  # a minute of retries, five a second
            outage.failed(ConnectionRefusedError(111, "Connect call failed"))
        outage.worked()
        outage.worked()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "reading the outbox failed ([Errno 111] Connect call failed); trying again until it works"),
        ("INFO", "reading the outbox works again, after 300 failed attempts")]
    assert caplog.records[0].exc_info is not None and outage.total == 300
