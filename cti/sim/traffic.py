"""Citizen traffic over the trunk map: who calls which number, when, and how they behave.

Pure: a seeded random source in, :class:`Arrival` values out. Arrivals are a
Poisson process; most calls are to 12345 itself, the rest spread over the
legacy numbers a citizen can still dial (retired, remote-seat, utility and
excluded lines; emergency lines never reach this PBX). Callers come back (a
pool of repeat callers), so the desk has earlier calls to show; some give up
before anyone answers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from cti.routing.model import TrunkMap
from cti.sim.phones import Citizen

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超"]


@dataclass(frozen=True, slots=True)
class TrafficMix:
    rate: float = 0.2  # arrivals per (simulated) second
    hotline_share: float = 0.6  # calls to 12345 itself; the rest to the legacy numbers
    repeat_share: float = 0.3  # callers who called before
    talk: tuple[float, float] = (20.0, 90.0)  # seconds once answered, uniform
    patience: tuple[float, float] = (20.0, 180.0)  # seconds before an unanswered caller gives up
    satisfied_share: float = 0.8  # survey answers: 1 satisfied, the rest 2 or 3


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # seconds after the traffic started
    number: str  # what the citizen dialled
    citizen: Citizen


def dialled_numbers(trunk_map: TrunkMap) -> list[str]:
    """The legacy numbers citizens still dial into the hotline's PBX."""
    return [number for number, line in trunk_map.numbers.items() if line.treatment != "emergency"]


def arrivals(trunk_map: TrunkMap, mix: TrafficMix, rng: random.Random) -> Iterator[Arrival]:
    legacy = dialled_numbers(trunk_map)
    regulars: list[tuple[str, str]] = []
    at = 0.0  # the first citizen calls as the traffic starts
    while True:
        number = trunk_map.hotline.number if not legacy or rng.random() < mix.hotline_share else rng.choice(legacy)
        if regulars and rng.random() < mix.repeat_share:
            caller = rng.choice(regulars)
        else:
            caller = (f"1{rng.choice('3589')}{rng.randrange(10**9):09d}", rng.choice(SURNAMES) + rng.choice(GIVEN))
            regulars.append(caller)
            del regulars[:-500]
        survey = "1" if rng.random() < mix.satisfied_share else rng.choice("23")
        yield Arrival(at, number, Citizen(caller[0], caller[1], talk_seconds=rng.uniform(*mix.talk),
                                          patience=rng.uniform(*mix.patience), digits=[survey]))
        at += rng.expovariate(mix.rate)
