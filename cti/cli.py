"""The ``cti`` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cti.ami.client import AmiLoginError
from cti.auth import ROLES, new_password
from cti.calls.record import CallRecord
from cti.case_cli import add_case_commands
from cti.cases.model import CaseError
from cti.configuration import calendar_warning, load_configuration
from cti.console import cell, command, seconds
from cti.demo import Demo, DemoOptions
from cti.kb_cli import add_kb_commands
from cti.replay import TranscriptError, replay
from cti.routing.ledger import FIELDS, LedgerRow, ledger, ledger_json
from cti.routing.model import Decision
from cti.routing.router import decide, guidance_list
from cti.service import serve
from cti.settings import Settings, load_settings
from cti.stats.export import to_csv
from cti.store import migrations
from cti.store.calls import make_engine
from cti.store.database import Database, private_sqlite_file
from cti.store.users import UserError
from cti.yamlconfig import ConfigError

EXIT_USAGE = 2
EXIT_REFUSED = 1
_MOMENT = re.compile(r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2}) ([0-9]{1,2}):([0-9]{2})$")
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `yes | head`'s yes


class UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    try:
        status = _main(argv)
        sys.stdout.flush()  # while a reader that left (`cti calls | head`) can still be told apart
        return status
    except BrokenPipeError:
        # The reader stopped reading: stop quietly, as other tools do. Python's own flush of stdout at exit
        # would fail again and print a traceback: point stdout at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    level = args.log_level or args.quiet_level  # an explicit --log-level wins over the command's own default
    logging.basicConfig(level=getattr(logging, level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.settings)
        if getattr(args, "db", None):
            settings = dataclasses.replace(
                settings, database=dataclasses.replace(settings.database, url=args.db))
        return int(asyncio.run(args.command(args, settings)) or 0)
    except ConfigError as exc:
        for problem in exc.problems:  # file:line: key: message, one per line, as compilers print
            print(problem, file=sys.stderr)
        print(f"cti: {len(exc.problems)} problem(s) in the configuration", file=sys.stderr)
        return EXIT_USAGE
    except (TranscriptError, AmiLoginError, UsageError, UserError, migrations.SchemaError) as exc:
        print(f"cti: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CaseError as exc:  # the workflow refused: the case is unchanged
        print(f"cti: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130


def _count(text: str) -> int:
    """An argparse type: a whole number from 1 to 100,000."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 100,000")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cti", description="12345 hotline telephony integration beside Asterisk")
    parser.add_argument("--settings", help="settings YAML (default: $CTI_SETTINGS, or ./cti.yaml if present)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        help="default: info for serve, warning for the rest")
    parser.set_defaults(quiet_level="warning")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = command(commands, "serve", "run cti beside Asterisk: the AMI link, FastAGI routing, the desk and the API "
                                     "(web.port), every call recorded")
    run.set_defaults(command=_serve, quiet_level="info")

    demo = command(commands, "demo", "run cti on a simulated Asterisk with citizens calling (no PBX needed)")
    demo.add_argument("--rate", type=float, default=0.05,
                      help="citizens' calls per second (default 0.05: 3 a minute; 0: none, the desk and API only)")
    demo.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    demo.add_argument("--seed", type=int, help="seed of the simulated traffic, for a repeatable run")
    demo.add_argument("--workdir", type=Path, help="folder for the demo database and recordings (default: temporary)")
    demo.add_argument("--port", type=int, help="the desk's port (default: settings web.port, 8345)")
    demo.set_defaults(command=_demo)

    rep = command(commands, "replay", "replay recorded AMI transcripts through the call tracker and print their "
                                      "call records (stored only with --db or --store)")
    rep.add_argument("traces", nargs="+", type=Path, metavar="TRACE",
                     help=".raw (bytes Asterisk sent) or .jsonl capture; several = successive sessions")
    rep.add_argument("--json", action="store_true", help="one JSON object per line per call")
    rep.add_argument("--db", help="also store the records in this database (as cti serve would)")
    rep.add_argument("--store", action="store_true", help="also store the records in the settings' database.url")
    rep.set_defaults(command=_replay)

    check = command(commands, "check", "validate trunk_map.yaml, agents/, ivr_flows/, the prompts, cases.yaml and "
                                       "the settings: every problem with file, line and key")
    check.set_defaults(command=_check)

    route = command(commands, "route", "what a call to NUMBER gets at a moment: the router's decision")
    route.add_argument("number")
    route.add_argument("--at", help='"YYYY-MM-DD HH:MM" in the trunk map\'s time zone (default: now)')
    route.add_argument("--json", action="store_true")
    route.set_defaults(command=_route)

    guide = command(commands, "guidance", "the lines outside the integration and what agents tell callers (暂不纳入)")
    guide.add_argument("--json", action="store_true")
    guide.set_defaults(command=_guidance)

    book = command(commands, "ledger", "the public number ledger (号码台账): every number of trunk_map.yaml, its "
                                       "unit, mode, transition window, status on a day and the number to call")
    book.add_argument("--at", help="YYYY-MM-DD in the trunk map's time zone (default: today)")
    book.add_argument("--format", choices=["table", "json", "csv"], default="table",
                      help="table (default), json (as GET /api/ledger) or csv")
    book.set_defaults(command=_ledger)

    user = command(commands, "user", "add a user (agent, supervisor, admin, integrator) or set a password")
    user_commands = user.add_subparsers(required=True, metavar="ACTION")
    add = command(user_commands, "add", "add a user; prints a generated password unless --password-stdin")
    add.add_argument("id")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--name", help="display name (default: the agent's name, or the id)")
    add.add_argument("--agent", help="the agents.yaml id an agent user works as (default: the user id)")
    add.add_argument("--unit", help="the handling unit (cases.yaml) an integrator user acts for")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--db", help="database URL (default: the settings' database.url)")
    add.set_defaults(command=_user_add)
    password = command(user_commands, "password", "set a user's password; prints a generated one unless "
                                                  "--password-stdin")
    password.add_argument("id")
    password.add_argument("--password-stdin", action="store_true")
    password.add_argument("--db")
    password.set_defaults(command=_user_password)

    token = command(commands, "token", "create an API token for a user (integrators' systems); "
                                       "`cti token list [USER]` lists the tokens",
                    usage="cti token USER [--label L] [--expires DAYS] | cti token list [USER]")
    token.add_argument("user", metavar="USER", help="the user the token signs in, or `list`")
    token.add_argument("listed", nargs="?", metavar="USER", help="after `list`: only this user's tokens")
    token.add_argument("--label", default="api token")
    token.add_argument("--expires", "--days", dest="days", type=int, metavar="DAYS",
                       help="lifetime in days (default: until revoked, with a warning)")
    token.add_argument("--db")
    token.set_defaults(command=_token)

    calls = command(commands, "calls", "list the call records cti serve stored, newest first")
    calls.add_argument("--json", action="store_true", help="one JSON object per line per call")
    calls.add_argument("--limit", type=_count, default=50, help="at most this many, 1 to 100,000 (default 50)")
    calls.add_argument("--caller", help="only calls from this number")
    calls.add_argument("--db", help="database URL (default: the settings' database.url)")
    calls.set_defaults(command=_calls)
    add_case_commands(commands)
    add_kb_commands(commands)

    schema = command(commands, "db", "the database's schema: `cti db upgrade` brings it to this cti's revision "
                                     "(cti serve does at start), `cti db current` prints its revision")
    schema.add_argument("action", choices=["upgrade", "current"])
    schema.add_argument("--db", help="database URL (default: the settings' database.url)")
    schema.set_defaults(command=_schema)
    return parser


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(settings, stop)
    return 0


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    if args.rate < 0:
        raise UsageError("--rate must not be negative (0: no citizens calling)")
    if args.port is not None:
        settings = dataclasses.replace(settings, web=dataclasses.replace(settings.web, port=args.port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    options = DemoOptions(rate=args.rate, duration=args.duration, seed=args.seed, workdir=args.workdir)
    await Demo(settings, options).run(stop)
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    result = replay(args.traces, settings.ami)
    records: Sequence[CallRecord] = result.records
    if args.db or args.store:  # only when asked: a replay is a look at transcripts, not a write to ./cti.db
        async with _database(settings) as database:
            await database.calls.save(result.records)  # a call stored already is kept as it is
            records = await database.calls.calls(linkedids=[r.linkedid for r in result.records],
                                                 limit=len(result.records))
    _print_records(records, args.json, settings.zone)
    if result.open_calls:
        print(f"cti: {len(result.open_calls)} call(s) still in progress when the transcript ends, "
              f"not recorded: {', '.join(result.open_calls)}", file=sys.stderr)
    return 0


async def _calls(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings) as database:
        records = await database.calls.calls(limit=args.limit, caller_number=args.caller)
    _print_records(records, args.json, settings.zone)
    return 0


async def _check(args: argparse.Namespace, settings: Settings) -> int:
    configuration = load_configuration(settings)
    warning = calendar_warning(configuration, settings, datetime.now(settings.zone).date())
    if warning:
        print(warning, file=sys.stderr)
    print(f"ok: {configuration.summary()} (settings: {settings.source}; files: {settings.files})")
    return 0


async def _route(args: argparse.Namespace, settings: Settings) -> int:
    configuration = load_configuration(settings)
    zone = configuration.trunk_map.zone
    at = datetime.now(zone) if args.at is None else _moment(args.at, zone)
    number = args.number.strip()
    if not number.lstrip("+").isdigit():
        raise UsageError(f"{number!r} is not a telephone number")
    decision = decide(configuration.trunk_map, number, at)
    if args.json:
        print(json.dumps(decision.to_json() | {"at": at.isoformat()}, ensure_ascii=False))
    else:
        print(_describe(decision, at, configuration.trunk_map.source))
    return 0


def _moment(text: str, zone: ZoneInfo) -> datetime:
    """``--at``'s "YYYY-MM-DD HH:MM" in ``zone``; a day or hour that does not exist is named."""
    match = _MOMENT.match(text.strip())
    if match is None:
        raise UsageError(f'--at "{text}": expected "YYYY-MM-DD HH:MM" ({zone.key})')
    try:
        year, month, day, hour, minute = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, tzinfo=zone)
    except ValueError as exc:  # 2026-02-30: day is out of range for month
        raise UsageError(f'--at "{text}": {exc}') from None


def _describe(decision: Decision, at: datetime, source: str) -> str:
    unit = f"{decision.unit} ({decision.unit_id})" if decision.unit else {
        "hotline": "the 12345 hotline", "unknown": f"not in {source}"}[decision.treatment]
    lines = [f"{decision.number} at {at:%Y-%m-%d %H:%M %Z}: {unit}",
             f"  treatment: {decision.treatment}", f"  action:    {decision.action}: {_what(decision)}"]
    if decision.note:
        lines.append(f"  note:      {decision.note}")
    return "\n".join(lines)


def _what(decision: Decision) -> str:
    targets = [t.split(":", 1)[1] if t.startswith("queue:") else t for t in decision.targets]
    if decision.action == "notice_then_queue":
        return f"play {decision.prompt}, then queue {targets[0]}"
    if decision.action in ("retired_notice", "guidance"):
        return f"play {decision.prompt} and hang up"
    if decision.action == "parallel_ring":
        return (f"ring queue {targets[0]} and {', '.join(targets[1:])} together for {decision.ring_timeout} s, "
                "then the 12345 queue")
    if decision.action == "not_routed":
        return f"dial {targets[0]} directly (never into 12345)"
    return f"queue {targets[0]}"


async def _guidance(args: argparse.Namespace, settings: Settings) -> int:
    entries = guidance_list(load_configuration(settings).trunk_map)
    for entry in entries:
        print(json.dumps(entry, ensure_ascii=False) if args.json else
              f"{cell(entry['numbers'], 14)} {entry['unit']}: {entry['guidance']}")
    return 0


async def _ledger(args: argparse.Namespace, settings: Settings) -> int:
    trunk_map = load_configuration(settings).trunk_map
    day = datetime.now(trunk_map.zone).date() if args.at is None else _day(args.at)
    if args.format == "json":
        print(json.dumps(ledger_json(trunk_map, day), ensure_ascii=False, indent=2))
    elif args.format == "csv":
        sys.stdout.write(to_csv(FIELDS, ledger(trunk_map, day), FIELDS[0], bom=False))  # a pipe's: no BOM
    else:
        _print_ledger(ledger(trunk_map, day), day, trunk_map.zone.key)
    return 0


def _day(text: str) -> date:
    """``--at``'s YYYY-MM-DD; a day that does not exist is named."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise UsageError(f'--at "{text}": expected YYYY-MM-DD ({exc})') from None


def _print_ledger(rows: Sequence[LedgerRow], day: date, zone: str) -> None:
    print(f"{len(rows)} numbers on {day} ({zone})")
    print(f"{'number':9} {'unit':26} {'mode':12} {'window':24} {'status':10} call instead")
    for row in rows:
        window = f"{row.window_start} to {row.window_end}" if row.window_start else "—"
        print(f"{cell(row.number, 9)} {cell(row.unit, 26)} {cell(row.mode_name, 12)} {cell(window, 24)} "
              f"{cell(row.status_name, 10)} {row.call_instead}")


async def _schema(args: argparse.Namespace, settings: Settings) -> int:
    private_sqlite_file(settings.database.url)
    engine = make_engine(settings.database.url)
    try:
        async with engine.begin() as connection:
            before = await connection.run_sync(migrations.current)
            after = await connection.run_sync(migrations.migrate) if args.action == "upgrade" else before
    finally:
        await engine.dispose()
    newest = migrations.script().get_current_head()
    if args.action == "current":
        print(f"{before or 'none (an empty database, or one of release 0.1.0)'} (this cti: {newest})")
    else:
        print(f"at revision {after}" + (f" (was {before})" if before != after else " (nothing to do)"))
    return 0


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    """The settings' database for one command; a user-store refusal becomes a usage error."""
    database = await Database.open(settings.database.url)
    try:
        yield database
    except UserError as exc:
        raise UsageError(str(exc)) from None
    finally:
        await database.close()


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password from standard input, or a generated one (and whether to print it)."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if len(password) < 8:
            raise UsageError("the password must have at least 8 characters")
        return password, False
    return new_password(), True


async def _user_add(args: argparse.Namespace, settings: Settings) -> int:
    agent_id = (args.agent or args.id) if args.role == "agent" else None
    name = args.name or args.id
    if agent_id is not None:
        person = load_configuration(settings).directory.get(agent_id)
        if person is None:
            raise UsageError(f"no agent {agent_id!r} in agents.yaml")
        name = args.name or person.name
    if args.unit is not None:
        units = load_configuration(settings).catalogue.units
        if args.unit not in units:
            raise UsageError(f"no unit {args.unit!r} in the dispatch catalogue (cases.yaml and the trunk map)")
    password, show = _password(args)
    async with _database(settings) as database:
        user = await database.users.add(args.id, name, args.role, password, agent_id, args.unit)
    print(f"added {user.role} {user.id} ({user.name})" + (f"; password: {password}" if show else ""))
    return 0


async def _user_password(args: argparse.Namespace, settings: Settings) -> int:
    password, show = _password(args)
    async with _database(settings) as database:
        await database.users.set_password(args.id, password)
    print(f"password of {args.id} set" + (f": {password}" if show else ""))
    return 0


async def _token(args: argparse.Namespace, settings: Settings) -> int:
    if args.user == "list":
        return await _token_list(args.listed, settings)
    if args.listed is not None:
        raise UsageError(f"unexpected {args.listed!r}: cti token USER, or cti token list [USER]")
    if args.days is not None and args.days <= 0:
        raise UsageError("--expires takes a number of days, at least 1")
    async with _database(settings) as database:
        token = await database.users.issue_token(args.user, args.label,
                                                 timedelta(days=args.days) if args.days else None)
    print(token)
    if args.days is None:
        print("cti: warning: this token never expires (only DELETE /api/session with it revokes it); "
              "consider --expires DAYS", file=sys.stderr)
    return 0


async def _token_list(user_id: str | None, settings: Settings) -> int:
    async with _database(settings) as database:
        tokens = await database.users.tokens(user_id)
    if not tokens:
        print("no tokens")
        return 0
    now = datetime.now(settings.zone)

    def when(moment: datetime | None, empty: str) -> str:
        return empty if moment is None else f"{moment.astimezone(settings.zone):%Y-%m-%d %H:%M}"

    print(f"{'user':16} {'label':24} {'created':16}  {'expires':23}  {'last used':16}  revoked")
    for token in tokens:
        expires = when(token.expires_at, "never")
        if token.expires_at is not None and token.expires_at <= now:
            expires += " (past)"
        print(f"{cell(token.user_id, 16)} {cell(token.label, 24)} {when(token.created_at, ''):16}  {expires:23}  "
              f"{when(token.last_used_at, 'never'):16}  {'yes' if token.revoked else 'no'}")
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
        print(f"{data['arrived_at'][:19].replace('T', ' ')}  {cell(record.caller_number, 13)} "
              f"{cell(record.dialled_number, 8)} {cell(record.answered_by_name or record.answered_by or '—', 22)} "
              f"{cell(seconds(record.queue_wait), 5, '>')} {cell(seconds(record.talk_time), 5, '>')}  "
              f"{transfers + ('; ' if transfers else '')}{end}")


if __name__ == "__main__":
    sys.exit(main())

