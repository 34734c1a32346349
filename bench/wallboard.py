"""Wallboard liveness: from an agent answering on the simulated PBX to the wallboard showing that agent on the
call, at 100 arrivals a second, with the board open on a supervisor's socket.

Set up as bench/pops.py: this process is the PBX (cti.sim, the shipped dialplan, robot agents who answer in a
second) and the citizens; the other is ``cti serve`` on SQLite. A supervisor's socket receives the board
(``wallboard``, then ``wallboard_update``, coalesced to one every ``wallboard.interval``, 0.2 s). A latency
runs from the moment the simulator writes the AgentConnect event of an answer to the moment the first update
showing that call on its agent reaches the socket; both instants are read in this process. An update holds
only the agents that changed, so that first update is the first holding the agent with the call. *Keeps up*
is the share of the answers during the measured window that the board showed, and the updates' rate; the
part of the latency after cti built the update (its ``now`` to the socket's read, one clock) tells cti's
delay from the delivery's, and the updates' numbers are checked to run on (no gap).

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


async def board(base: str, token: str, answered: dict[str, float], latencies: list[float], sizes: list[int],
                transit: list[float], seen: dict[str, int], measuring: asyncio.Event,
                session: aiohttp.ClientSession) -> None:
    """The supervisor's socket. An update holds only the agents that changed (cti.web.wallboard), so the first
    one holding an agent with the call is the first showing it; the numbers (seq) are checked to run on."""
    async with session.ws_connect(base.replace("http", "ws") + "/api/ws", max_msg_size=0) as ws:
        await ws.send_json({"type": "auth", "token": token})
        seq = None
        async for frame in ws:
            arrived, wall = time.perf_counter(), time.time()
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            if message["type"] == "wallboard":
                seq = message["seq"]
                continue
            if message["type"] != "wallboard_update":
                continue
            seen["gaps"] += seq is not None and message["seq"] != seq + 1
            seq = message["seq"]
            if not measuring.is_set():
                continue
            sizes.append(len(frame.data))
            transit.append(wall - message["now"])  # from the update built in cti to here (the same clock)
            for agent in message["agents"]:
                call = agent.get("call")
                emitted = answered.pop(call["linkedid"], None) if call else None
                if emitted is not None:
                    latencies.append(arrived - emitted)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--talk", type=float, default=10.0, help="seconds a citizen talks once answered")
    parser.add_argument("--agents", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--profile", help="run cti serve under cProfile, writing its statistics here")
    args = parser.parse_args()
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
            answered[dict(fields)["Linkedid"]] = time.perf_counter()
            counted["answers"] += 1

    world.pbx.sinks.append(stamp)  # after the AMI server's own sink: the event is on its way
    ami_port = await world.start()
    env = {**os.environ, "CTI_SETTINGS": str(settings_path), "CTI_AMI_PORT": str(ami_port),
           "CTI_AMI_SECRET": secret, "CTI_AGI_PORT": str(agi_port), "CTI_WEB_PORT": str(web_port)}
    latencies: list[float] = []
    sizes: list[int] = []
    transit: list[float] = []
    seen = {"gaps": 0}
    base = f"http://127.0.0.1:{web_port}"
    with (folder / "serve.log").open("w") as log:
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
        server = subprocess.Popen([sys.executable, *profile, "-m", "cti.cli", "--log-level", "warning", "serve"],
                                  cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            async with aiohttp.ClientSession() as session:
                await wait_for_web(session, base)
                watching = asyncio.create_task(board(base, token, answered, latencies, sizes, transit, seen, measuring,
                                                      session))
                traffic = asyncio.create_task(citizens(world, configuration, args.rate, args.talk))
                await asyncio.sleep(args.warmup)
                live_at_start = len(world.citizens)
                measuring.set()
                await asyncio.sleep(args.seconds)
                measuring.clear()
                live_at_end = len(world.citizens)
                await asyncio.sleep(1.0)  # the last answers' updates
                traffic.cancel()
                watching.cancel()
        finally:
            server.terminate()
            server.wait(20)
            await world.close()
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
              f"ms; sequence gaps {seen['gaps']}")
    else:
        print(f"the board showed none of the {counted['answers']:,} answers")
    problems = (folder / "serve.log").read_text()
    if problems:
        print(f"cti serve said (last lines):\n{problems[-1500:]}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
