"""The schema's revisions (cti.store.migrations), on SQLite and PostgreSQL: the revisions make exactly the tables
of cti.store.models; a database release 0.1.0 made and filled is upgraded with nothing lost; a database a newer
cti upgraded is refused untouched; `cti db upgrade` and `cti db current`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Boolean, Connection, DateTime, MetaData, Table, func, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cti.cases.model import CaseEvent
from cti.cases.stats import GROUPS
from cti.cli import main
from cti.stats.cases import case_statistics
from cti.store import case_tallies, migrations, search_index
from cti.store.calls import make_engine
from cti.store.database import Database
from cti.store.models import Base
from tests.test_stats import ZONE

RELEASE_0_1_0 = Path(__file__).parent / "fixtures" / "databases" / "release-0.1.0.json"
NOW = datetime(2026, 12, 31, tzinfo=UTC)


def differences(connection: Connection) -> list[Any]:
    """What alembic's autogenerate would change to make the database's tables those of the models (the knowledge
    base's search index is no model: cti.store.search_index)."""
    context = MigrationContext.configure(connection, opts={"include_name": search_index.include_name})
    return list(compare_metadata(context, Base.metadata))


async def emptied(database: Database) -> AsyncEngine:
    """The fixture's database, its tables dropped (a fresh schema on PostgreSQL, a fresh file on SQLite)."""
    engine: AsyncEngine = database.engine
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.execute(text("DROP TABLE alembic_version"))
    return engine


async def test_the_revisions_make_the_tables_of_the_models(database: Database) -> None:
    async with database.engine.connect() as connection:  # made by create_all and recorded at the newest
        assert await connection.run_sync(differences) == []
        assert await connection.run_sync(migrations.current) == migrations.script().get_current_head()
    engine = await emptied(database)
    async with engine.begin() as connection:  # made revision by revision
        await connection.run_sync(lambda sync: migrations._run(sync, migrations.script(), "head"))
    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def load_release_0_1_0(engine: AsyncEngine) -> dict[str, int]:
    """Release 0.1.0's tables (revision 0001) with its rows and no revision recorded, as 0.1.0 left a database;
    returns the rows per table."""
    dump: dict[str, list[dict[str, Any]]] = json.loads(RELEASE_0_1_0.read_text())
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: migrations._run(sync, migrations.script(), migrations.BASELINE))
        await connection.execute(text("DROP TABLE alembic_version"))
        tables = MetaData()
        await connection.run_sync(tables.reflect)
        assert set(tables.tables) == set(dump)
        for table in tables.sorted_tables:
            if dump[table.name]:
                await connection.execute(insert(table), [_typed(table, row) for row in dump[table.name]])
            if connection.dialect.name == "postgresql" and "id" in table.c and table.c.id.autoincrement:
                await connection.execute(text(  # as 0.1.0's own inserts would have left the sequence
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table.name}), false)"))
    return {name: len(rows) for name, rows in dump.items()}


def _typed(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    typed = dict(row)
    for column in table.c:
        value = row.get(column.name)
        if value is None:
            continue
        if isinstance(column.type, DateTime):
            typed[column.name] = datetime.fromisoformat(value).replace(tzinfo=UTC)
        elif isinstance(column.type, Boolean):
            typed[column.name] = bool(value)
    return typed


async def counts(engine: AsyncEngine, names: list[str]) -> dict[str, int]:
    async with engine.connect() as connection:
        tables = MetaData()
        await connection.run_sync(tables.reflect)
        return {name: int((await connection.execute(select(func.count()).select_from(tables.tables[name])))
                          .scalar() or 0) for name in names}


async def test_a_database_of_release_0_1_0_is_upgraded_with_nothing_lost(database: Database) -> None:
    engine = await emptied(database)
    before = await load_release_0_1_0(engine)
    upgraded = database  # its stores, on the engine that now holds 0.1.0's database
    async with engine.begin() as connection:
        assert await connection.run_sync(migrations.current) is None
        assert await connection.run_sync(migrations.migrate) == migrations.script().get_current_head()
    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []
    assert await counts(engine, list(before)) == before  # every row of every table of 0.1.0
    await case_tallies.ensure(engine, ZONE)  # the new tallies made from the old cases, as at start
    cases = [await upgraded.cases.get(n) for n in range(1, before["cases"] + 1)]
    assert [c.content for c in cases if c] == ["公交", "噪音", "路灯", "占道", "占道", "社保", "排污"]
    assert len(await upgraded.calls.calls(limit=100)) == before["calls"]
    assert [t.label for t in await upgraded.users.tokens("crm")] == ["bridge"]
    for by in GROUPS:
        assert await case_statistics(engine, by, ZONE, NOW) == await case_statistics(
            engine, by, ZONE, NOW, use_tallies=False)
    assert (await case_statistics(engine, "unit", ZONE, NOW))[-1].cases == 6
    # and it works on: a new case after the old ones
    opened = await upgraded.cases.create(*_new_case(cases[0]))
    assert opened.id == before["cases"] + 1


def _new_case(like: Any) -> tuple[Any, Any]:
    case = dataclasses.replace(like, id=0, content="新的工单", state="accepted", version=0)
    return case, CaseEvent(0, NOW, "1001", "agent", "create", "", "accepted")


async def test_a_database_a_newer_cti_upgraded_is_refused_untouched(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        await connection.execute(text("DROP TABLE case_tallies"))  # as if a newer revision had moved it
    async with database.engine.begin() as connection:
        with pytest.raises(migrations.SchemaError, match="revision 9999, which this cti does not know"):
            await connection.run_sync(migrations.migrate)
    async with database.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    assert "case_tallies" not in names  # nothing was made again


async def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cti.db'}"
    engine = make_engine(url)
    await load_release_0_1_0(engine)
    await engine.dispose()
    assert await _cli(["db", "current", "--db", url]) == 0
    assert capsys.readouterr().out.startswith("none")
    head = migrations.script().get_current_head()
    assert await _cli(["db", "upgrade", "--db", url]) == 0
    assert capsys.readouterr().out.strip() == f"at revision {head} (was None)"
    assert await _cli(["db", "upgrade", "--db", url]) == 0
    assert "nothing to do" in capsys.readouterr().out
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    await engine.dispose()
    assert await _cli(["db", "upgrade", "--db", url]) == 2
    assert "revision 9999" in capsys.readouterr().err


async def _cli(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)
