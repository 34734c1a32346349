"""Fault drill and bench: two Asterisk nodes, two ``cti serve`` on one PostgreSQL, one cti killed mid-traffic.

Two simulated Asterisk 22 nodes (cti.sim.world.World, real time, in this process), named ``sz1``
and ``sz2`` by their systemname, run the shipped dialplan; each queue has ``--agents`` static
members (agents.yaml's two, the rest robots answering in 3 to 8 s). Two ``cti serve`` processes,
A and B, read both nodes (``ami.nodes``) and share a fresh PostgreSQL database (``--pg``; dropped
afterwards); node sz1 asks A's FastAGI, sz2 B's. ``--calls`` citizens call the trunk map's numbers,
alternately on each node, over about ``--period`` seconds. Agent 1001's desk is a WebSocket on A.

``--kill-at`` into the traffic (0.4) A is killed with SIGKILL and not started again. Then, as a
load balancer's health check would, sz1's FastAGI requests go to B and the desk reconnects to B
with the same token. The lease of the sweeps, the callbacks and the webhooks (cti.leader),
which A took at start, expires and B takes it over.

``--callbacks`` cases (20) are answered through B's API just before the kill (直接答复: each
gets a callback with the satisfaction question, due at once; cases.yaml's sweep every 2 s, any
hour): A's sweep starts calling back, B's finishes. Every citizen called back presses their
survey digit.

Counted from the database after the last call ended and B wrote what it would: calls placed
(the Linkedids of the citizens' inbound channels on both nodes), records, missing, spurious,
duplicates, cases (one per call at most: case_calls), callbacks per answered case, the lease's
take-over and the desk's reconnection, and the pair's throughput: calls ended and records written per
second while the traffic ran, and each record's lag from its call's end to its row being readable (the drill
polls the calls table every 0.2 s).

    .venv/bin/python drills/pair.py [--calls 200 --period 100 --kill-at 0.4]
    .venv/bin/python drills/pair.py --bench --calls 3000 --period 150 --talk 1-4   # throughput, no kill

Exits 1 when a placed call has no record, a case has two callbacks or a call two cases.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from cti.configuration import load_configuration  # noqa: E402
from cti.leader import LEASE  # noqa: E402
from cti.settings import load_settings  # noqa: E402
from cti.sim.traffic import TrafficMix, arrivals  # noqa: E402
from cti.sim.world import World  # noqa: E402
from cti.store.database import Database  # noqa: E402
from cti.store.leases import LeaseStore  # noqa: E402
from cti.store.models import CallRow, CaseCallRow, CaseEventRow, CaseRow  # noqa: E402
from drills.calls import (  # noqa: E402
    PATIENCE,
    TALK,
    Cti,
    Run,
    Tally,
    Traffic,
    create_pg_database,
    drop_pg_database,
    settle,
    static_members,
    tally,
)
from drills.common import REPO, free_port, machine_line  # noqa: E402

NODES = ("sz1", "sz2")


@dataclass
class Pair:
    run: Run
    killed_at: float = 0.0  # seconds into the traffic
    lease_taken: float | None = None  # seconds after the kill that B held the lease
    desks: list[Desk] = field(default_factory=list)
    callbacks: Counter[int] = field(default_factory=Counter)  # callback attempts by case
    called_back: list[int] = field(default_factory=list)  # the cases answered for a callback
    surveyed: Counter[int] = field(default_factory=Counter)  # satisfaction answers recorded, by case
    states: Counter[str] = field(default_factory=Counter)  # the callback cases' states at the end
    cases_per_call: Counter[int] = field(default_factory=Counter)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)  # held until the drill ends
    seen: dict[str, float] = field(default_factory=dict)  # linkedid -> seconds into the traffic its row was read
    tally: Tally | None = None


def settings_yaml(folder: Path, name: str, ami_ports: dict[str, int], agi_port: int, web_port: int,
                  url: str, cases: Path) -> Path:
    path = folder / f"cti-{name}.yaml"
    nodes = [{"name": node, "host": "127.0.0.1", "port": port} for node, port in ami_ports.items()]
    path.write_text(yaml.safe_dump({
        "ami": {"username": "cti", "nodes": nodes}, "agi": {"host": "127.0.0.1", "port": agi_port},
        "web": {"host": "127.0.0.1", "port": web_port}, "database": {"url": url},
        "recordings": {"directory": str(folder / "recordings")},
        "paths": {"trunk_map": str(REPO / "trunk_map.yaml"), "agents": str(REPO / "agents"),
                  "ivr_flows": str(REPO / "ivr_flows"), "prompts": str(REPO / "recordings" / "prompts"),
                  "cases": str(cases)}}, allow_unicode=True), encoding="utf-8")
    return path


def quick_cases(folder: Path) -> Path:
    """cases.yaml with the sweep every 2 s and callbacks at any hour (the live tests' too)."""
    cases = yaml.safe_load((REPO / "cases.yaml").read_text(encoding="utf-8"))
    cases["sweep_seconds"] = 2
    cases["callback"]["hours"] = ["00:00", "23:59"]
    path = folder / "cases.yaml"
    path.write_text(yaml.safe_dump(cases, allow_unicode=True), encoding="utf-8")
    return path


class Desk:
    """A person's desk: a WebSocket to the first instance, to the next when it drops (as a load balancer
    would send it); its messages counted by type and instance."""

    def __init__(self, who: str, http: aiohttp.ClientSession, token: str, ports: dict[str, int]) -> None:
        self.who, self.http, self.token, self.ports = who, http, token, ports
        self.seen: Counter[tuple[str, str]] = Counter()  # (instance, message type)
        self.signed_in = asyncio.Event()
        self.back: float | None = None  # seconds from the kill to signed in on another instance

    async def run(self, stop: asyncio.Event, kill_time: list[float]) -> None:
        for instance in itertools.cycle(self.ports):
            if stop.is_set():
                return
            try:
                async with self.http.ws_connect(f"ws://127.0.0.1:{self.ports[instance]}/api/ws") as ws:
                    await ws.send_json({"type": "auth", "token": self.token})
                    async for message in ws:
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                        kind = str(json.loads(message.data).get("type"))
                        self.seen[instance, kind] += 1
                        if kind == "hello":
                            self.signed_in.set()
                            if kill_time and self.back is None:
                                self.back = time.monotonic() - kill_time[0]
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.2)

    def summary(self, kinds: tuple[str, ...]) -> str:
        back = f"signed in again on B {_seconds(self.back)} after the kill" if self.back is not None else \
            "not signed in again"
        counts = "; ".join(f"{kind}: {self.seen['A', kind]} from A, {self.seen['B', kind]} from B" for kind in kinds)
        return f"{self.who}: {back}; {counts}"


async def drill(args: argparse.Namespace, folder: Path) -> Pair:
    run = Run("pair", folder)
    pair = Pair(run)
    started = time.monotonic()
    secret = secrets.token_hex(8)
    pg_name = await create_pg_database(args.pg)
    url = f"{args.pg}/{pg_name}"
    run.database = f"PostgreSQL, a fresh database {pg_name} on {args.pg.rpartition('@')[2]}"
    database = await Database.open(url)
    worlds: dict[str, World] = {}
    ctis: dict[str, Cti] = {}
    stop_desk = asyncio.Event()
    try:
        await database.users.add("drill", "drill", "admin", None)
        token = await database.users.issue_token("drill", "drill", None)
        await database.users.add("1001", "王芳", "agent", agent_id="1001")
        desk_token = await database.users.issue_token("1001", "drill desk", None)
        await database.users.add("boss", "drill supervisor", "supervisor")
        boss = await database.users.issue_token("boss", "drill", None)
        cases = quick_cases(folder)
        agi = {"A": free_port(), "B": free_port()}
        web = {"A": free_port(), "B": free_port()}
        settings = load_settings(settings_yaml(folder, "A", dict.fromkeys(NODES, 0), agi["A"], web["A"], url, cases))
        configuration = load_configuration(settings)
        for n, name in enumerate(NODES):
            worlds[name] = World(configuration, agi_url="agi://127.0.0.1:9", secret=secret,
                                 prompts=settings.path(settings.paths.prompts) / settings.paths.prompt_language,
                                 recordings=str(folder / "recordings"), zone=settings.zone, seed=args.seed + n,
                                 systemname=name)
            static_members(worlds[name], configuration, args.agents, worlds[name].rng)
        people = worlds[NODES[0]].people  # a citizen called back answers whichever node calls
        for world in worlds.values():
            world.people = people
            world.dialplan.callees = people
        ports = {name: await world.start() for name, world in worlds.items()}
        async with aiohttp.ClientSession() as http:
            for instance in ("A", "B"):  # A first: it takes the lease
                path = settings_yaml(folder, instance, ports, agi[instance], web[instance], url, cases)
                ctis[instance] = Cti(path, folder / instance, secret, web[instance], token)
                (folder / instance).mkdir()
                took = await ctis[instance].start(http)
                run.notes.append(f"cti {instance} up (web answering, both nodes' AMI logged in) {took:.1f} s after "
                                 "it was started")
            run.cti_command = (f"{Path(sys.executable).name} -m cti.cli --settings "
                               f"{folder}/cti-{{A,B}}.yaml serve")
            worlds["sz1"].dialplan.agi_url = f"agi://127.0.0.1:{agi['A']}"
            worlds["sz2"].dialplan.agi_url = f"agi://127.0.0.1:{agi['B']}"
            pair.desks = [Desk("agent 1001's desk", http, desk_token, web),
                          Desk("the supervisor's wallboard", http, boss, web)]
            kill_time: list[float] = []
            desking = [asyncio.create_task(desk.run(stop_desk, kill_time)) for desk in pair.desks]
            for desk in pair.desks:
                await asyncio.wait_for(desk.signed_in.wait(), 10)

            mix = TrafficMix(rate=args.calls / args.period, talk=args.talk, patience=PATIENCE)
            source = itertools.islice(arrivals(configuration.trunk_map, mix, worlds["sz1"].rng), args.calls)
            traffic = Traffic(run.placed)
            now = traffic.now
            kill_at = args.period * args.kill_at if not args.bench else float("inf")
            pair.tasks.append(asyncio.create_task(watch_records(pair, database, now)))
            killed = False
            for n, arrival in enumerate(source):
                await asyncio.sleep(max(0.0, arrival.at - now()))
                if not killed and now() >= kill_at - 3 and not pair.called_back and args.callbacks:
                    pair.called_back = await answer_cases(http, web["B"], boss, list(people)[:args.callbacks])
                if not killed and now() >= kill_at:
                    killed = True
                    await kill(pair, ctis["A"], worlds["sz1"], agi["B"], database, now, kill_time)
                world = worlds[NODES[n % 2]]
                traffic.place(world, arrival.number, arrival.citizen)
            while any(world.citizens for world in worlds.values()) and now() < args.period + 600:
                await asyncio.sleep(0.5)
            await asyncio.wait(traffic.watchers, timeout=10)
            run.notes.append(f"traffic: last call placed at {run.placed[-1].at:.1f} s, "
                             f"last ended at {max(p.ended or 0 for p in run.placed):.1f} s")
            run.settled = await settle(ctis["B"], http, database, args.settle)
            await callbacks_done(pair, database, args.settle)
            stop_desk.set()
            for task in desking:
                task.cancel()
        code = await ctis["B"].stop()
        logged = ", ".join(f"{n} {level}" for level, n in sorted(ctis["B"].log_counts().items())) or "nothing"
        run.notes.append(f"cti B stopped with SIGTERM: exit status {code}; its log: {logged} at WARNING or above")
        return pair
    finally:
        for cti in ctis.values():
            await cti.stop(5)
        for world in worlds.values():
            await world.close()
        for task in pair.tasks:
            task.cancel()
        pair.tally = await tally(database, run)
        await count_cases(pair, database)
        await database.close()
        await drop_pg_database(args.pg, pg_name)
        run.took = time.monotonic() - started


async def answer_cases(http: aiohttp.ClientSession, port: int, token: str, callers: list[str]) -> list[int]:
    """A case for each of ``callers`` (citizens who called), answered at once (直接答复) through the API: each is
    called back by the lease holder's next sweep."""
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}"
    answered = []
    for caller in callers:
        async with http.post(f"{base}/api/cases", headers=headers, json={
                "caller_number": caller, "category": "consultation", "content": "问公积金提取"}) as response:
            if response.status not in (200, 201):
                raise RuntimeError(f"POST /api/cases: {response.status} {await response.text()}")
            case = await response.json()
        async with http.post(f"{base}/api/cases/{case['id']}/actions/answer", json={"reply": "已答复提取条件"},
                             headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"answer: {response.status} {await response.text()}")
        answered.append(int(case["id"]))
    return answered


async def kill(pair: Pair, a: Cti, sz1: World, agi_b: int, database: Database, now: Any,
               kill_time: list[float]) -> None:
    """SIGKILL A; sz1's FastAGI to B (the health check); watch the lease move, in the background."""
    a.kill()
    kill_time.append(time.monotonic())
    pair.killed_at = now()
    sz1.dialplan.agi_url = f"agi://127.0.0.1:{agi_b}"

    async def watch() -> None:
        leases = LeaseStore(database.engine)
        first = await leases.holder(LEASE)
        while time.monotonic() - kill_time[0] < 120:
            held = await leases.holder(LEASE)
            if held is not None and first is not None and held[0] != first[0]:
                pair.lease_taken = time.monotonic() - kill_time[0]
                return
            await asyncio.sleep(0.1)

    pair.tasks.append(asyncio.create_task(watch()))
    pair.run.notes.append("A killed; sz1's FastAGI now B's")


async def watch_records(pair: Pair, database: Database, now: Any) -> None:
    """Note when each call's record is first readable, polling the table every 0.2 s by its growing id."""
    last = 0
    while True:
        try:
            async with database.engine.connect() as connection:
                rows = (await connection.execute(select(CallRow.id, CallRow.linkedid).where(
                    CallRow.id > last).order_by(CallRow.id))).all()
        except Exception:  # noqa: BLE001 - the drill's own reader: try again
            rows = []
        at = now()
        for row_id, linkedid in rows:
            pair.seen.setdefault(str(linkedid), at)
            last = max(last, int(row_id))
        await asyncio.sleep(0.2)


async def callbacks_done(pair: Pair, database: Database, deadline: float) -> None:
    """Wait until every case answered for a callback has its survey's answer, or the deadline."""
    began = time.monotonic()
    while time.monotonic() - began < deadline and pair.called_back:
        async with database.engine.connect() as connection:
            answered = (await connection.execute(select(func.count(func.distinct(CaseEventRow.case_id))).where(
                CaseEventRow.case_id.in_(pair.called_back), CaseEventRow.action == "satisfaction"))).scalar_one()
        if answered == len(pair.called_back):
            return
        await asyncio.sleep(1)


async def count_cases(pair: Pair, database: Database) -> None:
    async with database.engine.connect() as connection:
        for case_id, action in (await connection.execute(select(CaseEventRow.case_id, CaseEventRow.action).where(
                CaseEventRow.action.in_(("callback", "satisfaction"))))).all():
            (pair.callbacks if action == "callback" else pair.surveyed)[int(case_id)] += 1
        for state, in (await connection.execute(select(CaseRow.state).where(CaseRow.id.in_(pair.called_back)))).all():
            pair.states[str(state)] += 1
        for case_id, in (await connection.execute(select(CaseCallRow.case_id))).all():
            pair.cases_per_call[int(case_id)] += 1


def report(args: argparse.Namespace, pair: Pair) -> int:
    run, t = pair.run, pair.tally
    assert t is not None
    twice = [case for case, n in pair.callbacks.items() if n > 1]
    print(machine_line())
    mode = "--bench" if args.bench else f"--kill-at {args.kill_at:g} --callbacks {args.callbacks}"
    print(f"command:             .venv/bin/python drills/pair.py {mode} --calls {args.calls} --period {args.period:g} "
          f"--talk {args.talk[0]:g}-{args.talk[1]:g} --agents {args.agents} --seed {args.seed}")
    print(f"cti:                 {run.cti_command}; database: {run.database}")
    print(f"traffic:             {args.calls} calls over about {args.period:g} s, alternately on nodes "
          f"{' and '.join(NODES)}, talk {args.talk[0]:g}–{args.talk[1]:g} s, "
          f"patience {PATIENCE[0]:g}–{PATIENCE[1]:g} s")
    for note in run.notes:
        print(f"                     {note}")
    if not args.bench:
        print(f"A killed at:         {pair.killed_at:.1f} s into the traffic")
        print(f"lease taken by B:    {_seconds(pair.lease_taken)} after the kill")
        for desk, kinds in zip(pair.desks, (("ringing", "agent"), ("wallboard_update", "alert")), strict=True):
            print(f"desk:                {desk.summary(kinds)}")
    print(f"settling:            {run.settled}; the drill took {run.took:.0f} s")
    print(f"calls placed:        {t.placed} ({sum(1 for p in run.placed if p.linkedid.startswith('sz1-'))} on sz1)")
    print(f"records:             {t.records} ({t.estimated} estimated)")
    print(f"missing:             {len(t.missing)}{': ' + ', '.join(t.missing[:10]) if t.missing else ''}")
    print(f"spurious:            {len(t.spurious)}")
    print(f"duplicates:          {t.duplicates}")
    print(f"cases:               {t.cases} ({t.cases_of_placed} placed calls have one; "
          f"{sum(1 for n in pair.cases_per_call.values() if n > 1)} cases with two calls; "
          f"{t.cases_without_call} without a call)")
    print(f"missed-call entries: {t.missed}")
    surveyed = [case for case in pair.called_back if pair.surveyed[case]]
    states = ", ".join(f"{n} {state}" for state, n in sorted(pair.states.items()))
    print(f"callbacks:           {len(pair.called_back)} cases answered for one: {sum(pair.callbacks.values())} "
          f"callback attempts, {len(twice)} cases called back twice; {len(surveyed)} surveys answered "
          f"({sum(1 for case in surveyed if pair.surveyed[case] > 1)} twice); now {states}")
    for line in throughput(pair):
        print(f"throughput:          {line}")
    if args.keep:
        print(f"work folder kept:    {run.folder}")
    return 1 if t.missing or twice or t.duplicates else 0


def throughput(pair: Pair) -> list[str]:
    """Calls ended and records read per second over the busy span (first call's end to last call's end), and
    the lag of each record behind its call's end."""
    ends = sorted(p.ended for p in pair.run.placed if p.ended is not None)
    if len(ends) < 2:
        return ["too few calls ended"]
    span = ends[-1] - ends[0]
    seen = sorted(pair.seen.values())
    lags = sorted(pair.seen[p.linkedid] - p.ended for p in pair.run.placed
                  if p.ended is not None and p.linkedid in pair.seen)
    written = sum(1 for at in seen if ends[0] <= at <= ends[-1])
    pick = (lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]) if lags else (lambda q: float("nan"))
    return [f"{len(ends) / span:.1f} calls ended a second on the two nodes ({len(ends)} over {span:.0f} s); "
            f"{written / span:.1f} records a second readable over the same span",
            f"record lag behind the call's end (0.2 s polling): p50 {pick(0.5):.2f} s, p99 {pick(0.99):.2f} s, "
            f"max {lags[-1] if lags else float('nan'):.2f} s over {len(lags)} records"]


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "never"


def _span(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        span = (float(low), float(high))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: LO-HI in seconds, e.g. 15-45") from None
    if not 0 <= span[0] <= span[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: LO-HI with 0 <= LO <= HI")
    return span


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="citizens' calls placed (default 200)")
    parser.add_argument("--period", type=float, default=100.0, help="seconds the calls arrive over (default 100)")
    parser.add_argument("--kill-at", type=float, default=0.4, help="fraction of the period A is killed at (0.4)")
    parser.add_argument("--agents", type=int, default=24, help="static members of each node's queue (default 24)")
    parser.add_argument("--callbacks", type=int, default=20, help="cases answered for a callback before the kill")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg", default=os.environ.get("CTI_DRILL_PG", "postgresql://postgres@127.0.0.1:5432"),
                        help="the PostgreSQL server (a database is created on it and dropped after)")
    parser.add_argument("--talk", type=_span, default=TALK, help="seconds talked once answered, LO-HI (15-45)")
    parser.add_argument("--bench", action="store_true", help="no kill, no callbacks: the pair's throughput")
    parser.add_argument("--settle", type=float, default=180.0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (settings, the ctis' logs)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(relativeCreated)8.0f ms  %(name)s: %(message)s")
    if args.keep:
        return report(args, asyncio.run(drill(args, Path(tempfile.mkdtemp(prefix="cti-pair-")))))
    with tempfile.TemporaryDirectory(prefix="cti-pair-") as name:
        return report(args, asyncio.run(drill(args, Path(name))))


if __name__ == "__main__":
    sys.exit(main())
