"""The webhook outbox: every message to a unit's system is a row in the database before it is sent.

What a crash can and cannot do:

- A call's ``call.ended`` message is written in the same transaction as the call record
  (``CallStore.save``, the RecordWriter's batch): a stored call always has its message and a
  crash cannot separate them. Before that transaction both wait in the writer's memory, at most
  ``database.flush_interval`` (0.2 s) while the database answers: a crash then loses the record
  and its message together, the window call records have always had.
- A case's notice (``case.dispatch``, reminders, overdue notices, escalations, extension
  decisions, re-handling) is written in the same transaction as the case's transition
  (``CaseStore.save``): no window at all.
- The sender (``cti.webhooks``) marks a row delivered only after the unit's 2xx. A crash
  between that answer and the mark sends the message again after the restart: delivery is at
  least once, and the ``Idempotency-Key`` header (the row's key) lets the unit drop the repeat.
- The key is unique: writing one message twice (a batch tried again) leaves one row.

A row is pending (``delivered_at`` and ``dead_at`` empty), delivered, or dead (given up after
``webhooks.give_up_after_days``; kept and listed, sent again only by an admin's retry). Only
``purge`` deletes, and only delivered rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cti.store.models import WebhookOutboxRow as Row
from cti.store.sql import insert_new

STATES = ("pending", "delivered", "dead")
ERROR_LENGTH = 500  # characters of the last error kept
_PENDING = (Row.delivered_at.is_(None), Row.dead_at.is_(None))

# Told after messages were added (None), or after one was put up for a retry now (its destination).
Listener = Callable[[str | None], None]


@dataclass(frozen=True, slots=True)
class Message:
    """A message to be sent: where, for which unit, what, under which idempotency key."""

    destination: str
    unit: str
    event: str
    key: str
    body: str  # JSON
    headers: Mapping[str, str]


def message(destination: str, unit: str, event: str, key: str, payload: Mapping[str, Any],
            headers: Mapping[str, str]) -> Message:
    return Message(destination, unit, event, key, json.dumps(payload, ensure_ascii=False), dict(headers))


@dataclass(frozen=True, slots=True)
class Stored:
    """A message as the outbox keeps it."""

    id: int
    destination: str
    unit: str
    event: str
    key: str
    body: str
    headers: dict[str, str]
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str
    delivered_at: datetime | None
    dead_at: datetime | None

    @property
    def state(self) -> str:
        return "delivered" if self.delivered_at else "dead" if self.dead_at else "pending"


@dataclass(frozen=True, slots=True)
class Backlog:
    """The pending messages of one destination and unit."""

    destination: str
    unit: str
    count: int
    oldest: datetime  # when the oldest was written
    next_due: datetime  # the soonest next attempt


def now_utc() -> datetime:
    return datetime.now(UTC)


class OutboxStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._dialect = engine.dialect.name
        self._listeners: list[Listener] = []

    # -- writing ---------------------------------------------------------------------------

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def changed(self, retried: str | None = None) -> None:
        """Tell the senders of this process: call it after the commit that added messages."""
        for listener in list(self._listeners):
            listener(retried)

    async def stage(self, session: AsyncSession, messages: Sequence[Message], at: datetime) -> int:
        """Add ``messages`` in the caller's transaction (the caller calls changed() once it is
        committed). A key already in the outbox is left as it is; returns how many are new."""
        by_key = {m.key: m for m in messages}
        if not by_key:
            return 0
        rows = [{"destination": m.destination, "unit": m.unit, "event": m.event, "idempotency_key": m.key,
                 "body": m.body, "headers": dict(m.headers), "created_at": at, "attempts": 0,
                 "next_attempt_at": at, "last_error": "", "delivered_at": None, "dead_at": None}
                for m in by_key.values()]
        added = await session.scalars(insert_new(self._dialect, Row, ["idempotency_key"]).returning(Row.id), rows)
        return len(list(added))

    async def add(self, messages: Sequence[Message], at: datetime | None = None) -> int:
        """Add messages in a transaction of their own; returns how many are new."""
        async with self._sessions.begin() as session:
            added = await self.stage(session, messages, at or now_utc())
        if added:
            self.changed()
        return added

    # -- sending ---------------------------------------------------------------------------

    async def claim(self, destination: str, now: datetime, lease_until: datetime
                    ) -> tuple[Stored | None, datetime | None]:
        """The oldest message of ``destination`` due at ``now``, taken for one attempt: its attempt
        counted and its next one put off to ``lease_until``, so that no other sender takes it
        meanwhile and, should this one die mid-attempt, it is tried again then. Nothing due:
        (None, the soonest next attempt), or (None, None) when nothing is pending at all."""
        pending = (Row.destination == destination, *_PENDING)
        async with self._sessions.begin() as session:
            row = (await session.execute(select(*Row.__table__.columns).where(*pending, Row.next_attempt_at <= now)
                                         .order_by(Row.id).limit(1))).first()
            if row is None:
                return None, await session.scalar(select(func.min(Row.next_attempt_at)).where(*pending))
            taken = await session.execute(update(Row).where(Row.id == row.id, *_PENDING, Row.next_attempt_at <= now)
                                          .values(attempts=Row.attempts + 1, next_attempt_at=lease_until))
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                return None, now  # another sender took it first: look again
        return _stored(row, attempts=row.attempts + 1, next_attempt_at=lease_until), None

    async def delivered(self, message_id: int, at: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(update(Row).where(Row.id == message_id, Row.delivered_at.is_(None))
                                  .values(delivered_at=at, dead_at=None))

    async def failed(self, message_id: int, error: str, retry_at: datetime, dead_at: datetime | None, *,
                     hold: str | None = None) -> None:
        """An attempt failed: the error, and the next attempt (or, given up, when it died). ``hold``, a
        destination found unreachable: its other pending messages wait until ``retry_at`` too, so the
        oldest goes first again then, also after a restart, and the list shows when each will go."""
        async with self._sessions.begin() as session:
            await session.execute(update(Row).where(Row.id == message_id, *_PENDING).values(
                last_error=error[:ERROR_LENGTH], next_attempt_at=retry_at, dead_at=dead_at))
            if hold is not None:
                await session.execute(update(Row).values(next_attempt_at=retry_at).where(
                    Row.destination == hold, *_PENDING, Row.next_attempt_at < retry_at))

    async def release(self, message_ids: Sequence[int], at: datetime) -> None:
        """Attempts cut short (the sender stopping): due again at ``at`` rather than at their lease's end."""
        if message_ids:
            async with self._sessions.begin() as session:
                await session.execute(update(Row).where(Row.id.in_(list(message_ids)), *_PENDING)
                                      .values(next_attempt_at=at))

    # -- reading ---------------------------------------------------------------------------

    async def backlog(self) -> list[Backlog]:
        """The pending messages, per destination and unit."""
        query = (select(Row.destination, Row.unit, func.count(), func.min(Row.created_at),
                        func.min(Row.next_attempt_at)).where(*_PENDING).group_by(Row.destination, Row.unit))
        async with self._sessions() as session:
            return [Backlog(*row) for row in await session.execute(query)]

    async def dead(self) -> dict[str, int]:
        """The dead messages per unit."""
        query = select(Row.unit, func.count()).where(Row.dead_at.is_not(None)).group_by(Row.unit)
        async with self._sessions() as session:
            return {unit: count for unit, count in await session.execute(query)}

    async def messages(self, *, state: str | None = None, unit: str | None = None, limit: int = 100,
                       offset: int = 0) -> list[Stored]:
        """Messages in ``state`` (all when None): pending ones oldest first (the order they go in),
        the others newest first."""
        if limit < 0 or offset < 0:
            raise ValueError(f"a negative limit ({limit}) or offset ({offset})")
        query = select(*Row.__table__.columns)
        if state == "pending":
            query = query.where(*_PENDING).order_by(Row.id)
        elif state == "delivered":
            query = query.where(Row.delivered_at.is_not(None)).order_by(Row.id.desc())
        elif state == "dead":
            query = query.where(Row.dead_at.is_not(None)).order_by(Row.id.desc())
        elif state is None:
            query = query.order_by(Row.id.desc())
        else:
            raise ValueError(f"no state {state!r}: one of {', '.join(STATES)}")
        if unit is not None:
            query = query.where(Row.unit == unit)
        async with self._sessions() as session:
            return [_stored(row) for row in await session.execute(query.limit(limit).offset(offset))]

    async def get(self, message_id: int) -> Stored | None:
        async with self._sessions() as session:
            row = (await session.execute(select(*Row.__table__.columns).where(Row.id == message_id))).first()
        return _stored(row) if row is not None else None

    # -- by hand, and housekeeping -------------------------------------------------------------

    async def retry(self, message_id: int, at: datetime) -> Stored | None:
        """A pending or dead message due at ``at`` (a dead one is pending again); its destination's
        senders are told to try at once. A delivered message is returned as it is; None: no such message."""
        async with self._sessions.begin() as session:
            await session.execute(update(Row).where(Row.id == message_id, Row.delivered_at.is_(None))
                                  .values(dead_at=None, next_attempt_at=at))
            row = (await session.execute(select(*Row.__table__.columns).where(Row.id == message_id))).first()
        if row is None:
            return None
        stored = _stored(row)
        if stored.state == "pending":
            self.changed(stored.destination)
        return stored

    async def purge(self, delivered_before: datetime) -> int:
        """Delete the messages delivered before ``delivered_before`` (never a pending or dead one)."""
        async with self._sessions.begin() as session:
            result = await session.execute(delete(Row).where(Row.delivered_at < delivered_before))
        return int(result.rowcount)  # type: ignore[attr-defined]


def _stored(row: Any, **changes: Any) -> Stored:
    values = {"id": row.id, "destination": row.destination, "unit": row.unit, "event": row.event,
              "key": row.idempotency_key, "body": row.body, "headers": dict(row.headers),
              "created_at": row.created_at, "attempts": row.attempts, "next_attempt_at": row.next_attempt_at,
              "last_error": row.last_error, "delivered_at": row.delivered_at, "dead_at": row.dead_at}
    return Stored(**(values | changes))
