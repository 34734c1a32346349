"""Leases in the database: which cti instance runs a duty that must run once (cti.leader)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cti.store.models import LeaseRow
from cti.store.sql import insert_new


class LeaseStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._dialect = engine.dialect.name

    async def take(self, name: str, holder: str, ttl: float, now: datetime | None = None) -> bool:
        """Take or renew lease ``name`` for ``ttl`` seconds; True when ``holder`` has it now. Each step is
        one statement, so two instances asking at once cannot both get it: the row's insert (no lease
        yet), its renewal by its holder, or its take-over once it has expired."""
        now = now or datetime.now(UTC)
        until = now + timedelta(seconds=ttl)
        async with self._sessions.begin() as session:
            inserted = await session.scalar(insert_new(self._dialect, LeaseRow, ["name"]).values(
                name=name, holder=holder, expires_at=until, taken_at=now).returning(LeaseRow.name))
            if inserted is not None:
                return True
            for condition, values in (
                    (LeaseRow.holder == holder, {"expires_at": until}),
                    (LeaseRow.expires_at < now, {"holder": holder, "expires_at": until, "taken_at": now})):
                result = await session.execute(update(LeaseRow).where(LeaseRow.name == name, condition).values(values))
                if result.rowcount:  # type: ignore[attr-defined]
                    return True
        return False

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up at once (a stopping instance): another takes it at its next try."""
        async with self._sessions.begin() as session:
            await session.execute(update(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder)
                                  .values(expires_at=datetime(1970, 1, 1, tzinfo=UTC)))

    async def holder(self, name: str) -> tuple[str, datetime, datetime] | None:
        """Who holds ``name``, until when and since when (expired or not), or None."""
        async with self._sessions() as session:
            row = (await session.execute(select(LeaseRow.holder, LeaseRow.expires_at, LeaseRow.taken_at)
                                         .where(LeaseRow.name == name))).first()
        return (row.holder, row.expires_at, row.taken_at) if row is not None else None

