"""Screen-pop latency: from the AMI event leaving the simulated PBX to the WebSocket
frame at the agent's desk, with 1,000 live calls and 100 arrivals a second.

Two processes, as in service: this one is the PBX (cti.sim: AMI over loopback TCP,
the shipped dialplan, FastAGI to cti, a queue of robot agents who answer in a second)
with the citizens calling and the agents' desks (aiohttp WebSocket clients); the
other is ``cti serve`` on SQLite. A pop's latency runs from the moment the simulator
writes the AgentCalled event to the moment the ringing pop for that call and agent
reaches that agent's desk; both instants are read in this process. Measured after a
warm-up that fills the PBX to its steady state.

    .venv/bin/python bench/pops.py [--rate 100] [--talk 10] [--agents 1500] [--desks 300] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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
from cti.configuration import Configuration, load_configuration  # noqa: E402
from cti.settings import load_settings  # noqa: E402
from cti.sim.traffic import TrafficMix, arrivals  # noqa: E402
from cti.sim.world import World  # noqa: E402
from cti.store.database import Database  # noqa: E402

COUNTS = {"unmatched": 0, "called": 0}


def workspace(folder: Path, agents: int) -> Path:
    """The shipped configuration with ``agents`` agents in the 12345 queue."""
    for name in ("ivr_flows", "recordings"):
        shutil.copytree(ROOT / name, folder / name)
    for name in ("trunk_map.yaml", "cases.yaml"):
        shutil.copy(ROOT / name, folder / name)
    (folder / "agents").mkdir()
    shutil.copy(ROOT / "agents" / "queues.yaml", folder / "agents" / "queues.yaml")
    lines = ["agents:"] + [f'  - {{id: "{n}", name: 坐席{n}, device: PJSIP/agent{n}, queues: [q12345]}}'
                           for n in range(10001, 10001 + agents)]
    (folder / "agents" / "agents.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = folder / "cti.yaml"
    settings.write_text(f"database: {{url: 'sqlite:///{folder}/pops.db'}}\n"
                        f"recordings: {{directory: '{folder}/monitor'}}\n", encoding="utf-8")
    return settings


def robot_pbx(configuration: Configuration, agi_port: int, secret: str) -> World:
    """The simulated PBX with every agent of ``configuration`` a robot member of q12345 who answers after 1 s."""
    world = World(configuration, agi_url=f"agi://127.0.0.1:{agi_port}", secret=secret, seed=3)
    queue = world.pbx.queues["q12345"]
    for agent in configuration.directory.agents:
        world.pbx.endpoints[agent.device].ring_seconds = 1.0
        queue.add(agent.device, agent.name)
    return world


async def citizens(world: World, configuration: Configuration, rate: float, talk: float) -> None:
    """Citizens calling 12345 at ``rate`` a second, each talking about ``talk`` seconds, never giving up."""
    mix = TrafficMix(rate=rate, hotline_share=1.0, talk=(talk * 0.9, talk * 1.1), patience=(600.0, 600.0))
    await world.traffic(arrivals(configuration.trunk_map, mix, random.Random(4)))


async def wait_for_web(session: aiohttp.ClientSession, base: str) -> None:
    """Until cti's web answers (20 s at most)."""
    for _ in range(200):
        try:
            async with session.get(base + "/api/openapi.json") as reply:
                if reply.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)


async def tokens(url: str, agent_ids: list[str]) -> dict[str, str]:
    database = await Database.open(url)
    issued = {}
    for agent_id in agent_ids:
        await database.users.add(agent_id, agent_id, "agent", None, agent_id)
        issued[agent_id] = await database.users.issue_token(agent_id, "bench", None)
    await database.close()
    return issued


async def desk(base: str, token: str, agent_id: str, sent: dict[tuple[str, str], float],
               latencies: list[float], pings: list[float], measuring: asyncio.Event,
               session: aiohttp.ClientSession) -> None:
    """An agent's desk; while measuring it also pings cti once a second: the round trip of a
    WebSocket ping to the same process under the same load is the baseline."""
    async with session.ws_connect(base.replace("http", "ws") + "/api/ws", max_msg_size=0, autoping=False) as ws:
        await ws.send_json({"type": "auth", "token": token})
        device = f"PJSIP/agent{agent_id}"
        pinged: list[float] = []

        async def ping() -> None:
            await asyncio.sleep(random.random())
            while True:
                if measuring.is_set():
                    pinged.append(time.perf_counter())
                    await ws.ping()
                await asyncio.sleep(1.0)

        pinger = asyncio.create_task(ping())
        try:
            await read(ws, device, sent, latencies, pings, pinged, measuring)
        finally:
            pinger.cancel()


async def read(ws: aiohttp.ClientWebSocketResponse, device: str, sent: dict[tuple[str, str], float],
               latencies: list[float], pings: list[float], pinged: list[float], measuring: asyncio.Event) -> None:
    async for frame in ws:
        arrived = time.perf_counter()
        if frame.type == aiohttp.WSMsgType.PONG:
            if pinged and measuring.is_set():
                pings.append(arrived - pinged.pop(0))
            continue
        if frame.type == aiohttp.WSMsgType.PING:  # cti's heartbeat: answered by hand, as autoping is off
            await ws.pong(frame.data)
            continue
        if frame.type != aiohttp.WSMsgType.TEXT:
            continue
        message = json.loads(frame.data)
        if message["type"] == "ringing" and measuring.is_set():
            emitted = sent.pop((message["linkedid"], device), None)
            if emitted is not None:
                latencies.append(arrived - emitted)
            else:
                COUNTS["unmatched"] += 1


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--talk", type=float, default=10.0, help="seconds a citizen talks once answered")
    parser.add_argument("--agents", type=int, default=1500)
    parser.add_argument("--desks", type=int, default=300, help="agents with a desk open (the pops measured)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true", help="keep the workspace (settings, database, log)")
    parser.add_argument("--profile", help="run cti serve under cProfile, writing its statistics here")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cti-pops-"))
    settings_path = workspace(folder, args.agents)
    settings = load_settings(settings_path, environ={})
    configuration = load_configuration(settings)
    agent_ids = [a.id for a in configuration.directory.agents]
    desk_ids = random.Random(2).sample(agent_ids, min(args.desks, len(agent_ids)))
    issued = await tokens(settings.database.url, desk_ids)

    agi_port, web_port = free_port(), free_port()
    secret = secrets.token_hex(8)  # the simulated PBX's AMI password, for this run only
    world = robot_pbx(configuration, agi_port, secret)
    sent: dict[tuple[str, str], float] = {}
    desk_set = set(desk_ids)
    measuring = asyncio.Event()

    def stamp(name: str, privilege: str, fields: list[tuple[str, str]]) -> None:
        if name == "AgentCalled":
            values = dict(fields)
            sent[(values["Linkedid"], values["Interface"])] = time.perf_counter()
            if measuring.is_set() and values["Interface"][11:] in desk_set:
                COUNTS["called"] += 1

    world.pbx.sinks.append(stamp)  # after the AMI server's own sink: the event is on its way
    ami_port = await world.start()
    env = {**os.environ, "CTI_SETTINGS": str(settings_path), "CTI_AMI_PORT": str(ami_port),
           "CTI_AMI_SECRET": secret, "CTI_AGI_PORT": str(agi_port), "CTI_WEB_PORT": str(web_port)}
    log = open(folder / "serve.log", "w")  # noqa: SIM115 - closed below
    profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    server = subprocess.Popen([sys.executable, *profile, "-m", "cti.cli", "--log-level", "warning", "serve"],
                              cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=log)
    latencies: list[float] = []
    pings: list[float] = []
    base = f"http://127.0.0.1:{web_port}"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:  # one socket a desk
            await wait_for_web(session, base)
            desks = [asyncio.create_task(desk(base, issued[a], a, sent, latencies, pings, measuring, session))
                     for a in desk_ids]
            await asyncio.sleep(2)
            traffic = asyncio.create_task(citizens(world, configuration, args.rate, args.talk))
            await asyncio.sleep(args.warmup)
            live_at_start = len(world.citizens)
            measuring.set()
            await asyncio.sleep(args.seconds)
            measuring.clear()
            live_at_end = len(world.citizens)
            traffic.cancel()
            for task in desks:
                task.cancel()
    finally:
        server.terminate()
        server.wait(20)
        log.close()
        await world.close()
    print(f"machine: {describe()}")
    print(f"{args.rate:.0f} arrivals/s, {args.talk:.0f} s talk, {args.agents} robot agents (ring 1 s), "
          f"{len(desk_ids)} desks open; live calls {live_at_start} → {live_at_end} during the "
          f"{args.seconds:.0f} s measured")
    if COUNTS["unmatched"]:
        print(f"{COUNTS['unmatched']} pops without their AMI event (should not happen)")
    for name, values in (("pops", latencies), ("ping round trips", pings)):
        if values:
            print(f"{len(values):>6,} {name:17} p50 {percentile(values, 50) * 1000:6.2f} ms   "
                  f"p99 {percentile(values, 99) * 1000:6.2f} ms   max {max(values) * 1000:7.2f} ms   "
                  f"mean {statistics.fmean(values) * 1000:5.2f} ms")
    if latencies and pings:
        print(f"pop p99 / ping round-trip p99: {percentile(latencies, 99) / percentile(pings, 99):.2f}; "
              f"AgentCalled events for the open desks: {COUNTS['called']:,}")
    problems = (folder / "serve.log").read_text()
    if problems:
        print(f"cti serve said (last lines):\n{problems[-1500:]}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"kept {folder}")


if __name__ == "__main__":
    asyncio.run(main())
