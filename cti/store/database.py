"""The database: one engine, its schema brought to this code's revision at start (cti.store.migrations), and its
stores."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url

from cti.store import case_tallies
from cti.store import tallies as call_tallies
from cti.store.calls import CallStore, make_engine
from cti.store.cases import CaseStore
from cti.store.kb import KbStore
from cti.store.migrations import migrate
from cti.store.outbox import OutboxStore
from cti.store.users import UserStore

log = logging.getLogger(__name__)


class Database:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.outbox = OutboxStore(engine)  # the units' webhooks, written with the calls and cases they report
        self.calls = CallStore(engine, self.outbox)
        self.users = UserStore(engine)
        self.cases = CaseStore(engine, self.outbox)
        self.kb = KbStore(engine)  # the knowledge base (知识库)

    @classmethod
    async def open(cls, url: str, *, zone: ZoneInfo | None = None, **engine_options: Any) -> Database:
        """Connect, and make the tables or upgrade them to this code's revision (a database a newer cti upgraded is
        refused: cti.store.migrations.SchemaError). ``engine_options`` go to
        SQLAlchemy's create_async_engine (pool sizes, connect_args). ``zone``: the service's,
        the statistics' tallies are made again in it when they are in another (cti.store.tallies;
        without it they stay in theirs, made in Asia/Shanghai when there are none yet)."""
        private_sqlite_file(url)
        engine = make_engine(url, **engine_options)
        async with engine.begin() as connection:
            await connection.run_sync(migrate)  # cti.store.migrations: the schema's revisions
        await call_tallies.ensure(engine, zone)
        await case_tallies.ensure(engine, zone)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()


def private_sqlite_file(url: str) -> None:
    """The SQLite file holds every caller's number: it is made readable by its owner only (0600),
    before SQLite would make it with the umask's mode (0644 most often). SQLite gives its -wal
    and -shm files the main file's mode. A file that exists with a wider mode is the operator's
    choice (a backup user's group, say) and is left as it is, with a warning naming it."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or "uri" in parsed.query \
            or parsed.query.get("mode") == "memory":
        return
    path = Path(database)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))  # an empty file is an empty database
        return
    except FileExistsError:
        pass
    except OSError:  # no such directory, no right to write there: SQLite says so in its own words
        return
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = stat.S_IMODE(name.stat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            log.warning("%s is open to others than its owner (mode %04o): it holds callers' numbers; "
                        "chmod 600 it unless that is meant", name, mode)
