"""The risk alerts in the database (cti.hotspots): a sweep's raised, kept and cleared alerts written with their
webhook messages in one transaction (both or neither); the alerts in force read back at start."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cti.hotspots.detect import Alert, Detection
from cti.store.models import AlertRow
from cti.store.outbox import Message, OutboxStore
from cti.store.sql import upsert

COLUMNS = ("kind", "key", "severity", "title", "details", "since", "raised_at", "seen_at", "cleared_at")


class AlertStore:
    def __init__(self, engine: AsyncEngine, outbox: OutboxStore) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._dialect = engine.dialect.name
        self.outbox = outbox

    async def in_force(self) -> list[Alert]:
        """The alerts raised and not cleared."""
        async with self._sessions() as session:
            rows = await session.scalars(select(AlertRow).where(AlertRow.cleared_at.is_(None)))
            return [Alert(row.id, Detection(row.kind, row.key, row.severity, row.title, row.details, row.since),
                          row.raised_at, row.seen_at) for row in rows]

    async def save(self, raised: Sequence[Alert], kept: Sequence[Alert], cleared: Sequence[Alert],
                   messages: Sequence[Message], now: datetime) -> None:
        """One sweep's outcome: the new alerts, those found again (their counts and last sighting), those over."""
        async with self._sessions.begin() as session:
            if raised:
                # an alert raised again after it was cleared is the same row, raised anew
                await session.execute(upsert(self._dialect, AlertRow.__table__, ["id"], COLUMNS),
                                      [_values(a) for a in raised])
            for alert in kept:
                d = alert.detection
                await session.execute(update(AlertRow).where(AlertRow.id == alert.id).values(
                    severity=d.severity, title=d.title, details=d.details, seen_at=alert.seen_at))
            if cleared:
                await session.execute(update(AlertRow).where(AlertRow.id.in_([a.id for a in cleared]))
                                      .values(cleared_at=now))
            staged = await self.outbox.stage(session, messages, now)
        if staged:
            self.outbox.changed()


def _values(alert: Alert) -> dict[str, object]:
    d = alert.detection
    return {"id": alert.id, "kind": d.kind, "key": d.key, "severity": d.severity, "title": d.title,
            "details": d.details, "since": d.since, "raised_at": alert.raised_at, "seen_at": alert.seen_at,
            "cleared_at": None}
