"""Call records in the database: save idempotently, read back."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from cti.calls.events import CallEvent, event_from_data
from cti.calls.record import CallRecord, Leg, LiveCall, Transfer
from cti.store import tallies as call_tallies
from cti.store.models import CallEventRow, CallInProgressRow, CallRow
from cti.store.outbox import Message, OutboxStore
from cti.store.sql import CALL_WRITES, insert_new, take_turn, upsert


def async_url(url: str) -> str:
    """Accept plain ``sqlite:///`` and ``postgresql://`` URLs; use the async drivers."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
              "postgres": "postgresql+asyncpg"}.get(scheme, scheme)
    return f"{driver}://{rest}"


def make_engine(url: str, **options: Any) -> AsyncEngine:
    engine = create_async_engine(async_url(url), **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (cti calls, the desk) work while the service writes;
    # synchronous=FULL keeps every committed record through a power cut.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class CallStore:
    def __init__(self, engine: AsyncEngine, outbox: OutboxStore | None = None) -> None:
        self.engine = engine
        self.outbox = outbox or OutboxStore(engine)
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._dialect = engine.dialect.name

    async def save(self, records: Sequence[CallRecord], messages: Sequence[Message] = ()) -> int:
        """Write finished calls in one transaction, with the webhook ``messages`` that report
        them (a stored call always has its message); a Linkedid already stored is left as it
        is, so writing the same call twice is harmless (so is its message, under its key).
        The new calls are added to the statistics' tallies (cti.store.tallies) in the same transaction.
        Returns how many calls were new. Every cti instance writes every call: they take turns, since two
        transactions inserting the same calls and moving the same tallies in another order deadlock."""
        if not records:
            return 0
        by_id = {r.linkedid: r for r in records}
        async with self._sessions.begin() as session:
            await take_turn(session, self._dialect, CALL_WRITES)
            inserted = set(await session.scalars(
                insert_new(self._dialect, CallRow, ["linkedid"]).returning(CallRow.linkedid),
                [_call_row(r) for r in by_id.values()]))
            rows = [row for linkedid in inserted for row in _event_rows(by_id[linkedid])]
            if rows:
                await session.execute(insert_new(self._dialect, CallEventRow), rows)
            await call_tallies.add(session, self._dialect, [by_id[linkedid] for linkedid in inserted])  # new only
            queued = await self.outbox.stage(session, messages, datetime.now(UTC))
            await session.execute(delete(CallInProgressRow).where(CallInProgressRow.linkedid.in_(list(by_id))))
        if queued:
            self.outbox.changed()
        return len(inserted)

    async def keep_in_progress(self, calls: Sequence[LiveCall]) -> None:
        """Remember calls in progress as they are now (the journal a restarted cti reads, cti.store.journal)."""
        if not calls:
            return
        now = datetime.now(UTC)
        rows = [{"linkedid": c.linkedid, "data": dataclasses.asdict(c), "updated_at": now} for c in calls]
        async with self._sessions.begin() as session:
            await session.execute(upsert(self._dialect, CallInProgressRow, ["linkedid"], ["data", "updated_at"]), rows)

    async def in_progress(self) -> list[LiveCall]:
        """The calls a cti that stopped was following and never recorded, as it last knew them. (A call
        recorded after the journal last wrote it is forgotten here.)"""
        async with self._sessions.begin() as session:
            recorded = select(CallRow.linkedid).where(CallRow.linkedid == CallInProgressRow.linkedid)
            await session.execute(delete(CallInProgressRow).where(recorded.exists()))
            rows = list(await session.scalars(select(CallInProgressRow).order_by(CallInProgressRow.updated_at)))
        names = {f.name for f in dataclasses.fields(LiveCall)}
        return [LiveCall(**{k: v for k, v in row.data.items() if k in names}) for row in rows]

    async def calls(self, *, limit: int = 50, offset: int = 0, linkedids: Sequence[str] | None = None,
                    caller_number: str | None = None, unit_id: str | None = None) -> list[CallRecord]:
        """Stored calls, newest first (or in the order of ``linkedids`` when given); with ``unit_id``,
        only the calls routed to that unit."""
        if limit < 0 or offset < 0:  # SQLite reads LIMIT -1 as no limit; PostgreSQL refuses it
            raise ValueError(f"a negative limit ({limit}) or offset ({offset})")
        query = select(*CallRow.__table__.columns)  # rows, not ORM objects: every screen-pop reads history
        if linkedids is not None:
            query = query.where(CallRow.linkedid.in_(list(linkedids)))
        if caller_number is not None:
            query = query.where(CallRow.caller_number == caller_number)
        if unit_id is not None:
            query = query.where(CallRow.unit_id == unit_id)
        query = query.order_by(CallRow.arrived_at.desc(), CallRow.id.desc()).limit(limit).offset(offset)
        async with self._sessions() as session:
            rows = list(await session.execute(query))
        records = [_record(row) for row in rows]
        if linkedids is not None:
            order = {linkedid: i for i, linkedid in enumerate(linkedids)}
            records.sort(key=lambda r: order.get(r.linkedid, len(order)))
        return records

    async def timeline(self, linkedid: str) -> list[CallEvent]:
        query = select(CallEventRow).where(CallEventRow.linkedid == linkedid).order_by(CallEventRow.seq)
        async with self._sessions() as session:
            rows = list(await session.scalars(query))
        return [event_from_data(row.kind, row.linkedid, row.at.timestamp(), row.data) for row in rows]


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _call_row(r: CallRecord) -> dict[str, Any]:
    return {
        "linkedid": r.linkedid, "direction": r.direction, "caller_number": r.caller_number,
        "caller_name": r.caller_name, "dialled_number": r.dialled_number, "unit": r.unit, "unit_id": r.unit_id,
        "treatment": r.treatment, "queue": r.queue,
        "arrived_at": _time(r.arrived_at), "queued_at": _time(r.queued_at),
        "answered_at": _time(r.answered_at), "ended_at": _time(r.ended_at),
        "queue_wait": r.queue_wait, "talk_time": r.talk_time, "answered_by": r.answered_by,
        "answered_by_name": r.answered_by_name, "answered_channel": r.answered_channel,
        "transfers": [{"kind": t.kind, "target": t.target, "at": t.at, "transferer": t.transferer,
                       "transferee": t.transferee, "outcome": t.outcome, "reached": t.reached,
                       "presented": t.presented}
                      for t in r.transfers],
        "legs": [{"device": leg.device, "name": leg.name, "channel": leg.channel, "rang_at": leg.rang_at,
                  "outcome": leg.outcome, "ended_at": leg.ended_at, "attempts": leg.attempts} for leg in r.legs],
        "hangup_cause": r.hangup_cause, "hangup_cause_text": r.hangup_cause_text,
        "recording": r.recording, "estimated": r.estimated,
    }


def _event_rows(r: CallRecord) -> list[dict[str, Any]]:
    return [{"linkedid": r.linkedid, "seq": i, "at": _time(e.at), "kind": e.kind, "data": e.data()}
            for i, e in enumerate(r.timeline)]


def _seconds(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _record(row: Any) -> CallRecord:
    return CallRecord(
        linkedid=row.linkedid, direction=row.direction, caller_number=row.caller_number,
        caller_name=row.caller_name, dialled_number=row.dialled_number, unit=row.unit, unit_id=row.unit_id,
        treatment=row.treatment, queue=row.queue,
        arrived_at=row.arrived_at.timestamp(), queued_at=_seconds(row.queued_at),
        answered_at=_seconds(row.answered_at), ended_at=row.ended_at.timestamp(),
        queue_wait=row.queue_wait, talk_time=row.talk_time, answered_by=row.answered_by,
        answered_by_name=row.answered_by_name, answered_channel=row.answered_channel,
        transfers=tuple(Transfer(**t) for t in row.transfers),
        legs=tuple(Leg(**leg) for leg in row.legs),
        hangup_cause=row.hangup_cause, hangup_cause_text=row.hangup_cause_text,
        recording=row.recording, estimated=row.estimated,
    )
