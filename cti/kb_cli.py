"""``cti kb``: the knowledge base (知识库) from the command line — import, search, list.

The person at the console acts as an admin, named ``cli:<login>`` in the articles' versions. ``search`` finds
what an agent would (published, valid today) unless ``--all``; ``list`` shows every state.
"""

from __future__ import annotations

import argparse
import getpass
import html
import json
import re
import sys
from pathlib import Path

from cti.configuration import load_configuration
from cti.console import cell, command
from cti.kb import files
from cti.kb.model import STATE_NAMES, STATES, KbError, Viewer
from cti.kb.service import Hit, KnowledgeBase, hit_json
from cti.settings import Settings
from cti.store.database import Database

EXIT_USAGE = 2
_MARK = re.compile(r"</?mark>")


def add_kb_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kb = command(commands, "kb", "the knowledge base (知识库): import articles, search them, list them")
    sub = kb.add_subparsers(required=True, metavar="ACTION")

    load = command(sub, "import", "import articles from a CSV file (title, body, unit, tags, valid_from, valid_to) "
                                  "or a folder of Markdown files; a known title of a unit is updated")
    load.add_argument("path", type=Path, metavar="FILE.csv|FOLDER")
    load.add_argument("--unit", help="the unit of every article (default: each file's or row's own)")
    load.add_argument("--publish", action="store_true", help="publish each new or changed article at once")
    load.set_defaults(command=_import)

    search = command(sub, "search", "search as an agent would: the published articles valid today, the best first")
    search.add_argument("query")
    search.add_argument("--unit", help="only this unit's")
    search.add_argument("--all", action="store_true", help="every state, as a supervisor searches")
    search.add_argument("--limit", type=int, default=10)
    search.add_argument("--json", action="store_true", help="one JSON object per line (as GET /api/kb/articles)")
    search.set_defaults(command=_search)

    listing = command(sub, "list", "the articles, the latest changed first, in every state")
    listing.add_argument("--state", choices=STATES)
    listing.add_argument("--unit")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(command=_list)
    for parser in (load, search, listing):
        parser.add_argument("--db", help="database URL (default: the settings' database.url)")


def _console() -> Viewer:
    return Viewer("admin", f"cli:{getpass.getuser()}")


async def _import(args: argparse.Namespace, settings: Settings) -> int:
    try:
        drafts = files.read(args.path)
    except (files.FileProblem, OSError, UnicodeDecodeError) as exc:
        print(f"cti: {exc}", file=sys.stderr)
        return EXIT_USAGE
    units = load_configuration(settings).catalogue.units
    unknown = sorted({args.unit if args.unit is not None else d.unit for d in drafts} - set(units) - {""})
    if unknown:
        print(f"cti: no unit {', '.join(map(repr, unknown))} in the dispatch catalogue (cases.yaml and the trunk map)",
              file=sys.stderr)
        return EXIT_USAGE
    database = await Database.open(settings.database.url)
    try:
        done = await KnowledgeBase(database.kb, settings.zone).load(_console(), drafts, publish=args.publish,
                                                                    unit=args.unit)
    except KbError as exc:
        print(f"cti: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        await database.close()
    print(f"{len(drafts)} articles: {done.created} new, {done.updated} changed, {done.unchanged} unchanged"
          + (f"; {done.published} published" if args.publish else " (drafts: to be reviewed and published)"))
    return 0


async def _search(args: argparse.Namespace, settings: Settings) -> int:
    who = _console() if args.all else Viewer("agent", f"cli:{getpass.getuser()}")
    database = await Database.open(settings.database.url)
    try:
        hits = await KnowledgeBase(database.kb, settings.zone).search(who, args.query, unit=args.unit,
                                                                      limit=args.limit)
    finally:
        await database.close()
    _print(hits, args.json, settings, snippets=True)
    return 0


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    database = await Database.open(settings.database.url)
    try:
        hits = await KnowledgeBase(database.kb, settings.zone).list(_console(), unit=args.unit, state=args.state,
                                                                    limit=args.limit)
    finally:
        await database.close()
    _print(hits, args.json, settings, snippets=False)
    return 0


def terminal(marked: str) -> str:
    """HTML with <mark>s as a terminal shows it: the marked words in 【】, the text unescaped."""
    return html.unescape(_MARK.sub(lambda m: "】" if m.group().startswith("</") else "【", marked))


def _print(hits: list[Hit], as_json: bool, settings: Settings, *, snippets: bool) -> None:
    if as_json:
        for hit in hits:
            print(json.dumps(hit_json(hit, settings.zone), ensure_ascii=False))
        return
    if not hits:
        print("no articles")
        return
    print(f"{'id':>5}  {'state':6} {'unit':32} title")
    for hit in hits:
        a = hit.article
        print(f"{a.id:>5}  {cell(STATE_NAMES[a.state], 6)} {cell(a.unit or '—', 32)} {terminal(hit.title_html)}")
        if snippets:
            print(f"{'':7}{terminal(hit.snippet_html)}")
