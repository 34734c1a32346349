"""``cti kb``: import the sample folder and a CSV, search as an agent would, list every state; refusals named."""

from __future__ import annotations

from pathlib import Path

import pytest

from cti.cli import main
from cti.kb_cli import terminal
from tests.conftest import REPO


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_import_search_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'kb.db'}"
    status, out, _ = run(capsys, "kb", "import", str(REPO / "knowledge"), "--publish", "--db", db)
    assert status == 0 and out.strip().endswith("36 new, 0 changed, 0 unchanged; 36 published")
    sheet = tmp_path / "more.csv"
    sheet.write_text("title,body,unit,tags\n居住证签注,每年签注一次,public-security,居住证\n", encoding="utf-8")
    status, out, _ = run(capsys, "kb", "import", str(sheet), "--db", db)
    assert status == 0 and "1 new" in out and "drafts" in out
    status, out, _ = run(capsys, "kb", "search", "社保卡丢了", "--limit", "1", "--db", db)
    lines = out.splitlines()
    assert status == 0 and lines[1].split()[1:3] == ["已发布", "human-resources-social-security"]
    assert "【社保卡】丢了怎么【挂失】和【补办】" in lines[1] and "【" in lines[2]
    _, out, _ = run(capsys, "kb", "search", "居住证签注", "--db", db)
    assert "居住证签注" not in out  # a draft: not what an agent finds
    _, out, _ = run(capsys, "kb", "search", "居住证签注", "--all", "--json", "--db", db)
    assert '"title": "居住证签注"' in out.splitlines()[0] and '"state": "draft"' in out.splitlines()[0]
    _, out, _ = run(capsys, "kb", "list", "--state", "draft", "--db", db)
    assert [line.split()[-1] for line in out.splitlines()[1:]] == ["居住证签注"]


def test_refusals_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'kb.db'}"
    sheet = tmp_path / "bad.csv"
    sheet.write_text("title,body,unit\nx,y,nowhere\n", encoding="utf-8")
    status, _, err = run(capsys, "kb", "import", str(sheet), "--db", db)
    assert status == 2 and "no unit 'nowhere' in the dispatch catalogue" in err
    sheet.write_text("title,content\nx,y\n", encoding="utf-8")
    status, _, err = run(capsys, "kb", "import", str(sheet), "--db", db)
    assert status == 2 and "bad.csv:1: the columns are" in err
    status, _, err = run(capsys, "kb", "import", str(tmp_path / "notes.txt"), "--db", db)
    assert status == 2 and "a .csv file or a folder of .md files" in err


def test_marks_on_a_terminal() -> None:
    assert terminal("&lt;b&gt;<mark>燃气</mark>") == "<b>【燃气】"
