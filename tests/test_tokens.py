"""API tokens: their last use noted at most once a minute, expiry, and the column an older
database lacks, added when it is opened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from cti.store import migrations
from cti.store.database import Database
from tests.desk_harness import running_desk
from tests.fakeami import Session


async def test_a_tokens_last_use_is_noted_at_most_once_a_minute(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        users = desk.database.users
        await users.add("crm", "CRM", "integrator")
        token = await users.issue_token("crm", "crm bridge", timedelta(days=30))
        [info] = await users.tokens("crm")
        assert info.last_used_at is None and info.expires_at is not None
        before = datetime.now(UTC)
        await desk.request("GET", "/api/me", token)
        [info] = await users.tokens("crm")
        assert info.last_used_at is not None and before - timedelta(seconds=1) <= info.last_used_at
        first = info.last_used_at
        await desk.request("GET", "/api/me", token)
        assert (await users.tokens("crm"))[0].last_used_at == first  # within the minute: not written again
        later = first + timedelta(seconds=61)
        users.now = lambda: later
        await desk.request("GET", "/api/me", token)
        assert (await users.tokens("crm"))[0].last_used_at == later
        users.now = lambda: later + timedelta(days=31)  # past its expiry
        await desk.request("GET", "/api/me", token, expect=401)
        assert [t.label for t in await users.tokens()] == ["crm bridge"]


async def test_opening_an_older_database_adds_the_last_use_column(tmp_path: Path) -> None:
    """A database of the development versions before 0.1.0: 0.1.0's tables, no schema revision, and api_tokens
    without last_used_at (they added it at start; cti.store.migrations still does, before taking it for 0.1.0)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: migrations._run(sync, migrations.script(), migrations.BASELINE))
        await connection.execute(text("DROP TABLE alembic_version"))
        await connection.execute(text("ALTER TABLE api_tokens DROP COLUMN last_used_at"))
        await connection.execute(text("INSERT INTO users VALUES ('crm', 'CRM', 'integrator', NULL, NULL, NULL, "
                                      "'2026-01-01 00:00:00', 0)"))
        await connection.execute(text(  # a token issued by that release (only its digest is kept)
            "INSERT INTO api_tokens VALUES ('a2a2de5ee3e1f05ab9f4c2c1d1c5e0d0a8df3cf2d9d9e6b7e5c7a8a2f1f0e1d2', "
            "'crm', 'old', '2026-01-01 00:00:00', NULL, 0)"))
    await engine.dispose()
    database = await Database.open(url)
    try:
        async with database.engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("api_tokens")})
        assert "last_used_at" in columns
        [old] = await database.users.tokens()
        assert (old.label, old.last_used_at) == ("old", None)
        token = await database.users.issue_token("crm", "new", None)
        assert (await database.users.user_for_token(token)) is not None
        assert [t.last_used_at is not None for t in await database.users.tokens()] == [False, True]
    finally:
        await database.close()
    reopened = await Database.open(url)  # once added, nothing more to do
    await reopened.close()


async def test_the_missing_column_is_added_on_each_backend(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(text("ALTER TABLE api_tokens DROP COLUMN last_used_at"))
        await connection.run_sync(migrations._before_baseline)
        columns = await connection.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns("api_tokens")})
    assert "last_used_at" in columns
    await database.users.add("crm", "CRM", "integrator")
    token = await database.users.issue_token("crm", "bridge", None)
    assert await database.users.user_for_token(token) is not None
    assert (await database.users.tokens("crm"))[0].last_used_at is not None
