"""Articles from files (``cti kb import``, the demo's sample): a CSV file, or a folder of Markdown files.

CSV: a header row naming the columns title, body (required), unit, tags, valid_from, valid_to; tags separated
by ``;``, ``；``, ``,`` or ``，``; UTF-8, with or without the byte-order mark Excel writes.

Markdown: one article a file (``*.md``, in name order). It may open with a front matter between two ``---``
lines, YAML (``unit``, ``tags``, ``valid_from``, ``valid_to``, ``title``); the title is else the first
``# `` heading, which is then not part of the body. Every problem names its file and line or row.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from cti.kb.model import BODY, TITLE, UNIT

TAG_SPLIT = re.compile(r"[;；,，、]")
COLUMNS = ("title", "body", "unit", "tags", "valid_from", "valid_to")


class FileProblem(ValueError):
    """A file that cannot be imported, with where."""


@dataclass(frozen=True, slots=True)
class Draft:
    """An article as a file gives it, before the store."""

    source: str  # file (and row) it came from
    title: str
    body: str
    unit: str = ""
    tags: tuple[str, ...] = ()
    valid_from: date | None = None
    valid_to: date | None = None


def read(path: Path) -> list[Draft]:
    """The articles of a CSV file or of the Markdown files of a folder."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".md", ".markdown") and p.is_file())
        if not files:
            raise FileProblem(f"{path}: no Markdown (.md) files")
        return [markdown(p.read_text(encoding="utf-8-sig"), str(p)) for p in files]
    if path.suffix.lower() == ".csv":
        return from_csv(path.read_text(encoding="utf-8-sig"), str(path))
    if path.suffix.lower() in (".md", ".markdown"):
        return [markdown(path.read_text(encoding="utf-8-sig"), str(path))]
    raise FileProblem(f"{path}: a .csv file or a folder of .md files, please")


def from_csv(text: str, source: str) -> list[Draft]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or ()]
    unknown = [h for h in header if h not in COLUMNS]
    if unknown or not {"title", "body"} <= set(header):
        raise FileProblem(f"{source}:1: the columns are {', '.join(COLUMNS)} (title and body required); "
                           f"found {', '.join(header) or 'none'}")
    drafts = []
    for number, row in enumerate(reader, start=2):
        values = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        where = f"{source}:{number}"
        drafts.append(_draft(where, values.get("title", ""), values.get("body", ""), values.get("unit", ""),
                             TAG_SPLIT.split(values.get("tags", "")), values.get("valid_from"),
                             values.get("valid_to")))
    return drafts


def markdown(text: str, source: str) -> Draft:
    meta: dict[str, Any] = {}
    body = text
    if text.startswith("---"):
        head, marker, rest = text[3:].partition("\n---")
        if not marker:
            raise FileProblem(f"{source}:1: the front matter has no closing --- line")
        try:
            loaded = yaml.safe_load(head)
        except yaml.YAMLError as exc:
            raise FileProblem(f"{source}: the front matter is not YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise FileProblem(f"{source}:1: the front matter is key: value lines")
        meta = loaded or {}
        body = rest.partition("\n")[2]
    unknown = set(meta) - {"title", "unit", "tags", "valid_from", "valid_to"}
    if unknown:
        raise FileProblem(f"{source}: unknown front matter key(s): {', '.join(sorted(map(str, unknown)))}")
    title = str(meta.get("title") or "")
    if not title:
        match = re.search(r"^# +(.+)$", body, re.MULTILINE)
        if match:
            title = match.group(1).strip()
            body = body[:match.start()] + body[match.end():]
    tags = meta.get("tags") or []
    tags = TAG_SPLIT.split(tags) if isinstance(tags, str) else [str(t) for t in tags]
    return _draft(source, title, body, str(meta.get("unit") or ""), tags, meta.get("valid_from"),
                  meta.get("valid_to"))


def _draft(where: str, title: str, body: str, unit: str, tags: list[str], start: Any, end: Any) -> Draft:
    title, body = " ".join(title.split()), body.strip()
    if not title or not body:
        raise FileProblem(f"{where}: an article needs a title and a body")
    if len(title) > TITLE or len(body) > BODY or len(unit) > UNIT:
        raise FileProblem(f"{where}: at most {TITLE} characters of title, {BODY} of body, {UNIT} of unit")
    return Draft(where, title, body, unit.strip(), tuple(t.strip() for t in tags if t.strip()),
                 _day(start, where, "valid_from"), _day(end, where, "valid_to"))


def _day(value: Any, where: str, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):  # YAML reads 2026-01-01 as a date itself
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise FileProblem(f"{where}: {name} {value!r} is no day (YYYY-MM-DD)") from None
