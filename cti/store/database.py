"""The database: one engine, the tables created at start, and its stores."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from cti.store.calls import CallStore, make_engine
from cti.store.cases import CaseStore
from cti.store.models import Base, TokenRow
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
            await connection.run_sync(add_missing_columns)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()


def add_missing_columns(connection: Connection) -> None:
    """create_all makes missing tables but never adds a column to a table that exists. Until
    the Alembic migrations planned in issue 15, each column added since a release is added
    here by an explicit check of its own (SQLite and PostgreSQL alike)."""
    table = TokenRow.__tablename__
    if "last_used_at" not in {c["name"] for c in inspect(connection).get_columns(table)}:
        kind = TokenRow.__table__.c.last_used_at.type.compile(dialect=connection.dialect)
        connection.execute(text(f"ALTER TABLE {table} ADD COLUMN last_used_at {kind}"))
