"""The fault drills are not tests (they take minutes, see RELIABILITY.md), but they must start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("drill", ["calls.py", "webhooks.py"])
def test_a_drill_explains_itself(drill: str) -> None:
    done = subprocess.run([sys.executable, str(REPO / "drills" / drill), "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    if drill == "calls.py":
        assert "ami-drops,kill-cti,postgres-down,sqlite-locked" in done.stdout
