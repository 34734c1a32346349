"""A simulated Asterisk with the world around it, built from cti's own configuration.

The PBX runs the shipped dialplan (asterisk-conf/extensions.conf: ask cti over
FastAGI, fall back to the 12345 queue), has the queues of agents/queues.yaml
(strategy and timeouts of asterisk-conf/queues.conf), and phones for every
agent, remote seat, utility line and emergency line the configuration names;
the carrier trunk answers callbacks as the citizens would. It speaks AMI on TCP
to cti exactly as Asterisk does; citizens call in from :mod:`cti.sim.traffic`.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from zoneinfo import ZoneInfo

from cti.configuration import Configuration
from cti.sim.ami import AmiServer, AmiUser
from cti.sim.dialplans import SHANGHAI, ShippedDialplan
from cti.sim.pbx import Channel, Pbx
from cti.sim.phones import Citizen, Phone
from cti.sim.ringing import Queue
from cti.sim.snapshot import RINGING
from cti.sim.traffic import Arrival

CARRIER = "PJSIP/carrier"


class World:
    def __init__(self, configuration: Configuration, *, agi_url: str, secret: str, prompts: Path | None = None,
                 recordings: str = "/var/spool/asterisk/monitor/cti", zone: ZoneInfo = SHANGHAI,
                 scale: float = 1.0, seed: int | None = None,
                 attended: Callable[[str], bool] | None = None, systemname: str = "") -> None:
        self.rng = random.Random(seed)
        self.citizens: dict[str, Citizen] = {}  # on the line now, by their channel
        self.people: dict[str, Citizen] = {}  # everyone who called, by number: they answer callbacks
        self.dialplan = ShippedDialplan(agi_url=agi_url, hotline_queue=configuration.trunk_map.hotline.queue,
                                        prompts=prompts, citizens=self.citizens, callees=self.people,
                                        recordings=recordings, zone=zone)
        self.pbx = Pbx(self.dialplan, scale=scale, systemname=systemname)
        for spec in configuration.queues:  # asterisk-conf/queues.conf
            self.pbx.queues[spec.name] = Queue(self.pbx, spec.name, strategy="rrmemory", timeout=15, retry=1,
                                               wrapuptime=5)
        self._phones(configuration, attended)
        self.ami = AmiServer(self.pbx, {"cti": AmiUser(secret)})
        self.calls_started = 0
        self.answered = 0
        self.abandoned = 0

    def _phones(self, configuration: Configuration, attended: Callable[[str], bool] | None) -> None:
        directory, trunk_map = configuration.directory, configuration.trunk_map
        for agent in directory.agents:  # the robot agents answer in 3 to 8 s, unless a person is at the desk
            phone = Phone(agent.device, caller_number=agent.id, caller_name=f"Seat {agent.id}",  # pjsip.conf
                          ring_seconds=self.rng.uniform(3, 8))
            if attended is not None:
                phone.attended = functools.partial(attended, agent.id)
            self.pbx.endpoints[agent.device] = phone
        for supervisor in directory.supervisors:  # rung to listen, whisper or barge ([cti-spy])
            self.pbx.endpoints[supervisor.device] = Phone(supervisor.device, caller_number=supervisor.id,
                                                          caller_name=f"Supervisor {supervisor.id}", ring_seconds=2)
        seats = [seat.device for seat in directory.seats]
        seats += [dial for unit in trunk_map.units for dial in unit.seats]
        for dial in seats:  # departments and utilities answer more slowly than 12345
            self.pbx.endpoints.setdefault(dial, Phone(dial, ring_seconds=self.rng.uniform(8, 20),
                                                      answers=self.rng.random() < 0.8))
        for unit in trunk_map.units:
            if unit.dial:
                self.pbx.endpoints[unit.dial] = Phone(unit.dial, context="from-carrier", ring_seconds=4)
        self.pbx.endpoints[CARRIER] = Phone(CARRIER, context="from-carrier", ring_seconds=6)  # citizens called back

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen for AMI; returns the port."""
        return await self.ami.start(host, port)

    async def hang_up_everyone(self) -> None:
        for channel in list(self.pbx.channels.values()):
            await self.pbx.hangup(channel, 16, request=True)

    async def close(self) -> None:
        await self.hang_up_everyone()
        await self.ami.close()

    # -- citizens -------------------------------------------------------------------

    def call(self, number: str, citizen: Citizen) -> Channel:
        """A citizen dials ``number``: the carrier delivers the call; they talk, or give up."""
        channel = self.pbx.inbound(number, (citizen.number, citizen.name))
        self.citizens[channel.name] = citizen
        self.people[citizen.number] = citizen
        if len(self.people) > 20_000:  # a load run places millions of calls: remember the recent callers
            del self.people[next(iter(self.people))]
        self.calls_started += 1
        self.pbx.spawn(self._behave(channel, citizen))
        return channel

    async def _behave(self, channel: Channel, citizen: Citizen) -> None:
        try:
            if await self._within(citizen.patience, channel.joined.wait(), channel):
                self.answered += 1
                await self._within(citizen.talk_seconds, channel.gone.wait(), channel)
            elif channel.alive:
                self.abandoned += 1
            await self.pbx.hangup(channel, 16, request=True)
        finally:
            self.citizens.pop(channel.name, None)

    async def _within(self, seconds: float, waiting: Awaitable[object], channel: Channel) -> bool:
        """Wait up to ``seconds`` for ``waiting``; False on time-out or when the channel is gone."""
        done = asyncio.ensure_future(waiting)
        gone = asyncio.ensure_future(channel.gone.wait())
        try:
            await asyncio.wait([done, gone], timeout=seconds * self.pbx.scale, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
            gone.cancel()
        return done.done() and not done.cancelled() and channel.alive

    async def traffic(self, arrivals: Iterable[Arrival], *, limit: int | None = None,
                      concurrent: int | None = None) -> None:
        """Place the arrivals at their times (scaled); at most ``limit`` calls, at most
        ``concurrent`` citizens on the line at once (the rest wait, as a busy trunk would)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for placed, arrival in enumerate(arrivals):
            if limit is not None and placed >= limit:
                return
            await asyncio.sleep(max(0.0, start + arrival.at * self.pbx.scale - loop.time()))
            while concurrent is not None and len(self.citizens) >= concurrent:
                await asyncio.sleep(0.01)
            self.call(arrival.number, arrival.citizen)

    # -- the desk's softphone (demo) -----------------------------------------------------

    def answer(self, device: str, linkedid: str) -> bool:
        """A person at the desk picks up their ringing phone for call ``linkedid``."""
        phone = self.pbx.endpoints.get(device)
        for channel in list(self.pbx.channels.values()):
            if channel.device == device and channel.linkedid == linkedid and channel.state == RINGING:
                return isinstance(phone, Phone) and phone.answer_now(channel.name)
        return False
