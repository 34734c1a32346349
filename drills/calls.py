"""Fault drill: citizens call while cti, its AMI link or its database fails; every call must get one record.

A real ``cti serve`` runs as a subprocess (settings written to a temporary folder, the repository's
trunk map, agents, flows, prompts and cases; the AMI secret in CTI_AMI_SECRET) against the
built-in simulated Asterisk (cti.sim.world.World, real time, in this process), which runs the
shipped dialplan and asks cti's FastAGI for every call. The queue's members are static, added in
the simulator as Asterisk's queues.conf would have them (the two agents of agents/agents.yaml and
robot members cti does not know, ``--agents`` in all), so that a restarted cti does not change who
answers; they answer as robots in 3 to 8 s. ``--calls`` citizens (100) call the numbers of
trunk_map.yaml (cti.sim.traffic, seeded: 60% to 12345, the rest to legacy numbers, 30% repeat
callers) over about ``--period`` seconds (100); once answered they talk 15 to 45 s, unanswered they
give up after 30 to 90 s, so that calls are live across every fault. One fault (``--fault``):

- ``ami-drops``: cti reaches the simulator through a TCP proxy; ``--drops`` times (10), evenly
  over the traffic, the proxy cuts the connection (both sides) and refuses new ones for
  ``--outage`` seconds (2); cti reconnects by itself and resynchronises;
- ``kill-cti``: half-way through the traffic cti is killed with SIGKILL and a new one started
  ``--dead`` seconds (5) later on the same database and ports; meanwhile the dialplan's FastAGI
  request fails and the call goes to the 12345 queue, as designed;
- ``postgres-down``: cti on a fresh PostgreSQL database (``--pg``, trust auth; dropped afterwards)
  through a TCP proxy that, from 20% of the traffic on, refuses connections and drops the open
  ones for ``--down`` seconds (60);
- ``sqlite-locked``: cti on a SQLite file that another process (Python's sqlite3) holds with
  ``BEGIN EXCLUSIVE`` for ``--down`` seconds (60), from 20% of the traffic on.

After the last citizen hangs up, the drill waits until cti has written what it will (its
/api/metrics show nothing waiting and the database's counts stop changing), stops cti with SIGTERM
and counts, from the database: the calls placed (the Linkedids of the citizens' inbound channels
the simulator made), records, missing (placed, no record), spurious (records of no placed call),
duplicates (rows sharing a Linkedid), estimated records, cases (through case_calls) and missed-call
entries, and the placed calls with neither, by why.

    .venv/bin/python drills/calls.py --fault ami-drops|kill-cti|postgres-down|sqlite-locked [--calls 100]

Exits 1 when a placed call has no record.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from cti.cases.service import NOT_MISSED  # noqa: E402
from cti.configuration import Configuration, load_configuration  # noqa: E402
from cti.settings import load_settings  # noqa: E402
from cti.sim.pbx import Channel  # noqa: E402
from cti.sim.phones import Phone  # noqa: E402
from cti.sim.traffic import TrafficMix, arrivals  # noqa: E402
from cti.sim.world import World  # noqa: E402
from cti.store.database import Database  # noqa: E402
from cti.store.models import CallEventRow, CallRow, CaseCallRow, CaseRow, MissedCallRow  # noqa: E402
from drills.common import REPO, TcpProxy, free_port, machine_line  # noqa: E402

FAULTS = ("ami-drops", "kill-cti", "postgres-down", "sqlite-locked")
TALK = (15.0, 45.0)  # seconds a citizen talks once answered
PATIENCE = (30.0, 90.0)  # seconds an unanswered citizen waits before giving up
FAULT_AT = 0.2  # the database faults begin this far into the traffic
HOLD_LOCK = """\
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
print("released", flush=True)
"""


@dataclass
class Placed:
    """A citizen's call as the simulator made it; times in seconds after the traffic began."""

    linkedid: str
    number: str
    at: float
    channel: Channel
    ended: float | None = None


class Traffic:
    """The drill's clock (seconds since the traffic began) and the citizens' calls placed on it."""

    def __init__(self, placed: list[Placed]) -> None:
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self.placed = placed
        self.watchers: list[asyncio.Task[None]] = []

    def now(self) -> float:
        return self._loop.time() - self._t0

    def place(self, world: World, number: str, citizen: Any) -> None:
        channel = world.call(number, citizen)
        placed = Placed(channel.linkedid, number, self.now(), channel)
        self.placed.append(placed)
        self.watchers.append(asyncio.create_task(self._ended(placed)))

    async def _ended(self, placed: Placed) -> None:
        await placed.channel.gone.wait()
        placed.ended = self.now()


@dataclass
class Window:
    """A stretch of the drill when the fault was on (seconds after the traffic began)."""

    start: float
    end: float
    label: str = ""


@dataclass
class Run:
    fault: str
    folder: Path
    placed: list[Placed] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    live_at_restart: set[str] = field(default_factory=set)
    cti_command: str = ""
    database: str = ""
    settled: str = ""
    took: float = 0.0
    result: Tally | None = None


class Cti:
    """``cti serve`` as a subprocess, its output in the work folder (cti-1.log, cti-2.log…)."""

    def __init__(self, settings_file: Path, folder: Path, secret: str, web_port: int, token: str) -> None:
        self.argv = [sys.executable, "-m", "cti.cli", "--settings", str(settings_file), "serve"]
        self.folder = folder
        env = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
        self.env = {**env, "CTI_AMI_SECRET": secret}
        self.web_port = web_port
        self.token = token
        self.starts = 0
        self.process: asyncio.subprocess.Process | None = None

    @property
    def log(self) -> Path:
        return self.folder / f"cti-{self.starts}.log"

    async def start(self, http: aiohttp.ClientSession, timeout: float = 60.0) -> float:
        """Start it and wait until its web port answers with the AMI link up; returns how long that took."""
        self.starts += 1
        began = time.monotonic()
        with open(self.log, "wb") as out:
            self.process = await asyncio.create_subprocess_exec(*self.argv, cwd=REPO, env=self.env, stdout=out,
                                                                stderr=asyncio.subprocess.STDOUT)
        while time.monotonic() - began < timeout:
            if self.process.returncode is not None:
                raise RuntimeError(f"cti serve exited with {self.process.returncode}:\n{self.tail()}")
            readings = await metrics(http, self.web_port, self.token)
            if readings is not None and readings.get("cti_ami_up") == 1:
                return time.monotonic() - began
            await asyncio.sleep(0.1)
        raise RuntimeError(f"cti serve not up within {timeout:g}s:\n{self.tail()}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL if it has not stopped in time."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process is not None else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.kill()
            return await self.process.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_counts(self) -> Counter[str]:
        """WARNING and ERROR lines over every start's log."""
        counts: Counter[str] = Counter()
        for n in range(1, self.starts + 1):
            try:
                text = (self.folder / f"cti-{n}.log").read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                for level in ("WARNING", "ERROR", "CRITICAL"):
                    if f" {level} " in line:
                        counts[level] += 1
        return counts


async def metrics(http: aiohttp.ClientSession, port: int, token: str) -> dict[str, float] | None:
    """cti's /api/metrics as name -> value (labelled series left out), or None when it does not answer."""
    try:
        async with http.get(f"http://127.0.0.1:{port}/api/metrics", headers={"Authorization": f"Bearer {token}"},
                            timeout=aiohttp.ClientTimeout(total=3)) as response:
            if response.status != 200:
                return None
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def settings_yaml(folder: Path, *, ami_port: int, agi_port: int, web_port: int, url: str) -> Path:
    path = folder / "cti.yaml"
    path.write_text(f"""\
# written by drills/calls.py; the AMI secret is in CTI_AMI_SECRET
ami: {{host: 127.0.0.1, port: {ami_port}, username: cti}}
agi: {{host: 127.0.0.1, port: {agi_port}}}
web: {{host: 127.0.0.1, port: {web_port}}}
database: {{url: "{url}"}}
recordings: {{directory: "{folder / 'recordings'}"}}
paths:
  trunk_map: "{REPO / 'trunk_map.yaml'}"
  agents: "{REPO / 'agents'}"
  ivr_flows: "{REPO / 'ivr_flows'}"
  prompts: "{REPO / 'recordings' / 'prompts'}"
  cases: "{REPO / 'cases.yaml'}"
""", encoding="utf-8")
    return path


def static_members(world: World, configuration: Configuration, total: int, rng: random.Random) -> int:
    """The queue's members as queues.conf would list them: the configured agents in their queues, then
    robots cti does not know, up to ``total`` in the hotline's queue. Returns how many members it has."""
    hotline = world.pbx.queues[configuration.trunk_map.hotline.queue]
    for agent in configuration.directory.agents:
        for name in agent.queues:
            world.pbx.queues[name].add(agent.device, agent.name).dynamic = False
    for n in range(max(0, total - len(hotline.members))):
        device = f"PJSIP/robot{2001 + n}"
        world.pbx.endpoints[device] = Phone(device, caller_number=str(2001 + n), ring_seconds=rng.uniform(3, 8))
        hotline.add(device, f"robot {2001 + n}").dynamic = False
    return len(hotline.members)


async def create_pg_database(server: str) -> str:
    import asyncpg

    name = f"cti_drill_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(f"{server}/postgres")
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name


async def drop_pg_database(server: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(f"{server}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def counts(database: Database) -> tuple[int, int, int]:
    """Calls, calls with a case, missed-call entries: what the settling watches."""
    async with database.engine.connect() as connection:
        calls = (await connection.execute(select(func.count()).select_from(CallRow))).scalar_one()
        linked = (await connection.execute(select(func.count()).select_from(CaseCallRow))).scalar_one()
        missed = (await connection.execute(select(func.count()).select_from(MissedCallRow))).scalar_one()
    return int(calls), int(linked), int(missed)


async def drill(args: argparse.Namespace, folder: Path) -> Run:
    run = Run(args.fault, folder)
    started = time.monotonic()
    secret = secrets.token_hex(8)
    rng = random.Random(args.seed)
    agi_port, web_port = free_port(), free_port()
    pg_name = ""
    ami_proxy: TcpProxy | None = None
    db_proxy: TcpProxy | None = None
    if args.fault == "postgres-down":
        pg_name = await create_pg_database(args.pg)
        host, _, port = args.pg.rpartition("@")[2].partition(":")
        db_proxy = TcpProxy(host, int(port or 5432))
        await db_proxy.up()
        direct = f"{args.pg}/{pg_name}"
        url = f"{args.pg.rpartition('@')[0]}@127.0.0.1:{db_proxy.port}/{pg_name}"
        run.database = f"PostgreSQL, a fresh database {pg_name} on {args.pg.rpartition('@')[2]}, through a TCP proxy"
    else:
        direct = url = f"sqlite:///{folder / 'drill.db'}"
        run.database = "SQLite file (WAL, synchronous=FULL)"
    database = await Database.open(direct)  # the tables, and a sign-in for reading /api/metrics
    world: World | None = None
    cti: Cti | None = None
    try:
        await database.users.add("drill", "drill", "admin", None)
        token = await database.users.issue_token("drill", "drill", None)
        settings_file = settings_yaml(folder, ami_port=0, agi_port=agi_port, web_port=web_port, url=url)
        settings = load_settings(settings_file)
        configuration = load_configuration(settings)
        world = World(configuration, agi_url="agi://127.0.0.1:9", secret=secret,
                      prompts=settings.path(settings.paths.prompts) / settings.paths.prompt_language,
                      recordings=str(folder / "recordings"), zone=settings.zone, seed=args.seed)
        members = static_members(world, configuration, args.agents, world.rng)
        ami_port = await world.start()
        if args.fault == "ami-drops":
            ami_proxy = TcpProxy("127.0.0.1", ami_port)
            ami_port = await ami_proxy.up()
        settings_file = settings_yaml(folder, ami_port=ami_port, agi_port=agi_port, web_port=web_port, url=url)
        run.cti_command = f"{Path(sys.executable).name} -m cti.cli --settings {settings_file} serve"
        run.notes.append(f"queue {configuration.trunk_map.hotline.queue}: {members} static members "
                         f"({len(configuration.directory.agents)} agents of agents.yaml, the rest robots)")
        async with aiohttp.ClientSession() as http:
            cti = Cti(settings_file, folder, secret, web_port, token)
            took = await cti.start(http)
            run.notes.append(f"cti up (web answering, AMI logged in) {took:.1f} s after it was started")
            world.dialplan.agi_url = f"agi://127.0.0.1:{agi_port}"

            mix = TrafficMix(rate=args.calls / args.period, talk=TALK, patience=PATIENCE)
            source = itertools.islice(arrivals(configuration.trunk_map, mix, rng), args.calls)
            traffic = Traffic(run.placed)
            now = traffic.now
            fault = asyncio.create_task(inject(args, run, cti, http, ami_proxy, db_proxy, folder, now))
            for arrival in source:
                await asyncio.sleep(max(0.0, arrival.at - now()))
                traffic.place(world, arrival.number, arrival.citizen)
            await fault
            while world.citizens and now() < args.period + 600:
                await asyncio.sleep(0.5)
            await asyncio.wait(traffic.watchers, timeout=10)
            run.notes.append(f"traffic: last call placed at {run.placed[-1].at:.1f} s, "
                             f"last ended at {max(p.ended or 0 for p in run.placed):.1f} s")
            run.settled = await settle(cti, http, database, args.settle)
        code = await cti.stop()
        logged = ", ".join(f"{n} {level}" for level, n in sorted(cti.log_counts().items())) or "nothing"
        run.notes.append(f"cti stopped with SIGTERM: exit status {code}; its logs ({cti.starts}): {logged} "
                         "at WARNING or above")
        return run
    finally:
        if cti is not None:
            await cti.stop(5)
        if world is not None:
            await world.close()
        for proxy in (ami_proxy, db_proxy):
            if proxy is not None:
                await proxy.close()
        run.result = await tally(database, run)
        await database.close()
        if pg_name:
            await drop_pg_database(args.pg, pg_name)
        run.took = time.monotonic() - started


async def inject(args: argparse.Namespace, run: Run, cti: Cti, http: aiohttp.ClientSession,
                 ami_proxy: TcpProxy | None, db_proxy: TcpProxy | None, folder: Path,
                 now: Any) -> None:
    """The fault, at its times."""
    if args.fault == "ami-drops":
        assert ami_proxy is not None
        for n in range(args.drops):
            await asyncio.sleep(max(0.0, args.period * (n + 0.5) / args.drops - now()))
            cut_at = now()
            opened = ami_proxy.connections
            dropped = await ami_proxy.down()
            await asyncio.sleep(args.outage)
            await ami_proxy.up()
            window = Window(cut_at, cut_at + args.outage, f"drop {n + 1} ({dropped} connection cut)")
            run.windows.append(window)
            while ami_proxy.connections == opened and now() - cut_at < 60:
                await asyncio.sleep(0.05)
            window.end = now()  # the link is back: cti logged in again through the proxy
    elif args.fault == "kill-cti":
        await asyncio.sleep(max(0.0, args.period / 2 - now()))
        killed_at = now()
        cti.kill()
        status = await cti.wait()
        window = Window(killed_at, killed_at, "cti dead")
        run.windows.append(window)
        run.notes.append(f"cti killed (SIGKILL, exit status {status}) at {killed_at:.1f} s")
        await asyncio.sleep(max(0.0, killed_at + args.dead - now()))
        restarted_at = now()
        took = await cti.start(http)
        window.end = now()
        run.live_at_restart = {p.linkedid for p in run.placed if p.ended is None}
        run.notes.append(f"cti started again at {restarted_at:.1f} s, up {took:.1f} s later: dead for "
                         f"{window.end - window.start:.1f} s")
    elif args.fault == "postgres-down":
        assert db_proxy is not None
        await asyncio.sleep(max(0.0, args.period * FAULT_AT - now()))
        start = now()
        dropped = await db_proxy.down()
        await asyncio.sleep(args.down)
        await db_proxy.up()
        run.windows.append(Window(start, now(), f"PostgreSQL unreachable ({dropped} connections dropped)"))
    elif args.fault == "sqlite-locked":
        await asyncio.sleep(max(0.0, args.period * FAULT_AT - now()))
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLD_LOCK, str(folder / "drill.db"), str(args.down), stdout=asyncio.subprocess.PIPE)
        assert holder.stdout is not None
        asked = now()
        line = await holder.stdout.readline()
        if line.strip() != b"locked":
            raise RuntimeError(f"the lock holder did not lock the database: {line!r}")
        start = now()
        await holder.stdout.readline()
        await holder.wait()
        run.windows.append(Window(start, now(), f"SQLite held with BEGIN EXCLUSIVE by process {holder.pid}"))
        run.notes.append(f"the lock was taken {start - asked:.2f} s after it was asked for")


async def settle(cti: Cti, http: aiohttp.ClientSession, database: Database, deadline: float) -> str:
    """Wait until cti holds nothing more to write and the database stops changing (3 s)."""
    began = time.monotonic()
    last: tuple[int, int, int] | None = None
    stable_since = time.monotonic()
    readings: dict[str, float] | None = None
    while time.monotonic() - began < deadline:
        readings = await metrics(http, cti.web_port, cti.token)
        now = await counts(database)
        busy = readings is None or any(readings.get(name, 0) for name in (
            "cti_call_records_waiting", "cti_cases_waiting", "cti_live_calls"))
        if now != last or busy:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 3:
            return f"settled {time.monotonic() - began:.1f} s after the last call ended"
        await asyncio.sleep(1)
    held = {name: readings.get(name) for name in ("cti_call_records_waiting", "cti_cases_waiting",
                                                   "cti_live_calls")} if readings else "no answer"
    return f"NOT settled within {deadline:g} s (cti metrics: {held})"


@dataclass
class Tally:
    placed: int = 0
    records: int = 0
    inbound_records: int = 0
    missing: list[str] = field(default_factory=list)
    spurious: list[str] = field(default_factory=list)
    duplicates: int = 0
    estimated: int = 0
    cases: int = 0
    cases_linked: int = 0
    cases_of_placed: int = 0
    cases_without_call: int = 0
    missed: int = 0
    missed_of_placed: int = 0
    both: int = 0
    neither: Counter[str] = field(default_factory=Counter)
    routes: dict[str, Counter[str]] = field(default_factory=dict)
    answered_mismatch: list[str] = field(default_factory=list)
    in_window: Counter[str] = field(default_factory=Counter)


async def tally(database: Database, run: Run) -> Tally:
    t = Tally()
    async with database.engine.connect() as c:
        rows = (await c.execute(select(CallRow.linkedid, CallRow.direction, CallRow.estimated,
                                       CallRow.answered_at))).all()
        routed: dict[str, str] = {}
        for linkedid, data in (await c.execute(select(CallEventRow.linkedid, CallEventRow.data)
                                               .where(CallEventRow.kind == "routed")
                                               .order_by(CallEventRow.linkedid, CallEventRow.seq))).all():
            routed.setdefault(linkedid, str(data.get("action", "")))
        linked = dict((await c.execute(select(CaseCallRow.linkedid, CaseCallRow.case_id))).all())
        t.cases = int((await c.execute(select(func.count()).select_from(CaseRow))).scalar_one())
        case_ids = set((await c.execute(select(CaseRow.id))).scalars())
        missed = set((await c.execute(select(MissedCallRow.linkedid))).scalars())
        t.duplicates = len((await c.execute(select(CallRow.linkedid).group_by(CallRow.linkedid)
                                            .having(func.count() > 1))).all())
    records = {linkedid: (direction, estimated, answered_at) for linkedid, direction, estimated, answered_at in rows}
    placed = {p.linkedid: p for p in run.placed}
    t.placed, t.records = len(placed), len(rows)
    t.inbound_records = sum(1 for r in records.values() if r[0] == "inbound")
    t.spurious = sorted(set(records) - set(placed))
    t.estimated = sum(1 for r in records.values() if r[1])
    t.cases_linked = len(set(linked.values()))
    t.cases_without_call = len(case_ids - set(linked.values()))
    t.missed = len(missed)
    for linkedid, p in placed.items():
        in_window = [w for w in run.windows if w.start <= p.at < w.end]
        whole = [w for w in run.windows if w.start <= p.at and p.ended is not None and p.ended < w.end]
        live = [w for w in run.windows if p.at < w.start and (p.ended is None or p.ended >= w.start)]
        ended_in = [w for w in run.windows if p.ended is not None and w.start <= p.ended < w.end]
        record = records.get(linkedid)
        for key, hit in (("began during", in_window), ("began and ended during", whole),
                         ("live as it began", live), ("ended during", ended_in)):
            if hit:
                t.in_window[key] += 1
                t.in_window[key + " (recorded)"] += record is not None
        if linkedid in run.live_at_restart:
            t.in_window["live at the restart"] += 1
            t.in_window["live at the restart (recorded)"] += record is not None
        if record is None:
            t.missing.append(linkedid)
            continue
        action = routed.get(linkedid, "") or "(no route known)"
        answered = record[2] is not None
        if answered != p.channel.joined.is_set():
            t.answered_mismatch.append(linkedid)
        route = t.routes.setdefault(action, Counter())
        route["calls"] += 1
        route["answered"] += answered
        route["estimated"] += bool(record[1])
        has_case, has_missed = linkedid in linked, linkedid in missed
        t.cases_of_placed += has_case
        t.missed_of_placed += has_missed
        t.both += has_case and has_missed
        route["case"] += has_case
        route["missed"] += has_missed
        if not (has_case or has_missed):
            if not answered and action in NOT_MISSED:
                t.neither[f"served by a notice ({action}): none by design"] += 1
            elif answered:
                t.neither["answered, but no case"] += 1
            else:
                t.neither[f"unanswered ({action}), but not on the missed list"] += 1
            route["neither"] += 1
    return t


def report(args: argparse.Namespace, run: Run) -> int:
    t = run.result
    assert t is not None
    fault = {
        "ami-drops": f"{args.drops} AMI drops, each connection cut and new ones refused for {args.outage:g} s",
        "kill-cti": f"cti killed with SIGKILL half-way through, a new one started {args.dead:g} s later",
        "postgres-down": f"PostgreSQL unreachable for {args.down:g} s from {args.period * FAULT_AT:g} s on",
        "sqlite-locked": f"the SQLite file locked by another process for {args.down:g} s "
                         f"from {args.period * FAULT_AT:g} s on",
    }[args.fault]
    print(machine_line())
    print(f"drill:               {args.fault}: {fault}")
    print(f"command:             .venv/bin/python drills/calls.py --fault {args.fault} --calls {args.calls} "
          f"--period {args.period:g} --agents {args.agents} --seed {args.seed}")
    print(f"cti:                 {run.cti_command}; database: {run.database}")
    print(f"traffic:             {args.calls} calls over about {args.period:g} s (the trunk map's numbers, "
          f"seed {args.seed}), talk {TALK[0]:g}–{TALK[1]:g} s, patience {PATIENCE[0]:g}–{PATIENCE[1]:g} s; "
          "real time")
    for note in run.notes:
        print(f"                     {note}")
    if run.windows:
        spans = ", ".join(f"{w.start:.1f}–{w.end:.1f}" for w in run.windows)
        print(f"fault windows (s):   {spans}")
        print(f"                     {run.windows[0].label}" if len(run.windows) == 1 else
              f"                     link back {min(w.end - w.start for w in run.windows):.1f}–"
              f"{max(w.end - w.start for w in run.windows):.1f} s after each cut")
    print(f"settling:            {run.settled}; the drill took {run.took:.0f} s")
    print(f"calls placed:        {t.placed}")
    print(f"records:             {t.records} ({t.estimated} estimated; {t.inbound_records} inbound)")
    print(f"missing:             {len(t.missing)} (placed, no record)")
    placed = {p.linkedid: p for p in run.placed}
    for linkedid in t.missing:
        p = placed[linkedid]
        ended = f"{p.ended:.1f} s" if p.ended is not None else "never"
        print(f"                     {linkedid}: dialled {p.number} at {p.at:.1f} s, ended at {ended}")
    print(f"spurious:            {len(t.spurious)} (records of no placed call)"
          f"{': ' + ', '.join(t.spurious[:10]) if t.spurious else ''}")
    print(f"duplicates:          {t.duplicates} (Linkedids with more than one row; calls.linkedid has a unique "
          "index, so a second write is refused, not stored)")
    print(f"cases:               {t.cases} ({t.cases_of_placed} placed calls have one; "
          f"{t.cases_without_call} cases without a call)")
    print(f"missed-call entries: {t.missed} ({t.missed_of_placed} of placed calls; {t.both} calls with both)")
    neither = sum(t.neither.values())
    print(f"neither:             {neither}" + "".join(f"\n                     {n} {why}"
                                                       for why, n in sorted(t.neither.items())))
    print("by route (cti's decision in the record's timeline; fallback: the dialplan queued the call, cti "
          "did not answer its FastAGI request):")
    for action, c in sorted(t.routes.items(), key=lambda item: -item[1]["calls"]):
        print(f"  {action:<18} {c['calls']:>3} calls: {c['answered']:>3} answered, {c['case']:>3} cases, "
              f"{c['missed']:>3} missed, {c['neither']:>3} neither; {c['estimated']:>3} estimated")
    print(f"answered, PBX vs record: {len(t.answered_mismatch)} records disagree with the simulator "
          f"(bridged with someone or not){': ' + ', '.join(t.answered_mismatch[:10]) if t.answered_mismatch else ''}")
    if t.in_window:
        print("during the fault:")
        for key, label in (("live as it began", "live when a fault began"),
                           ("began during", "began during a fault"),
                           ("began and ended during", "began and ended within a fault"),
                           ("ended during", "ended during a fault"),
                           ("live at the restart", "live when cti was up again")):
            if t.in_window[key]:
                print(f"  {label + ':':<33} {t.in_window[key]:>3} calls, "
                      f"{t.in_window[key + ' (recorded)']:>3} recorded")
    if args.keep:
        print(f"work folder kept:    {run.folder} (settings, cti-N.log, the SQLite file)")
    return 1 if t.missing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fault", choices=FAULTS, required=True)
    parser.add_argument("--calls", type=int, default=100, help="citizens' calls placed (default 100)")
    parser.add_argument("--period", type=float, default=100.0, help="seconds the calls arrive over (default 100)")
    parser.add_argument("--agents", type=int, default=24, help="static members of the 12345 queue (default 24)")
    parser.add_argument("--seed", type=int, default=1, help="the traffic and the phones' ring times")
    parser.add_argument("--drops", type=int, default=10, help="ami-drops: how many (default 10)")
    parser.add_argument("--outage", type=float, default=2.0,
                        help="ami-drops: seconds new connections are refused after each cut (default 2)")
    parser.add_argument("--dead", type=float, default=5.0, help="kill-cti: seconds before the restart (default 5)")
    parser.add_argument("--down", type=float, default=60.0,
                        help="postgres-down, sqlite-locked: seconds the database is out (default 60)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                        help="postgres-down: the server (a database is created on it and dropped after)")
    parser.add_argument("--settle", type=float, default=120.0,
                        help="seconds to wait, after the last call, for cti to write what it holds (default 120)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (settings, cti's logs, SQLite)")
    parser.add_argument("--log", action="store_true", help="show the simulator's warnings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.log else logging.ERROR,
                        format="%(relativeCreated)8.0f ms  %(name)s: %(message)s")
    if args.keep:
        folder = Path(tempfile.mkdtemp(prefix="cti-drill-"))
        return report(args, asyncio.run(drill(args, folder)))
    with tempfile.TemporaryDirectory(prefix="cti-drill-") as name:
        return report(args, asyncio.run(drill(args, Path(name))))


if __name__ == "__main__":
    sys.exit(main())
