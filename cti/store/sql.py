"""SQL that SQLite and PostgreSQL spell each their own way, in one place for every store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite


def insert_new(dialect: str, table: Any, keys: Sequence[str] | None = None) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` on ``dialect`` ("sqlite" or "postgresql"): a row whose
    ``keys`` (any unique constraint when None) are taken already is left as it is, silently. Both
    backends spell it the same, but SQLAlchemy has it only in their own dialects' ``insert``."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=list(keys) if keys is not None else None)


def upsert(dialect: str, table: Any, keys: Sequence[str], columns: Sequence[str]) -> Insert:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` of ``columns`` with the new row's values, on ``dialect``."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return insert.on_conflict_do_update(index_elements=list(keys),
                                        set_={column: insert.excluded[column] for column in columns})
