"""The fault drills are not tests (they take minutes, see RELIABILITY.md), but they must start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import _PG, PG_URL, REPO


@pytest.mark.parametrize("drill", ["calls.py", "webhooks.py", "pair.py"])
def test_a_drill_explains_itself(drill: str) -> None:
    done = subprocess.run([sys.executable, str(REPO / "drills" / drill), "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    if drill == "calls.py":
        assert "ami-drops,kill-cti,postgres-down,sqlite-locked" in done.stdout


@pytest.mark.skipif(not _PG, reason=f"PostgreSQL not reachable at {PG_URL}")
def test_two_nodes_two_ctis_one_killed_every_call_and_callback_once() -> None:
    """Issue 15's proof, small: two simulated nodes, two ``cti serve`` on a fresh PostgreSQL database, A killed
    half-way. The drill exits 1 on a missing record, a duplicate or a case called back twice; the lines say the
    rest (the lease moved, both desks came back, every survey answered once)."""
    done = subprocess.run([sys.executable, str(REPO / "drills" / "pair.py"), "--calls", "16", "--period", "12",
                           "--talk", "1-3", "--callbacks", "2", "--kill-at", "0.5", "--agents", "4", "--settle", "60",
                           "--pg", PG_URL.rpartition("/")[0]], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line and not line.startswith(" "))
    assert lines["calls placed"].split()[0] == "16"
    assert lines["records"].split()[0] == "16"
    assert lines["missing"].strip() == lines["duplicates"].strip() == lines["spurious"].strip() == "0"
    assert "after the kill" in lines["lease taken by B"]
    assert done.stdout.count("signed in again on B") == 2
    assert "2 callback attempts, 0 cases called back twice; 2 surveys answered (0 twice); now 2 closed" in \
        lines["callbacks"]
