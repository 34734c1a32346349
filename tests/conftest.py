"""Shared fixtures: a real database (SQLite in tmp_path, and PostgreSQL when reachable)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from cti.settings import PathSettings
from cti.store.calls import CallStore
from cti.store.database import Database

REPO = Path(__file__).parent.parent
# The project's own trunk map, queues, flows and prompts, wherever the tests run from.
REPO_PATHS = PathSettings(trunk_map=str(REPO / "trunk_map.yaml"), agents=str(REPO / "agents"),
                          ivr_flows=str(REPO / "ivr_flows"), prompts=str(REPO / "recordings" / "prompts"),
                          cases=str(REPO / "cases.yaml"))

PG_URL = os.environ.get("CTI_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_available() -> bool:
    async def probe() -> bool:
        import asyncpg

        try:
            connection = await asyncio.wait_for(asyncpg.connect(PG_URL), 3)
        except Exception:
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


_PG = _postgres_available()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Database]:
    """A fresh, empty database on each backend; PostgreSQL is skipped when unreachable."""
    if request.param == "sqlite":
        opened = await Database.open(f"sqlite:///{tmp_path / 'calls.db'}")
        yield opened
        await opened.close()
        return
    if not _PG:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} (set CTI_TEST_PG_URL)")
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_URL)
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        opened = await Database.open(PG_URL, connect_args={"server_settings": {"search_path": schema}})
        yield opened
        await opened.close()
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.fixture
def store(database: Database) -> CallStore:
    return database.calls


@pytest.fixture
async def sqlite_db(tmp_path) -> AsyncIterator[Database]:
    opened = await Database.open(f"sqlite:///{tmp_path / 'calls.db'}")
    yield opened
    await opened.close()


@pytest.fixture
def sqlite_store(sqlite_db: Database) -> CallStore:
    return sqlite_db.calls


@pytest.fixture
async def unit_endpoint() -> AsyncIterator[tuple[str, list[tuple[dict[str, Any], dict[str, str]]]]]:
    """A unit's system on 127.0.0.1: its URL, and every JSON body and headers POSTed to it."""
    received: list[tuple[dict[str, Any], dict[str, str]]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append((await request.json(), dict(request.headers)))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/hook", received
    await runner.cleanup()
