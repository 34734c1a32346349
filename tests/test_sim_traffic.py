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
