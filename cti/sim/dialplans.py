"""The dialplans the simulated PBX runs.

:class:`ShippedDialplan` is ``asterisk-conf/extensions.conf`` (ask cti over
FastAGI, fall back to the 12345 queue; parallel ringing through the queue's
Local channel; emergency and seat transfer targets; three-way rooms;
callbacks). :class:`LabDialplan` is the configuration the transcripts were
captured with (``ami-traces/asterisk-conf-used-sip``), so that tests can
compare the simulator's events with a real Asterisk's.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from cti.sim.agi import agi
from cti.sim.control import record
from cti.sim.pbx import Channel, Pbx, Program
from cti.sim.phones import Citizen
from cti.sim.ringing import Queue, dial

EMERGENCY = ("110", "119", "120", "122", "12122")
SHANGHAI = ZoneInfo("Asia/Shanghai")  # [globals] CTI_TIMEZONE


async def confbridge(pbx: Pbx, channel: Channel, room: str, *, late_joiner_wait: float = 0.0) -> None:
    """ConfBridge(room): the first caller creates the room; its announcer joins unseen.

    ``late_joiner_wait``: a caller arriving while the room is still starting hears
    the "only person" prompt before entering (the lab's default profile, P6); the
    shipped quiet profile has none."""
    channel.app, channel.app_data = "ConfBridge", room
    bridge = pbx.rooms.get(room)
    if bridge is None:
        bridge = pbx.rooms[room] = pbx.new_bridge(conference=room)
        await asyncio.sleep(0)  # the announcer channel joins (its own thread)
        pbx.start_conference(bridge)
    elif not bridge.hidden and late_joiner_wait:
        await pbx.wait_while_alive(channel, seconds=late_joiner_wait)
    pbx.enter_bridge(channel, bridge)
    try:
        await pbx.stay_bridged(channel)
    finally:
        if not bridge.channels and pbx.rooms.get(room) is bridge:
            del pbx.rooms[room]


class ShippedDialplan:
    def __init__(self, *, agi_url: str, hotline_queue: str = "q12345", prompts: Path | None = None,
                 citizens: dict[str, Citizen] | None = None, callees: dict[str, Citizen] | None = None,
                 recordings: str = "/var/spool/asterisk/monitor/cti", zone: ZoneInfo = SHANGHAI,
                 as_citizen: bool = True) -> None:
        self.agi_url = agi_url.rstrip("/")
        self.hotline_queue = hotline_queue
        self.recordings = recordings.rstrip("/")  # [globals] CTI_RECORDINGS, CTI_TIMEZONE
        self.zone = zone
        # [cti-as-citizen]; False: the configuration of trace X2, whose consultation call showed the agent
        self.as_citizen = as_citizen
        self.prompts = prompts
        self.citizens = citizens if citizens is not None else {}  # by the channel of their call in
        self.callees = callees if callees is not None else {}  # by number, for the calls out to them

    def __call__(self, context: str, exten: str) -> Program | None:
        if context == "from-carrier" and exten.isdigit():
            return self.from_carrier
        if context == "cti-next":
            return {"queue": self.next_queue, "dial": self.next_dial, "hangup": self.next_hangup}.get(exten)
        if context == "cti-queue" and exten.startswith("q"):
            return self.cti_queue
        if context == "emergency" and exten in EMERGENCY:
            return self.emergency
        if context == "cti-seat" and exten == "0":
            return self.seat
        if context == "conference" and exten.startswith("cti-"):
            return self.conference
        if context == "callback" and exten.isdigit():
            return self.callback
        if context == "cti-survey" and exten.isdigit():
            return self.survey
        return None

    def record(self, pbx: Pbx, leg: Channel) -> None:
        """[cti-record], the gosub of Queue and Dial's U() on the leg that answered: MixMonitor(CTI_RECORDING,b)
        unless it is a Local half (the agent's leg behind it records)."""
        path = leg.variables.get("CTI_RECORDING", "")
        if path and not leg.name.startswith("Local/"):
            record(pbx, leg, path)

    def present_citizen(self, pbx: Pbx, channel: Channel) -> None:
        """[cti-as-citizen]: the channel about to dial the line shows the citizen's number and name."""
        number = channel.variables.get("CTI_CITIZEN_NUM", "")
        if self.as_citizen and number and (channel.caller_number, channel.caller_name) != (
                number, channel.variables.get("CTI_CITIZEN_NAME", "")):
            pbx.set_caller(channel, number, channel.variables.get("CTI_CITIZEN_NAME", ""))

    def prompt_seconds(self, name: str) -> float:
        return _wav_seconds(self.prompts / f"{name}.wav") if self.prompts else 3.0

    async def _agi(self, pbx: Pbx, channel: Channel, script: str, *args: str) -> str:
        status = await agi(pbx, channel, f"{self.agi_url}/{script}", list(args), prompt_seconds=self.prompt_seconds,
                           citizen=self.citizens.get(channel.name) or self.callees.get(channel.exten))
        pbx.check(channel)
        return status

    async def from_carrier(self, pbx: Pbx, channel: Channel) -> None:
        channel.language = "zh"
        channel.variables["CTI_DIALLED"] = channel.exten
        pbx.set_variable(channel, "__CTI_CITIZEN_NUM", channel.caller_number)
        pbx.set_variable(channel, "__CTI_CITIZEN_NAME", channel.caller_name)
        day = datetime.fromtimestamp(pbx.now(), self.zone)
        pbx.set_variable(channel, "__CTI_RECORDING", f"{self.recordings}/{day:%Y/%m/%d}/{channel.linkedid}.wav")
        channel.variables["CTI_NEXT"] = ""
        status = await self._agi(pbx, channel, "route", channel.exten, channel.linkedid,
                                 channel.variables["CTI_RECORDING"])
        step = channel.variables.get("CTI_NEXT") if status == "SUCCESS" else ""
        await self._goto(pbx, channel, "cti-next", step or "queue")

    async def _goto(self, pbx: Pbx, channel: Channel, context: str, exten: str) -> None:
        channel.context, channel.exten, channel.priority = context, exten, 1
        program = self(context, exten)
        if program is not None:
            await program(pbx, channel)

    async def next_queue(self, pbx: Pbx, channel: Channel) -> None:
        name = channel.variables.get("CTI_QUEUE") or self.hotline_queue
        await pbx.queues[name].run(channel, timeout=900, gosub=lambda leg: self.record(pbx, leg))

    async def next_dial(self, pbx: Pbx, channel: Channel) -> None:
        targets = [t.replace("/n", "") for t in channel.variables.get("CTI_DIAL", "").split("&") if t]
        seconds = float(channel.variables.get("CTI_DIAL_TIMEOUT") or 60)
        answered = await dial(pbx, channel, targets, seconds, gosub=lambda leg: self.record(pbx, leg))
        if answered is None and channel.variables.get("CTI_FALLBACK") == "queue":
            await self._goto(pbx, channel, "cti-next", "queue")

    async def next_hangup(self, pbx: Pbx, channel: Channel) -> None:
        await pbx.hangup(channel, 16, soft=True)

    async def cti_queue(self, pbx: Pbx, channel: Channel) -> None:
        await pbx.queues[channel.exten].run(channel, timeout=900, gosub=lambda leg: self.record(pbx, leg))

    async def emergency(self, pbx: Pbx, channel: Channel) -> None:
        self.present_citizen(pbx, channel)
        target = channel.variables.get("CTI_TRANSFER_DIAL") or f"PJSIP/{channel.exten}@carrier"
        await dial(pbx, channel, [target], 60)

    async def seat(self, pbx: Pbx, channel: Channel) -> None:
        target = channel.variables.get("CTI_TRANSFER_DIAL", "")
        if target:
            self.present_citizen(pbx, channel)
            await dial(pbx, channel, [target], 60)

    async def conference(self, pbx: Pbx, channel: Channel) -> None:
        await pbx.answer(channel)
        await confbridge(pbx, channel, channel.exten)

    async def callback(self, pbx: Pbx, channel: Channel) -> None:
        await dial(pbx, channel, [f"PJSIP/{channel.exten}@carrier"], 45)

    async def survey(self, pbx: Pbx, channel: Channel) -> None:
        channel.language = "zh"
        await self._agi(pbx, channel, "survey", channel.exten, channel.linkedid,
                        channel.variables.get("CTI_CASE", ""))


class LabDialplan:
    """The part of the lab's extensions.conf the SIP transcripts (P5, P6, R1, R2) went through."""

    def __init__(self, queue: str = "q12345sip") -> None:
        self.queue = queue

    def __call__(self, context: str, exten: str) -> Program | None:
        if context == "from-carrier" and exten == "12369":
            return self.remote_seat_line
        if context == "emergency-sip" and exten in EMERGENCY:
            return self.emergency
        if context == "conference" and exten == "800":
            return self.conference
        return None

    async def remote_seat_line(self, pbx: Pbx, channel: Channel) -> None:
        await pbx.answer(channel)
        await pbx.playback(channel, 0.5, "beep")
        await pbx.queues[self.queue].run(channel, timeout=120)

    async def emergency(self, pbx: Pbx, channel: Channel) -> None:
        await dial(pbx, channel, [f"PJSIP/emergency{channel.exten}"], 30, features=False)  # Dial(…,30,o)

    async def conference(self, pbx: Pbx, channel: Channel) -> None:
        await pbx.answer(channel)
        await confbridge(pbx, channel, "800", late_joiner_wait=3.2)


@cache
def _wav_seconds(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as audio:
            return audio.getnframes() / audio.getframerate()
    except (OSError, wave.Error):
        return 3.0


ProgramFactory = Callable[[str, str], Callable[[Pbx, Channel], Awaitable[None]] | None]
__all__ = ["LabDialplan", "ProgramFactory", "Queue", "ShippedDialplan", "confbridge"]
