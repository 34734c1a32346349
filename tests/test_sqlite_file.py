"""The SQLite database holds every caller's number: its file, and the -wal and -shm files SQLite
keeps beside it, are readable by their owner only, whatever the umask; a file found wider open
is named in a warning and left as the operator set it."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cti.calls.record import CallRecord
from cti.store.database import Database


@pytest.fixture
def umask() -> Iterator[None]:
    """The common umask, under which SQLite alone would make the files 0644."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask")
async def test_the_files_are_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    database = await Database.open(f"sqlite:///{path}")
    try:
        await database.calls.save([CallRecord("1.1", "inbound", "13800000043", "", "12345", 1.0, 2.0)])
        files = [path, tmp_path / "calls.db-wal", tmp_path / "calls.db-shm"]
        assert all(f.exists() for f in files)  # the WAL is open while the engine's connection is
        assert [oct(mode(f)) for f in files] == ["0o600"] * 3
    finally:
        await database.close()
    # opened again, the file keeps its mode and says nothing
    again = await Database.open(f"sqlite:///{path}")
    await again.close()
    assert mode(path) == 0o600


@pytest.mark.usefixtures("umask")
async def test_a_wider_file_is_named_in_a_warning_and_left_alone(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "calls.db"
    path.touch()
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="cti.store.database"):
        database = await Database.open(f"sqlite:///{path}")
        await database.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"{path} is open to others than its owner (mode 0644): it holds callers' numbers; "
        "chmod 600 it unless that is meant"]
    assert mode(path) == 0o644


async def test_an_in_memory_database_makes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    database = await Database.open("sqlite:///:memory:")
    await database.close()
    assert list(tmp_path.iterdir()) == []
