"""The database: one engine, the tables created at start, and its stores."""

from __future__ import annotations

from typing import Any

from cti.store.calls import CallStore, make_engine
from cti.store.cases import CaseStore
from cti.store.models import Base
from cti.store.users import UserStore


class Database:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.calls = CallStore(engine)
        self.users = UserStore(engine)
        self.cases = CaseStore(engine)

    @classmethod
    async def open(cls, url: str, **engine_options: Any) -> Database:
        """Connect and create the tables that are missing. ``engine_options`` go to
        SQLAlchemy's create_async_engine (pool sizes, connect_args)."""
        engine = make_engine(url, **engine_options)
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()
