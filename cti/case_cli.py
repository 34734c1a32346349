"""``cti case``: cases from the command line — list, show, open, act, stats, missed calls.

The same service as the API: the workflow table decides, the database keeps
every transition. The person at the console acts as a supervisor, named
``cli:<login>`` in the case's timeline; ``--as USER`` acts as that user of the
database instead, in their own role (an agent as an agent, an integrator's system
as its unit, on its unit's cases only). Units hear of dispatches and decisions by
webhook as usual.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from cti.cases.channels import CHANNELS
from cti.cases.model import CATEGORIES, MOVES, STATES, Case, CaseError, workflow_role
from cti.cases.service import CaseService, case_json, event_json
from cti.cases.stats import GROUPS, to_csv
from cti.configuration import load_configuration
from cti.console import cell, command, seconds
from cti.settings import Settings
from cti.store.database import Database
from cti.store.users import UserError

ACTIONS = tuple(a for a, move in MOVES.items() if move.roles != ("system",))


def add_case_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    case = command(commands, "case", "case records (工单): list, show, open, act, edit, link, stats, missed calls")
    sub = case.add_subparsers(required=True, metavar="ACTION")

    listing = command(sub, "list", "cases, newest first")
    listing.add_argument("--state", choices=STATES)
    listing.add_argument("--unit")
    listing.add_argument("--caller")
    listing.add_argument("--escalated", action="store_true", help="only escalated (督办) cases")
    listing.add_argument("--channel", choices=tuple(CHANNELS), help="only the cases that came by phone, sms or web")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(command=_list)

    show = command(sub, "show", "a case with its timeline and calls, by its id or its case number (工单号)")
    show.add_argument("id", help="the case's id, or the number the citizen quotes (20261201-4830271)")
    show.set_defaults(command=_show)

    opening = command(sub, "open", "open a case (受理); --unit dispatches it at once (派单)")
    opening.add_argument("--caller", required=True, help="the caller's number")
    opening.add_argument("--name", default="", help="the caller's name")
    opening.add_argument("--category", required=True, choices=tuple(CATEGORIES))
    opening.add_argument("--content", required=True)
    opening.add_argument("--location", default="")
    opening.add_argument("--unit", default="")
    opening.add_argument("--confidential", action="store_true")
    opening.set_defaults(command=_open)

    act = command(sub, "act", f"move a case on (派单, 签收, 退单, 办结…): {', '.join(ACTIONS)}")
    act.add_argument("id", type=int)
    act.add_argument("action", choices=ACTIONS)
    for name in ("unit", "reason", "reply", "note"):
        act.add_argument(f"--{name}")
    act.add_argument("--days", type=int)
    act.add_argument("--satisfaction", choices=("1", "2", "3"))
    act.add_argument("--into", type=int, help="merge: the case this one joins")
    act.set_defaults(command=_act)

    stats = command(sub, "stats", "statistics per unit, category, legacy number, day or month")
    stats.add_argument("--by", required=True, choices=GROUPS)
    stats.add_argument("--from", dest="start", type=date.fromisoformat, help="YYYY-MM-DD")
    stats.add_argument("--to", dest="end", type=date.fromisoformat, help="YYYY-MM-DD (inclusive)")
    stats.add_argument("--csv", action="store_true", help="CSV for a spreadsheet")
    stats.set_defaults(command=_stats)

    edit = command(sub, "edit", "complete an accepted case's details")
    edit.add_argument("id", type=int)
    edit.add_argument("--category", choices=tuple(CATEGORIES))
    edit.add_argument("--content")
    edit.add_argument("--location")
    edit.add_argument("--confidential", action=argparse.BooleanOptionalAction)
    edit.set_defaults(command=_edit)

    link = command(sub, "link", "join a call to a case (the caller called again about it)")
    link.add_argument("id", type=int)
    link.add_argument("linkedid")
    link.set_defaults(command=_link)

    missed = command(sub, "missed", "missed calls waiting to be called back; --called-back or --unreachable "
                                    "marks one done")
    missed.add_argument("--called-back", metavar="LINKEDID", help="this missed call was called back")
    missed.add_argument("--unreachable", metavar="LINKEDID", help="this caller could not be reached")
    missed.add_argument("--case", type=int, help="with --called-back: the case opened on the callback")
    missed.set_defaults(command=_missed)

    for parser in (listing, show, opening, act, stats, edit, link, missed):
        parser.add_argument("--db", help="database URL (default: the settings' database.url)")
        parser.add_argument("--json", action="store_true", help="JSON, one object per line")
    for parser in (opening, act, edit, missed):  # the commands that act; reading needs no one to act as
        parser.add_argument("--as", dest="actor", metavar="USER",
                            help="act as this user, in their role (default: cli:<login>, as a supervisor)")


@dataclass(frozen=True, slots=True)
class Acting:
    """Who the command acts as: their name for the timeline, their workflow role, the unit they are."""

    actor: str
    role: str
    unit: str | None = None

    def check(self, case: Case) -> None:
        if self.unit is not None and case.unit != self.unit:  # as the API: another unit's case is not there
            raise CaseError("no_such_case", f"no case {case.id}", 404)


@asynccontextmanager
async def _database_and_cases(settings: Settings) -> AsyncIterator[tuple[Database, CaseService]]:
    configuration = load_configuration(settings)
    database = await Database.open(settings.database.url)
    try:  # the units' notices go into the webhook outbox with the case: the running cti serve delivers them
        yield database, CaseService(database.cases, lambda: configuration.catalogue, settings.zone)
    finally:
        await database.close()


@asynccontextmanager
async def _cases(settings: Settings) -> AsyncIterator[CaseService]:
    async with _database_and_cases(settings) as (_, cases):
        yield cases


@asynccontextmanager
async def _acting_on_cases(settings: Settings, actor: str | None) -> AsyncIterator[tuple[CaseService, Acting]]:
    async with _database_and_cases(settings) as (database, cases):
        yield cases, await _acting(database, actor)


async def _acting(database: Database, actor: str | None) -> Acting:
    if actor is None:
        return Acting(f"cli:{getpass.getuser()}", "supervisor")
    user = await database.users.get(actor)
    if user is None:
        raise UserError(f"--as {actor}: no such user (cti user add)")
    role = workflow_role(user.role, user.unit_id)
    if role is None:
        raise UserError(f"--as {actor}: an integrator bound to no unit acts on no case")
    return Acting(user.id, role, user.unit_id if role == "unit" else None)


def _line(case: Case, zone: ZoneInfo) -> str:
    due = case.due_at.astimezone(zone).strftime("%m-%d") if case.due_at else "—"
    created = case.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return (f"{case.id:>6}  {cell(case.reference or '—', 16)} {created}  {cell(CHANNELS[case.channel], 4)} "
            f"{cell(case.caller_number, 12)} {cell(CATEGORIES[case.category], 8)} "
            f"{case.state:<11} {cell(case.unit or '—', 24)} due {due}  {case.content[:30]}")


def _print(cases: list[Case], as_json: bool, zone: ZoneInfo) -> None:
    for case in cases:
        print(json.dumps(case_json(case, zone), ensure_ascii=False) if as_json else _line(case, zone))


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    async with _cases(settings) as cases:
        found = await cases.store.find(states=[args.state] if args.state else None, unit=args.unit,
                                       caller_number=args.caller, escalated=True if args.escalated else None,
                                       channels=[args.channel] if args.channel else None, limit=args.limit)
    _print(found, args.json, settings.zone)
    return 0


async def _show(args: argparse.Namespace, settings: Settings) -> int:
    async with _cases(settings) as cases:
        case = await _find(cases, args.id)
        events = await cases.store.events(case.id)
        calls = await cases.store.calls_of(case.id)
    data = case_json(case, settings.zone) | {"events": [event_json(e, settings.zone) for e in events],
                                             "calls": calls}
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
        return 0
    print(_line(case, settings.zone))
    print(f"        {case.content}")
    for event in data["events"]:
        print(f"        {event['at'][:16].replace('T', ' ')}  {event['action']:<18} "
              f"{cell(event['from'] or '—', 11, '>')} → {event['to']:<11} {cell(event['actor'], 12)} "
              f"{json.dumps(event['details'], ensure_ascii=False)}")
    if calls:
        print(f"        calls: {', '.join(calls)}")
    return 0


async def _find(cases: CaseService, given: str) -> Case:
    """The case of an id or of a case number."""
    if given.isdigit():
        return await cases.get(int(given))
    found = await cases.store.find(reference=given, limit=1)
    if not found:
        raise CaseError("no_such_case", f"no case {given!r} (an id, or a case number YYYYMMDD-NNNNNNN)", 404)
    return found[0]


async def _open(args: argparse.Namespace, settings: Settings) -> int:
    async with _acting_on_cases(settings, args.actor) as (cases, acting):
        case = await cases.open(caller_number=args.caller, caller_name=args.name, category=args.category,
                                content=args.content, location=args.location, confidential=args.confidential,
                                unit=args.unit, actor=acting.actor, role=acting.role)
    _print([case], args.json, settings.zone)
    return 0


async def _act(args: argparse.Namespace, settings: Settings) -> int:
    params = {name: getattr(args, name) for name in ("unit", "reason", "reply", "note", "days", "satisfaction",
                                                     "into") if getattr(args, name) is not None}
    async with _acting_on_cases(settings, args.actor) as (cases, acting):
        acting.check(await cases.get(args.id))
        case = await cases.act(args.id, args.action, params, acting.actor, acting.role)
    _print([case], args.json, settings.zone)
    return 0


async def _stats(args: argparse.Namespace, settings: Settings) -> int:
    async with _cases(settings) as cases:
        rows = await cases.statistics(args.by, args.start, args.end, limit=10_000_000)
    if args.csv:
        sys.stdout.write(to_csv(rows, args.by))
    elif args.json:
        for row in rows:
            print(json.dumps(dataclasses.asdict(row), ensure_ascii=False))
    else:
        print(f"{args.by:<24} {'cases':>6} {'closed':>6} {'on time':>8} {'overdue':>7} {'satisfied':>9} "
              f"{'rehandled':>9} {'missed':>6} {'called back':>11}")
        for row in rows:
            print(f"{cell(row.key, 24)} {row.cases:>6} {row.closed:>6} {_percent(row.on_time_rate):>8} "
                  f"{row.overdue:>7} {_percent(row.satisfaction_rate):>9} {row.rehandled:>9} {row.missed_calls:>6} "
                  f"{row.called_back:>11}")
    return 0


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.0%}"


async def _edit(args: argparse.Namespace, settings: Settings) -> int:
    fields = {name: getattr(args, name) for name in ("category", "content", "location", "confidential")
              if getattr(args, name) is not None}
    async with _acting_on_cases(settings, args.actor) as (cases, acting):
        acting.check(await cases.get(args.id))
        case = await cases.update_details(args.id, fields, acting.actor, acting.role)
    _print([case], args.json, settings.zone)
    return 0


async def _link(args: argparse.Namespace, settings: Settings) -> int:
    async with _cases(settings) as cases:
        case = await cases.link_call(args.id, args.linkedid)
    print(f"call {args.linkedid} joined case {case.id}")
    return 0


async def _missed(args: argparse.Namespace, settings: Settings) -> int:
    done = args.called_back or args.unreachable
    if args.actor is not None and not done:
        raise UserError(f"--as {args.actor}: acts on a missed call: give --called-back or --unreachable")
    if done:
        async with _acting_on_cases(settings, args.actor) as (cases, acting):
            await cases.resolve_missed(done, "called_back" if args.called_back else "unreachable", acting.actor,
                                       args.case)
        print(f"missed call {done}: {'called back' if args.called_back else 'unreachable'}")
        return 0
    async with _cases(settings) as cases:
        calls = await cases.store.missed(limit=1000)
    for call in calls:
        at = call.at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")
        if args.json:
            print(json.dumps({"linkedid": call.linkedid, "caller_number": call.caller_number,
                              "dialled_number": call.dialled_number, "at": at, "waited": call.waited},
                             ensure_ascii=False))
        else:
            print(f"{at}  {cell(call.caller_number, 12)} → {cell(call.dialled_number, 8)} "
                  f"waited {cell(seconds(call.waited), 5, '>')}  {call.linkedid}")
    return 0
