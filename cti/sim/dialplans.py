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
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from cti.sim.agi import agi
from cti.sim.control import record
from cti.sim.pbx import Channel, Pbx, Program
from cti.sim.phones import Citizen
from cti.sim.ringing import Queue, dial
from cti.sim.snapshot import UP

EMERGENCY = ("110", "119", "120", "122", "12122")
SHANGHAI = ZoneInfo("Asia/Shanghai")  # [globals] CTI_TIMEZONE
CTI_FEATURES = "emergency110#emergency119#emergency120#emergency122#emergency12122"  # [globals], features.conf


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


SPY_OPTIONS = {"listen": "qESu", "whisper": "qESuw", "barge": "qESuB"}  # [cti-spy], one extension per mode


@dataclass(eq=False)
class Spy:
    """A ChanSpy session: who listens, to which channel, and who hears the spy (the simulator has no audio)."""

    spyer: Channel
    spyee: Channel
    options: str

    @property
    def mode(self) -> str:
        return "barge" if "B" in self.options else "whisper" if "w" in self.options else "listen"

    def heard_by(self) -> list[Channel]:
        """Whom the spy's voice reaches: nobody (listen), the channel spied on (w), or it and everyone bridged
        with it (B: app_chanspy.c attach_barge whispers into the spied-on channel's bridged peer too)."""
        if "B" in self.options:
            bridge = self.spyee.bridge
            return [self.spyee, *(c for c in (bridge.channels if bridge else []) if c is not self.spyee)]
        return [self.spyee] if "w" in self.options else []


async def chanspy(pbx: Pbx, channel: Channel, target: str, options: str) -> None:
    """ChanSpy(target,options) with u (the target is one whole channel name): ChanSpyStart (the spyer's and
    the spyee's snapshots, manager_channels.c), then spy until either side hangs up (E: leave when the
    spyee does). ChanSpyStop only while the spyee is still there: once it has hung up, app_chanspy.c finds no
    snapshot of it and publishes nothing."""
    channel.app, channel.app_data = "ChanSpy", f"{target},{options}"
    if "N" not in options and channel.state != UP:
        await pbx.answer(channel)
    spyee = pbx.find(target) if "u" in options else None
    if spyee is None or spyee is channel:
        return
    spy = Spy(channel, spyee, options)
    pbx.spies[channel.name] = spy
    pbx.emit("ChanSpyStart", "call", channel.fields("Spyer") + spyee.fields("Spyee"))
    try:
        await pbx.wait_while_alive(channel, spyee.gone.wait())
    finally:
        pbx.spies.pop(channel.name, None)
        if spyee.alive:
            pbx.emit("ChanSpyStop", "call", channel.fields("Spyer") + spyee.fields("Spyee"))


class ShippedDialplan:
    """``asterisk-conf/extensions.conf`` as this repository ships it."""

    recording = True  # [cti-record]: Queue's gosub and Dial's U() start MixMonitor on the leg that answers
    as_citizen = True  # [cti-as-citizen] as Dial's b(), with I, on the lines and seats the citizen is handed to

    def __init__(self, *, agi_url: str, hotline_queue: str = "q12345", prompts: Path | None = None,
                 citizens: dict[str, Citizen] | None = None, callees: dict[str, Citizen] | None = None,
                 recordings: str = "/var/spool/asterisk/monitor/cti", zone: ZoneInfo = SHANGHAI) -> None:
        self.agi_url = agi_url.rstrip("/")
        self.hotline_queue = hotline_queue
        self.recordings = recordings.rstrip("/")  # [globals] CTI_RECORDINGS, CTI_TIMEZONE
        self.zone = zone
        self.prompts = prompts
        self.citizens = citizens if citizens is not None else {}  # by the channel of their call in
        self.callees = callees if callees is not None else {}  # by number, for the calls out to them

    def __call__(self, context: str, exten: str) -> Program | None:
        if context == "from-carrier" and exten.isdigit():
            return self.from_carrier
        if context == "cti-next":
            return {"queue": self.next_queue, "dial": self.next_dial, "node": self.next_node,
                    "hangup": self.next_hangup}.get(exten)
        if context == "from-node" and exten.startswith("q"):
            return self.from_node
        if context == "cti-queue" and exten.startswith("q"):
            return self.cti_queue
        if context in ("emergency", "phones") and exten in EMERGENCY:  # [phones] includes [emergency]
            return self.emergency
        if context == "phones" and exten == "12345":
            return self.phones_hotline
        if context == "cti-seat":
            return self.seat if self.seat_extension(exten) else None
        if context == "conference" and exten.startswith("cti-"):
            return self.conference
        if context == "callback" and exten.isdigit():
            return self.callback
        if context == "cti-survey" and exten.isdigit():
            return self.survey
        if context == "cti-spy" and exten in SPY_OPTIONS:
            return self.spy
        return None

    def seat_extension(self, exten: str) -> bool:
        return exten == "0"  # [cti-seat] 0, the seat's endpoint in CTI_TRANSFER_DIAL

    def record(self, pbx: Pbx, leg: Channel) -> None:
        """[cti-record], the gosub of Queue and Dial's U() on the leg that answered: MixMonitor(CTI_RECORDING,b)
        unless it is a Local half (the agent's leg behind it records)."""
        path = leg.variables.get("CTI_RECORDING", "")
        if path and not leg.name.startswith("Local/"):
            where = (leg.context, leg.exten, leg.priority)
            leg.context, leg.exten, leg.priority = "cti-record", "s", 2
            record(pbx, leg, path)
            leg.context, leg.exten, leg.priority = where  # Return()

    def as_citizen_predial(self, pbx: Pbx, leg: Channel) -> None:
        """[cti-as-citizen], Dial's b() on the new leg to the line before it is called: its connected line
        (what PJSIP sends as From and P-Asserted-Identity) becomes the citizen's number, then name (X2b)."""
        leg.context, leg.exten, leg.priority = "cti-as-citizen", "s", 1
        number = leg.variables.get("CTI_CITIZEN_NUM", "")
        if not number:
            leg.priority = 4  # GotoIf(...?done): Return()
            return
        leg.priority = 2
        pbx.set_connected(leg, number, leg.connected_name)  # Set(CONNECTEDLINE(num,i)=${CTI_CITIZEN_NUM})
        leg.priority = 3
        pbx.set_connected(leg, number, leg.variables.get("CTI_CITIZEN_NAME", ""))  # CONNECTEDLINE(name,i)
        leg.priority = 4  # Return()

    def line_options(self) -> tuple[str, str]:
        """The options of the Dial to a line or a seat: its application data's and the simulator's."""
        return ("oIb(cti-as-citizen^s^1)", "oI") if self.as_citizen else ("o", "o")

    def prompt_seconds(self, name: str) -> float:
        return _wav_seconds(self.prompts / f"{name}.wav") if self.prompts else 3.0

    async def _agi(self, pbx: Pbx, channel: Channel, script: str, *args: str) -> str:
        status = await agi(pbx, channel, f"{self.agi_url}/{script}", list(args), prompt_seconds=self.prompt_seconds,
                           citizen=self.citizens.get(channel.name) or self.callees.get(channel.exten))
        pbx.check(channel)
        return status

    async def from_carrier(self, pbx: Pbx, channel: Channel) -> None:
        channel.language = "zh"
        pbx.set_variable(channel, "__DYNAMIC_FEATURES", CTI_FEATURES)  # the agent's leg may dial **110
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

    def _queue(self, pbx: Pbx, channel: Channel, name: str) -> Awaitable[None]:
        """Queue(name,tT,,,900[,,cti-record])."""
        queue: Queue = pbx.queues[name]
        if not self.recording:
            return queue.run(channel, timeout=900, options="tT")
        return queue.run(channel, timeout=900, options="tT", gosub=lambda leg: self.record(pbx, leg),
                         gosub_name="cti-record")

    async def next_queue(self, pbx: Pbx, channel: Channel) -> None:
        await self._queue(pbx, channel, channel.variables.get("CTI_QUEUE") or self.hotline_queue)

    async def next_dial(self, pbx: Pbx, channel: Channel) -> None:
        """Dial(${CTI_DIAL},${CTI_DIAL_TIMEOUT},tToU(cti-record)), then the queue if cti said so."""
        await self._dial_next(pbx, channel, "", None)

    async def next_node(self, pbx: Pbx, channel: Channel) -> None:
        """[cti-next] node: the same Dial with b(cti-to-node^s^1) on each leg."""
        await self._dial_next(pbx, channel, "b(cti-to-node^s^1)", self.to_node_predial)

    def to_node_predial(self, leg: Channel) -> None:
        """[cti-to-node]: a PJSIP leg gets PJSIP_HEADER(add,X-CTI-Linkedid)=${CHANNEL(linkedid)}; Return()."""
        leg.context, leg.exten, leg.priority = "cti-to-node", "s", 1
        if leg.name.startswith("PJSIP/"):
            leg.headers["X-CTI-Linkedid"] = leg.linkedid
        leg.priority = 2

    async def from_node(self, pbx: Pbx, channel: Channel) -> None:
        """[from-node]: AGI(${CTI_AGI}/node,${EXTEN},${CHANNEL(linkedid)},${PJSIP_HEADER(read,X-CTI-Linkedid)}),
        then Goto(cti-queue,${EXTEN},1)."""
        origin = channel.headers.get("X-CTI-Linkedid", "")
        await self._agi(pbx, channel, "node", channel.exten, channel.linkedid, origin)
        await self._goto(pbx, channel, "cti-queue", channel.exten)

    async def _dial_next(self, pbx: Pbx, channel: Channel, predial_option: str,
                         predial: Callable[[Channel], None] | None) -> None:
        dial_string = channel.variables.get("CTI_DIAL", "")
        targets = [t for t in dial_string.split("&") if t]
        seconds = channel.variables.get("CTI_DIAL_TIMEOUT", "")
        options = ("tToU(cti-record)" if self.recording else "tTo") + predial_option
        gosub = (lambda leg: self.record(pbx, leg)) if self.recording else None
        answered = await dial(pbx, channel, targets, float(seconds or 60), options="o", gosub=gosub, predial=predial,
                              data=f"{dial_string},{seconds},{options}")
        if answered is None and channel.variables.get("CTI_FALLBACK") == "queue":
            await self._goto(pbx, channel, "cti-next", "queue")

    async def next_hangup(self, pbx: Pbx, channel: Channel) -> None:
        await pbx.hangup(channel, 16, soft=True)

    async def cti_queue(self, pbx: Pbx, channel: Channel) -> None:
        await self._queue(pbx, channel, channel.exten)

    async def phones_hotline(self, pbx: Pbx, channel: Channel) -> None:
        await self._goto(pbx, channel, "from-carrier", "12345")  # [phones] 12345: Goto(from-carrier,12345,1)

    async def _line(self, pbx: Pbx, channel: Channel, target: str) -> None:
        data, options = self.line_options()
        predial = (lambda leg: self.as_citizen_predial(pbx, leg)) if self.as_citizen else None
        await dial(pbx, channel, [target], 60, options=options, predial=predial, data=f"{target},60,{data}")

    async def emergency(self, pbx: Pbx, channel: Channel) -> None:
        await self._line(pbx, channel, channel.variables.get("CTI_TRANSFER_DIAL") or f"PJSIP/{channel.exten}@carrier")

    async def seat(self, pbx: Pbx, channel: Channel) -> None:
        target = channel.variables.get("CTI_TRANSFER_DIAL", "")
        if target:
            await self._line(pbx, channel, target)

    async def conference(self, pbx: Pbx, channel: Channel) -> None:
        await pbx.answer(channel)
        await confbridge(pbx, channel, channel.exten)

    async def callback(self, pbx: Pbx, channel: Channel) -> None:
        await dial(pbx, channel, [f"PJSIP/{channel.exten}@carrier"], 45, data=f"PJSIP/{channel.exten}@carrier,45")

    async def survey(self, pbx: Pbx, channel: Channel) -> None:
        channel.language = "zh"
        await self._agi(pbx, channel, "survey", channel.exten, channel.linkedid,
                        channel.variables.get("CTI_CASE", ""))

    async def spy(self, pbx: Pbx, channel: Channel) -> None:
        """[cti-spy] listen, whisper or barge: ChanSpy(${CTI_SPY},…) unless CTI_SPY is empty, then Hangup()."""
        target = channel.variables.get("CTI_SPY", "")
        if target:
            channel.priority = 2
            await chanspy(pbx, channel, target, SPY_OPTIONS[channel.exten])
        channel.priority = 3


class FirstShippedDialplan(ShippedDialplan):
    """``asterisk-conf/extensions.conf`` as it was before the recording and caller-ID fixes (9b8de56), on
    which R3, R4, X2 and X3 were captured: no [cti-record], no [cti-as-citizen] (Dial(…,60,o) to the lines:
    an attended transfer's consultation call shows 110 the agent, X2), the seats at ``_seat-X.``."""

    recording = False
    as_citizen = False

    def seat_extension(self, exten: str) -> bool:
        return exten.startswith("seat-")

    async def seat(self, pbx: Pbx, channel: Channel) -> None:
        await dial(pbx, channel, [f"PJSIP/{channel.exten}"], 60, data=f"PJSIP/{channel.exten},60,o")


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
__all__ = ["FirstShippedDialplan", "LabDialplan", "ProgramFactory", "Queue", "ShippedDialplan", "Spy", "chanspy",
           "confbridge"]
