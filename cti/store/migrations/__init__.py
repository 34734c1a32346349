"""The schema under version control (Alembic): each change of the tables since release 0.1.0 is a revision in
``versions/``, and ``migrate`` brings a database to the newest this code knows, at every start (``cti serve``)
and on ``cti db upgrade``.

- An empty database gets the tables of cti.store.models at once (create_all) and is recorded at the newest
  revision: the same tables, which tests/test_migrations.py holds to the revisions.
- A database release 0.1.0 made has tables and no version: it is recorded as revision 0001 (release 0.1.0),
  then upgraded.
- A database at a revision this code does not know was upgraded by a newer cti: refused, nothing touched.

Revisions are run in one transaction with the caller's connection (SQLite and PostgreSQL both have
transactional DDL), so a failed upgrade leaves the database as it was."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from cti.store.models import Base, TokenRow
from cti.store.sql import MIGRATING, one_at_a_time

log = logging.getLogger(__name__)
BASELINE = "0001"  # release 0.1.0


class SchemaError(RuntimeError):
    """The database cannot be used by this code (a newer cti's schema)."""


def script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    return ScriptDirectory.from_config(config)


def current(connection: Connection) -> str | None:
    """The database's revision; None when it has none recorded."""
    return MigrationContext.configure(connection).get_current_revision()


def migrate(connection: Connection) -> str:
    """Bring the database to the newest revision (see the module's docstring); returns it."""
    scripts = script()
    head = scripts.get_current_head()
    assert head is not None
    if (turn := one_at_a_time(connection.dialect.name, MIGRATING)) is not None:
        connection.execute(turn)  # two cti instances starting together: one migrates, then the other
    at = current(connection)
    if at is None:
        if not set(inspect(connection).get_table_names()) & set(Base.metadata.tables):
            Base.metadata.create_all(connection)
            _stamp(connection, head)
            return head
        log.warning("the database has no schema revision: taking it for release 0.1.0's (%s) and upgrading it",
                    BASELINE)
        _before_baseline(connection)
        _stamp(connection, BASELINE)
        at = BASELINE
    known = {r.revision for r in scripts.walk_revisions()}
    if at not in known:
        raise SchemaError(f"the database is at schema revision {at}, which this cti does not know (it knows up to "
                          f"{head}): a newer cti upgraded it; run that version, or restore a backup")
    if at != head:
        log.warning("upgrading the database's schema from revision %s to %s", at, head)
        _run(connection, scripts, head)
    return head


def _run(connection: Connection, scripts: ScriptDirectory, destination: str) -> None:
    def upgrade(revision: Any, context: Any) -> Any:
        return scripts._upgrade_revs(destination, revision)  # what alembic's own `upgrade` command does

    config = Config()
    with EnvironmentContext(config, scripts, fn=upgrade, destination_rev=destination) as environment:
        environment.configure(connection=connection, target_metadata=Base.metadata)
        environment.run_migrations()


def _stamp(connection: Connection, revision: str) -> None:
    context = MigrationContext.configure(connection)
    context.stamp(script(), revision)


def _before_baseline(connection: Connection) -> None:
    """What cti made at start before 0.1.0, on a database older still: the column and the indexes added to
    tables that existed (they are in 0.1.0's tables)."""
    table = TokenRow.__tablename__
    if "last_used_at" not in {c["name"] for c in inspect(connection).get_columns(table)}:
        kind = TokenRow.__table__.c.last_used_at.type.compile(dialect=connection.dialect)
        connection.execute(text(f"ALTER TABLE {table} ADD COLUMN last_used_at {kind}"))
    names = set(inspect(connection).get_table_names())
    for name in ("calls", "case_events", "missed_calls"):
        if name in names:
            for index in Base.metadata.tables[name].indexes:
                index.create(connection, checkfirst=True)
