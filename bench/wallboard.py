"""Wallboard liveness: from an agent answering on the simulated PBX to the wallboard showing that agent on the
call, at 100 arrivals a second, with the board open on a supervisor's socket.

Set up as bench/pops.py: this process is the PBX (cti.sim, the shipped dialplan, robot agents who answer in a
second) and the citizens; ``cti serve`` on SQLite is another; the supervisor's socket a third (``--reader``),
so that the simulator's busy event loop does not delay the reading it measures. The socket receives the board
(``wallboard``, then ``wallboard_update``, coalesced to one every ``wallboard.interval``, 0.2 s). A latency
runs from the moment the simulator writes the AgentConnect event of an answer to the moment the first update
showing that call on its agent reaches the socket, both read on the machine's monotonic clock (one for every
process). An update holds only the agents that changed, so that first update is the first holding the agent
with the call. *Keeps up* is the share of the answers during the measured window that the board showed, and
the updates' rate; the part of the latency after cti built the update (its ``now`` to the socket's read, the
wall clock) tells cti's delay from the delivery's, and the updates' numbers are checked to run on (no gap).

    .venv/bin/python bench/wallboard.py [--rate 100] [--talk 10] [--agents 1500] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agi import free_port, percentile  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.pops import citizens, robot_pbx, wait_for_web, workspace  # noqa: E402
from cti.configuration import load_configuration  # noqa: E402
from cti.settings import load_settings  # noqa: E402
from cti.store.database import Database  # noqa: E402


async def supervisor_token(url: str) -> str:
    database = await Database.open(url)
    await database.users.add("boss", "班长", "supervisor")
    token = await database.users.issue_token("boss", "bench", None)
    await database.close()
    return token


async def board(base: str, token: str, out: Path) -> None:
    """The supervisor's socket (the ``--reader`` process): a line of JSON per update to ``out`` — when it
    arrived (monotonic), its size, built → received (wall clock), its number, the calls on its agents. An
    update holds only the agents that changed (cti.web.wallboard), so the first one holding an agent with the
    call is the first showing it."""
    async with aiohttp.ClientSession() as session, session.ws_connect(
            base.replace("http", "ws") + "/api/ws", max_msg_size=0) as ws:
        await ws.send_json({"type": "auth", "token": token})
        with out.open("w") as lines:
            async for frame in ws:
                arrived, wall = time.monotonic(), time.time()
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                message = json.loads(frame.data)
                if message["type"] not in ("wallboard", "wallboard_update"):
                    continue
                calls = [agent["call"]["linkedid"] for agent in message.get("agents", ()) if agent.get("call")]
                lines.write(json.dumps({"at": arrived, "size": len(frame.data), "transit": wall - message["now"],
                                        "seq": message["seq"], "snapshot": message["type"] == "wallboard",
                                        "calls": calls}) + "\n")
                lines.flush()


@dataclass
class BoardRead:
    """What the reader's lines say of the measured window."""

    latencies: list[float] = field(default_factory=list)  # answer → board, of the answers stamped in it
    sizes: list[int] = field(default_factory=list)  # of its updates
    transit: list[float] = field(default_factory=list)  # built → received, of its updates
    gaps: int = 0  # updates whose number does not follow the one before


def read_board(out: Path, answered: dict[str, float], window: tuple[float, float]) -> BoardRead:
    found = BoardRead()
    seq = None
    for line in out.read_text().splitlines():
        update = json.loads(line)
        if not update["snapshot"]:
            found.gaps += seq is not None and update["seq"] != seq + 1
        seq = update["seq"]
        if update["snapshot"] or not window[0] <= update["at"] <= window[1] + 1.0:
            continue
        if update["at"] <= window[1]:
            found.sizes.append(update["size"])
            found.transit.append(update["transit"])
        for linkedid in update["calls"]:
            emitted = answered.pop(linkedid, None)
            if emitted is not None:
                found.latencies.append(update["at"] - emitted)
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--talk", type=float, default=10.0, help="seconds a citizen talks once answered")
    parser.add_argument("--agents", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--profile", help="run cti serve under cProfile, writing its statistics here")
    parser.add_argument("--reader", nargs=3, metavar=("BASE", "TOKEN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:  # the supervisor's socket, in a process of its own
        await board(args.reader[0], args.reader[1], Path(args.reader[2]))
        return
    folder = Path(tempfile.mkdtemp(prefix="cti-wallboard-"))
    settings_path = workspace(folder, args.agents)
    settings = load_settings(settings_path, environ={})
    configuration = load_configuration(settings)
    token = await supervisor_token(settings.database.url)
    agi_port, web_port = free_port(), free_port()
    secret = secrets.token_hex(8)
    world = robot_pbx(configuration, agi_port, secret)
    answered: dict[str, float] = {}
    measuring = asyncio.Event()
    counted = {"answers": 0}

    def stamp(name: str, privilege: str, fields: list[tuple[str, str]]) -> None:
        if name == "AgentConnect" and measuring.is_set():
            answered[dict(fields)["Linkedid"]] = time.monotonic()
            counted["answers"] += 1

    world.pbx.sinks.append(stamp)  # after the AMI server's own sink: the event is on its way
    ami_port = await world.start()
    env = {**os.environ, "CTI_SETTINGS": str(settings_path), "CTI_AMI_PORT": str(ami_port),
           "CTI_AMI_SECRET": secret, "CTI_AGI_PORT": str(agi_port), "CTI_WEB_PORT": str(web_port)}
    base = f"http://127.0.0.1:{web_port}"
    updates = folder / "board.jsonl"
    with (folder / "serve.log").open("w") as log:
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
        server = subprocess.Popen([sys.executable, *profile, "-m", "cti.cli", "--log-level", "warning", "serve"],
                                  cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            async with aiohttp.ClientSession() as session:
                await wait_for_web(session, base)
            reader = subprocess.Popen([sys.executable, __file__, "--reader", base, token, str(updates)], cwd=ROOT)
            traffic = asyncio.create_task(citizens(world, configuration, args.rate, args.talk))
            await asyncio.sleep(args.warmup)
            live_at_start = len(world.citizens)
            window = (time.monotonic(), time.monotonic() + args.seconds)
            measuring.set()
            await asyncio.sleep(args.seconds)
            measuring.clear()
            live_at_end = len(world.citizens)
            await asyncio.sleep(1.0)  # the last answers' updates
            traffic.cancel()
            reader.terminate()
            reader.wait(20)
        finally:
            server.terminate()
            server.wait(20)
            await world.close()
    found = read_board(updates, answered, window)
    latencies, sizes, transit = found.latencies, found.sizes, found.transit
    print(f"machine: {describe()}")
    print(f"{args.rate:.0f} arrivals/s, {args.talk:.0f} s talk, {args.agents} robot agents (ring 1 s), one wallboard "
          f"open; live calls {live_at_start} → {live_at_end} during the {args.seconds:.0f} s measured")
    if latencies:
        print(f"answers shown on the board: {len(latencies):,} of {counted['answers']:,} "
              f"({len(latencies) / max(1, counted['answers']):.1%})")
        print(f"answer → board   p50 {percentile(latencies, 50) * 1000:6.1f} ms   p99 "
              f"{percentile(latencies, 99) * 1000:6.1f} ms   max {max(latencies) * 1000:7.1f} ms   mean "
              f"{statistics.fmean(latencies) * 1000:6.1f} ms")
        print(f"updates: {len(sizes) / args.seconds:.1f} a second, median {statistics.median(sizes) / 1024:.1f} KiB; "
              f"built → received p50 {percentile(transit, 50) * 1000:.1f} ms, p99 {percentile(transit, 99) * 1000:.1f} "
              f"ms; sequence gaps {found.gaps}")
    else:
        print(f"the board showed none of the {counted['answers']:,} answers")
    problems = (folder / "serve.log").read_text()
    if problems:
        print(f"cti serve said (last lines):\n{problems[-1500:]}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
