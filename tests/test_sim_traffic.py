"""Citizen traffic: arrivals over the trunk map, and the simulator as a bounded load generator."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from itertools import islice

from cti.configuration import load_configuration
from cti.settings import Settings
from cti.sim.traffic import TrafficMix, arrivals, dialled_numbers
from cti.sim.world import World
from tests.conftest import REPO_PATHS

CONFIGURATION = load_configuration(Settings(paths=REPO_PATHS))


def test_arrivals_follow_the_mix_and_are_repeatable() -> None:
    mix = TrafficMix(rate=2.0, hotline_share=0.6, repeat_share=0.3)
    calls = list(islice(arrivals(CONFIGURATION.trunk_map, mix, random.Random(5)), 5000))
    assert calls == list(islice(arrivals(CONFIGURATION.trunk_map, mix, random.Random(5)), 5000))
    assert calls[0].at == 0.0 and all(a.at <= b.at for a, b in zip(calls, calls[1:], strict=False))
    assert 2300 < calls[-1].at < 2700  # 5000 arrivals at 2 a second
    dialled = Counter(a.number for a in calls)
    assert 0.57 < dialled["12345"] / len(calls) < 0.63
    legacy = set(dialled_numbers(CONFIGURATION.trunk_map))
    assert set(dialled) - {"12345"} <= legacy and not {"110", "119", "120"} & set(dialled)
    assert len(set(dialled) & legacy) > 40  # the mix spreads over Yuncheng's numbers
    callers = Counter(a.citizen.number for a in calls)
    assert max(callers.values()) > 1  # people call again: the desk has history to show
    assert all(mix.talk[0] <= a.citizen.talk_seconds <= mix.talk[1] for a in calls)


async def test_as_a_load_generator_the_world_keeps_to_its_bounds() -> None:
    """No cti behind it (FastAGI refused: the dialplan's fallback queues every call), a
    limit on the calls placed and on the citizens on the line at once."""
    world = World(CONFIGURATION, agi_url="agi://127.0.0.1:9", secret="load", scale=0.001, seed=1)
    await world.start()
    most = 0

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, len(world.citizens))
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    mix = TrafficMix(rate=50.0, talk=(5.0, 10.0), patience=(1.0, 2.0))
    await asyncio.wait_for(world.traffic(arrivals(CONFIGURATION.trunk_map, mix, random.Random(1)), limit=300,
                                         concurrent=40), 30)
    while world.citizens:
        await asyncio.sleep(0.01)
    watcher.cancel()
    await world.close()
    assert world.calls_started == 300
    assert 0 < most <= 40
    assert world.abandoned > 0  # two simulated agents at most, nobody logged in: patience runs out


async def test_hours_of_the_demo_leave_no_channel_behind_and_every_agent_idle() -> None:
    """The demo's world, routed by cti's own FastAGI (remote seats and utilities ring the queue through
    Local/q12345@cti-queue and their seat at once), for three simulated hours at a lively rate: when the
    last citizen has gone no channel is left and every agent is free again. (A remote-seat call answered
    by an agent left Local/q12345@cti-queue;2 and the agent's leg up for good: the queue stopped answering.)"""
    from datetime import UTC, datetime

    from cti.agi.server import FastAgiServer
    from cti.routing.router import decide

    agi = FastAgiServer(lambda number, at: decide(CONFIGURATION.trunk_map, number, at), lambda: CONFIGURATION.flows,
                        now=lambda: datetime.now(UTC))
    port = await agi.start("127.0.0.1", 0)
    world = World(CONFIGURATION, agi_url=f"agi://127.0.0.1:{port}", secret="hours", scale=0.002, seed=3)
    await world.start()
    queue = world.pbx.queues["q12345"]
    for agent in CONFIGURATION.directory.agents:  # the robots, logged in as the demo's desk does
        queue.add(agent.device, agent.name)
    mix = TrafficMix(rate=0.02, talk=(10.0, 40.0), patience=(30.0, 120.0))  # 1.2 calls a minute, as the demo
    three_hours = int(3 * 3600 * mix.rate)
    try:
        await asyncio.wait_for(world.traffic(arrivals(CONFIGURATION.trunk_map, mix, random.Random(3)),
                                             limit=three_hours), 60)
        for _ in range(3000):  # the last citizens finish
            if not world.pbx.channels:
                break
            await asyncio.sleep(0.01)
        left = sorted(world.pbx.channels)
        members = {m.interface: (m.in_call, m.status) for m in queue.members}
    finally:
        await world.close()
        await agi.close()
    assert left == []
    assert world.calls_started == three_hours and world.answered > three_hours // 2, (world.answered,
                                                                                         world.abandoned)
    assert all(not in_call and status == 1 for in_call, status in members.values()), members
