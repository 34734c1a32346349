"""The ``cti`` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from cti.ami.client import AmiLoginError
from cti.calls.record import CallRecord
from cti.replay import TranscriptError, replay
from cti.service import serve
from cti.settings import Settings, load_settings
from cti.store.calls import CallStore
from cti.yamlconfig import ConfigError

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.settings)
        if getattr(args, "db", None):
            settings = dataclasses.replace(
                settings, database=dataclasses.replace(settings.database, url=args.db))
        return int(asyncio.run(args.command(args, settings)) or 0)
    except (ConfigError, TranscriptError, AmiLoginError) as exc:
        print(f"cti: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cti", description="12345 hotline telephony integration beside Asterisk")
    parser.add_argument("--settings", help="settings YAML (default: $CTI_SETTINGS, or ./cti.yaml if present)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("serve", help="connect to Asterisk over AMI and record every call")
    run.set_defaults(command=_serve, log_level="info")

    rep = commands.add_parser("replay", help="feed recorded AMI transcripts through the pipeline into the database")
    rep.add_argument("traces", nargs="+", type=Path, metavar="TRACE",
                     help=".raw (bytes Asterisk sent) or .jsonl capture; several = successive sessions")
    rep.add_argument("--json", action="store_true", help="one JSON object per line per call")
    rep.add_argument("--db", help="database URL (default: the settings' database.url)")
    rep.set_defaults(command=_replay)

    calls = commands.add_parser("calls", help="list the call records in the database")
    calls.add_argument("--json", action="store_true", help="one JSON object per line per call")
    calls.add_argument("--limit", type=int, default=50)
    calls.add_argument("--caller", help="only calls from this number")
    calls.add_argument("--db", help="database URL (default: the settings' database.url)")
    calls.set_defaults(command=_calls)
    return parser


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(settings, stop)
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    result = replay(args.traces, settings.ami)
    store = await CallStore.open(settings.database.url)
    try:
        await store.save(result.records)
        stored = await store.calls(linkedids=[r.linkedid for r in result.records], limit=len(result.records))
    finally:
        await store.close()
    _print_records(stored, args.json, settings.zone)
    if result.open_calls:
        print(f"cti: {len(result.open_calls)} call(s) still in progress when the transcript ends, "
              f"not recorded: {', '.join(result.open_calls)}", file=sys.stderr)
    return 0


async def _calls(args: argparse.Namespace, settings: Settings) -> int:
    store = await CallStore.open(settings.database.url)
    try:
        records = await store.calls(limit=args.limit, caller_number=args.caller)
    finally:
        await store.close()
    _print_records(records, args.json, settings.zone)
    return 0


def _print_records(records: Sequence[CallRecord], as_json: bool, zone: ZoneInfo) -> None:
    if as_json:
        for record in records:
            print(json.dumps(record.to_json(zone), ensure_ascii=False))
        return
    if not records:
        print("no calls")
        return
    print(f"{'arrived':19}  {'caller':13} {'dialled':8} {'answered by':22} {'wait':>5} {'talk':>5}  transfers / end")
    for record in records:
        data = record.to_json(zone)
        transfers = ", ".join(f"{t['kind']}→{t['target']}" for t in data["transfers"])
        end = record.hangup_cause_text or ("" if record.hangup_cause is None else str(record.hangup_cause))
        print(f"{data['arrived_at'][:19].replace('T', ' ')}  {record.caller_number:13} "
              f"{record.dialled_number:8} {(record.answered_by_name or record.answered_by or '—'):22} "
              f"{_seconds(record.queue_wait):>5} {_seconds(record.talk_time):>5}  "
              f"{transfers + ('; ' if transfers else '')}{end}")


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:g}s"


if __name__ == "__main__":
    sys.exit(main())
