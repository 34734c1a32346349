"""The pure core stays pure: no IO library is imported below the edges."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent / "cti"
PURE = ["ami/message.py", "ami/framing.py", "ami/clock.py", "calls/channels.py", "calls/crossings.py",
        "calls/events.py", "calls/record.py", "calls/tracker.py", "calls/state.py", "calls/core.py",
        "calls/transfers.py",
        "calls/rebuild.py", "ami/action.py", "pipeline.py", "refusal.py", "yamlconfig.py", "routing/model.py",
        "routing/router.py", "routing/ledger.py", "ivr/engine.py", "agi/protocol.py", "agents/board.py",
        "cases/model.py",
        "cases/schedule.py", "cases/stats.py", "sim/traffic.py", "auth_throttle.py", "stats/measures.py",
        "stats/tallies.py", "stats/case_tallies.py",
        "stats/rows.py", "stats/export.py", "stats/live.py",
        "hotspots/text.py", "hotspots/detect.py", "kb/model.py", "kb/text.py", "kb/files.py"]
IO = {"asyncio", "aiohttp", "sqlalchemy", "panoramisk", "asyncpg", "aiosqlite", "socket",
      "cti.store", "cti.ami.client", "cti.service", "cti.cli"}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io(module: str) -> None:
    found = {name for name in imports(ROOT / module) if any(name == io or name.startswith(io + ".") for io in IO)}
    assert found == set(), f"{module} imports {found}"
