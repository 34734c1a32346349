"""A simulated Asterisk 22: channels, bridges, queues, the dialplan applications
cti's configuration uses, and the AMI events a real one emits for them.

Each channel that runs dialplan has a task; applications are coroutines that
emit what Asterisk emits at each step. The event orders follow the captured
transcripts (P5: a ringall queue over PJSIP members, a blind transfer, an
emergency line dialled with the caller's number; P6: a dual Redirect into
ConfBridge and a party originated into it); tests compare them. Time runs at
``scale`` (0.05: twenty times faster than real).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cti.sim.snapshot import (
    CAUSE_TEXT,
    DOWN,
    RING,
    RINGING,
    UNKNOWN,
    UP,
    BridgeState,
    ChannelState,
    Fields,
)

log = logging.getLogger(__name__)

# main/devicestate.c: chan2dev[] (a channel state's device state) and the aggregate's order of precedence
CHANNEL_DEVICE_STATE = {DOWN: "NOT_INUSE", RING: "INUSE", RINGING: "RINGING", UP: "INUSE"}
DEVICE_STATE_ORDER = ("INVALID", "UNKNOWN", "UNAVAILABLE", "NOT_INUSE", "ONHOLD", "RINGING", "INUSE", "BUSY",
                      "RINGINUSE")


class ChannelGone(Exception):
    """The channel hung up while an application ran on it."""


class Moved(Exception):
    """The channel was sent elsewhere in the dialplan (Redirect, blind transfer)."""

    def __init__(self, context: str, exten: str) -> None:
        super().__init__(f"{exten}@{context}")
        self.context = context
        self.exten = exten


@dataclass(eq=False)
class Channel(ChannelState):
    device: str = ""  # PJSIP/agent1001
    app: str = ""
    app_data: str = ""
    bridge: Bridge | None = None
    created: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    moved: asyncio.Future[tuple[str, str]] | None = None
    hangup_cause: int = 16
    on_hold: bool = False
    owner_of: list[Channel] = field(default_factory=list)  # legs this channel dialled
    peer: Channel | None = None  # the other half of a Local pair
    linked_peer_runs: bool = False  # its bridge peer went back to its own dialplan
    answered: asyncio.Event = field(default_factory=asyncio.Event)  # a Local ;1 answers when its ;2 does
    joined: asyncio.Event = field(default_factory=asyncio.Event)  # it has been in a bridge with someone
    inheritable: set[str] = field(default_factory=set)  # variables set as __NAME: passed to every leg it makes
    optimize: bool = False  # a Local pair without /n: optimized away once both sides are bridged
    dialler: Channel | None = None  # who dialled this leg (its DialState, DialEnd), None for a transfer's leg
    left_by: Channel | None = None  # the bridged peer whose hangup left this channel alone
    headers: dict[str, str] = field(default_factory=dict)  # SIP headers: PJSIP_HEADER(add) on a leg, read on arrival

    @property
    def alive(self) -> bool:
        return not self.gone.is_set()


@dataclass(eq=False)
class Bridge(BridgeState):
    channels: list[Channel] = field(default_factory=list)
    conference: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Races:
    """Where Asterisk's threads interleave one way in some runs and the other way in others, the transcripts
    show both; the simulator runs each the way it is told here (the tests set them as each capture went)."""

    # app_queue's device-state thread reports the member who answered in use (QueueMemberStatus, InCall 0)
    # before the Queue application's AgentConnect (X2, R4a), or after it, the member then in a call (P5, X3,
    # R4c); a gosub run on the member's leg in between always lets it come first (X2b, X3b)
    member_state_first: bool = False
    # a queue member's leg: app_queue's DialState RINGING before the channel's own Newstate Ringing (X2, X2b,
    # X3b, R4a, R4c) or after it (P5, X3); chan_pjsip queues the ringing frame before it sets the state
    dial_state_first: bool = True
    # a blind transfer: the transferer leaves the bridge before the transferee (X3b), or after it (P5, X3)
    transferer_leaves_first: bool = False
    # the far end of a two-party bridge hangs up: its Hangup before the peer left alone runs on in its
    # dialplan (X2, X3b), or after the peer's SoftHangupRequest (R1b, X2b)
    far_end_gone_first: bool = False
    # a restart's hangups: the dialled legs leave their bridges before the channels running dialplan
    # (R4c), or after them (R4a)
    dialled_legs_end_first: bool = False


EventSink = Callable[[str, str, Fields], None]


def pulse(event: asyncio.Event) -> asyncio.Event:
    """Wake everyone waiting on ``event``; the fresh event the next waiters wait on."""
    event.set()
    return asyncio.Event()
Program = Callable[["Pbx", Channel], Awaitable[None]]


class Pbx:
    """The switch. ``dialplan(context, exten)`` returns the program a channel runs there."""

    def __init__(self, dialplan: Callable[[str, str], Program | None], *, scale: float = 1.0,
                 boot: float | None = None, systemname: str = "") -> None:
        self.dialplan = dialplan
        self.systemname = systemname  # asterisk.conf [options] systemname: prefixes every Uniqueid
        self.scale = scale
        self.boot = time.time() if boot is None else boot
        self._started = time.monotonic()
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.sinks: list[EventSink] = []
        self.device_states: dict[str, str] = {}
        self.offline: set[str] = set()  # endpoints not registered (yet): their device is UNAVAILABLE
        self.races = Races()
        self.fully_booted = True  # FullyBooted told; until then app_queue's actions are unknown (R4b)
        self.persistent_members = False  # queues.conf [general] persistentmembers
        self.lifecycle: list[Callable[[str], Awaitable[None]]] = []  # told "stopped", then "started"
        self.endpoints: dict[str, Any] = {}  # device -> phone behaviour (cti.sim.phones)
        self.peers: dict[str, Any] = {}  # endpoint node-<name> -> the trunk to that node (cti.sim.trunk)
        self.queues: dict[str, Any] = {}  # name -> cti.sim.ringing.Queue
        self.rooms: dict[str, Bridge] = {}  # ConfBridge rooms by name
        self.dtmf: dict[str, str] = {}  # digits played on a channel, for feature codes
        self.queue_calls: dict[str, Any] = {}  # caller channel name -> cti.sim.ringing.QueueCall
        self.losers: dict[str, list[Channel]] = {}  # legs that lost a ringall, hung up after the bridge forms
        self.atxfers: dict[str, asyncio.Task[Any]] = {}  # transferer -> its consultation
        self.consults: dict[str, tuple[Channel, Channel, Channel, Bridge]] = {}
        self.spies: dict[str, Any] = {}  # a ChanSpy channel's name -> its cti.sim.dialplans.Spy
        self._after: list[Callable[[], object]] | None = None
        self._racers: list[Callable[[], Awaitable[None]]] = []
        self._ids = itertools.count(1)
        self._names: dict[str, itertools.count[int]] = {}
        self._bridge_ids = itertools.count(1)
        self.optimizations = itertools.count(1)  # core_unreal.c: each Local optimization's Id
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- time and ids -------------------------------------------------------------

    def now(self) -> float:
        """The PBX's clock (its event Timestamps): simulated time, running at 1/scale of real time
        from the boot, so that every time cti derives agrees with app_queue's own counts."""
        return self.boot + (time.monotonic() - self._started) / self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self.scale)

    def uniqueid(self) -> str:
        """channel.c: "<systemname>-<boot>.<n>" when the system is named, else "<boot>.<n>"."""
        number = f"{int(self.boot)}.{next(self._ids)}"
        return f"{self.systemname}-{number}" if self.systemname else number

    def channel_name(self, device: str) -> str:
        tech = device.split("/", 1)[0]
        counter = self._names.setdefault(tech, itertools.count(1))
        return f"{device}-{next(counter):08x}"

    # -- restart --------------------------------------------------------------------

    async def restart(self, *, down: float = 0.6, booting: float = 0.16) -> None:
        """``core restart now`` (R4a, R4b, R4c): every channel is asked to hang up (SoftHangupRequest,
        cause 4: AST_SOFTHANGUP_SHUTDOWN) and does, bridged ones leaving their bridge and the dialplan's
        ending theirs (cause 16: AST_SOFTHANGUP_APPUNLOAD), app_queue's calls complete; the modules unload
        and Shutdown is told; the AMI sessions close and for ``down`` seconds nothing listens; then a new
        Asterisk (a new boot time, channels numbered from 1 again, its device-state cache empty, the phones
        of pjsip.conf's agent-phone template not registered until they register again) accepts logins but
        knows no app_queue action until it is fully booted, ``booting`` seconds later. The queues come back
        empty, or with their dynamic members, told by no event, when persistentmembers is on (R4c)."""
        channels = [c for c in self.channels.values() if c.alive]
        for channel in channels:
            self.event("SoftHangupRequest", channel, ("Cause", "4"))
        running = [c for c in channels if c.task is not None and not c.task.done()]
        legs = [c for c in channels if c not in running]
        legs_first = self.races.dialled_legs_end_first
        for group in (legs, running) if legs_first else (running, legs):
            for channel in group:
                if channel.bridge is not None:
                    self.leave_bridge(channel)
                if channel in running:
                    self.event("SoftHangupRequest", channel, ("Cause", "16"))
            if group is legs:  # app_queue hears its member's leg leave
                for call in list(self.queue_calls.values()):
                    call.complete("caller")
        for channel in channels:
            if channel.task is not None and not channel.task.done():
                channel.task.cancel()
            self._finish(channel, 16)
        await self.sleep(1.1)  # the modules unload
        self.emit("Shutdown", "system", [("Shutdown", "Cleanly"), ("Restart", "True")])
        self.fully_booted = False
        for listener in self.lifecycle:
            await listener("stopped")
        await self.sleep(down)
        self.boot, self._started = self.now(), time.monotonic()
        self._ids, self._names, self._bridge_ids = itertools.count(1), {}, itertools.count(1)
        self.device_states = {}
        self.offline |= {device for device, phone in self.endpoints.items()
                         if getattr(phone, "context", "") == "phones"}
        for table in (self.rooms, self.dtmf, self.queue_calls, self.losers, self.atxfers, self.consults, self.spies):
            table.clear()
        for queue in self.queues.values():
            queue.restarted(self.persistent_members)
        for listener in self.lifecycle:
            await listener("started")
        await self.sleep(booting)
        self.fully_booted = True
        uptime = str(int(self.now() - self.boot))
        self.emit("FullyBooted", "system", [("Status", "Fully Booted"), ("Uptime", uptime), ("LastReload", uptime)])

    # -- events -------------------------------------------------------------------

    def emit(self, name: str, privilege: str, fields: Fields) -> None:
        for sink in list(self.sinks):
            sink(name, privilege, fields)

    def event(self, name: str, channel: Channel, *extra: tuple[str, str], privilege: str = "call") -> None:
        self.emit(name, privilege, channel.fields() + list(extra))

    def device_state(self, device: str, state: str, *, cachable: bool = True) -> None:
        """DeviceStateChange. A cachable state is told only when it changes; a Local channel's is not
        cached (core_unreal.c: AST_FLAG_DISABLE_DEVSTATE_CACHE) and is told every time (X2, R3)."""
        if cachable and self.device_states.get(device) == state:
            return
        self.device_states[device] = state
        self.emit("DeviceStateChange", "call", [("Device", device), ("State", state)])
        for queue in self.queues.values():
            queue.device_changed(device, state)

    def refresh_device(self, device: str) -> None:
        """What ast_setstate, a hold and a channel's end make Asterisk do: ask the channel driver for the
        device's state and tell it (a Local device every time, others when it changed)."""
        self.device_state(device, self.query_device(device), cachable=not device.startswith("Local/"))

    def query_device(self, device: str) -> str:
        """The channel driver's device state. A Local device is in use while a ;1 of it is up with its ;2
        (core_local.c local_devicestate); an endpoint's is the aggregate of its channels, each on hold or in
        its channel state's device state, else not in use, or unavailable while it is not registered
        (chan_pjsip.c chan_pjsip_devicestate, devicestate.c ast_devstate_aggregate_add)."""
        channels = [c for c in self.channels.values() if c.device == device and c.alive]
        if device.startswith("Local/"):
            busy = any(c.name.endswith(";1") and c.peer is not None and c.peer.alive for c in channels)
            return "INUSE" if busy else "NOT_INUSE"
        if not channels:
            return "UNAVAILABLE" if device in self.offline else "NOT_INUSE"
        state, ringing, in_use = "INVALID", False, False
        for channel in channels:
            each = "ONHOLD" if channel.on_hold else CHANNEL_DEVICE_STATE.get(channel.state, "INUSE")
            ringing = ringing or each == "RINGING"
            in_use = in_use or each in ("INUSE", "ONHOLD", "BUSY")
            if ringing and in_use:
                state = "RINGINUSE"
            elif DEVICE_STATE_ORDER.index(each) > DEVICE_STATE_ORDER.index(state):
                state = each
        return state

    def register(self, device: str, contact: str = "") -> None:
        """A phone registers (or is qualified reachable) again: res_pjsip's PeerStatus and ContactStatus
        (system class), then its device state (X2: a freshly started Asterisk's phones coming back)."""
        endpoint = device.split("/", 1)[1]
        self.offline.discard(device)
        self.emit("PeerStatus", "system", [("ChannelType", "PJSIP"), ("Peer", device), ("PeerStatus", "Reachable")])
        self.emit("ContactStatus", "system", [("URI", contact or f"sip:{endpoint}@127.0.0.1:5080"),
                                              ("ContactStatus", "Reachable"), ("AOR", endpoint),
                                              ("EndpointName", endpoint), ("RoundtripUsec", "1000")])
        self.refresh_device(device)

    def after_response(self, then: Callable[[], object]) -> None:
        """Run ``then`` once the AMI response to the current action is out (Asterisk answers an
        action before the events it causes); at once when no action is being answered."""
        if self._after is None:
            then()
        else:
            self._after.append(then)

    def answering(self) -> None:
        self._after = []

    def answered(self) -> None:
        after, self._after = self._after or [], None
        for then in after:
            then()

    def spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- channels -----------------------------------------------------------------

    def new_channel(self, device: str, *, state: int, context: str, exten: str, linkedid: str | None = None,
                    caller: tuple[str, str] = (UNKNOWN, UNKNOWN), language: str = "en") -> Channel:
        uniqueid = self.uniqueid()
        channel = Channel(name=self.channel_name(device), uniqueid=uniqueid, linkedid=linkedid or uniqueid,
                          state=state, caller_number=caller[0], caller_name=caller[1], language=language,
                          context=context, exten=exten, device=device)
        self.channels[channel.name] = channel
        self.event("Newchannel", channel)
        return channel

    def inbound(self, number: str, caller: tuple[str, str], *, device: str = "PJSIP/carrier",
                context: str = "from-carrier", language: str = "en") -> Channel:
        """A call arriving from the carrier trunk for ``number``: a channel in Ring, running the dialplan."""
        channel = self.new_channel(device, state=RING, context=context, exten=number, caller=caller,
                                   language=language)
        self.run(channel, context, number)  # its device is told at its first state change (X2: when answered)
        return channel

    def find(self, name: str) -> Channel | None:
        channel = self.channels.get(name)
        return channel if channel is not None and channel.alive else None

    def set_state(self, channel: Channel, state: int, *, device: bool = True) -> None:
        """Newstate. ``device=False`` leaves the phone's device state to be reported later
        (a queue member's phone shows in use once it is in the bridge, P5)."""
        if channel.state == state:
            return
        channel.state = state
        self.event("Newstate", channel)
        if device:
            self.refresh_device(channel.device)
        one = channel.peer
        if state == UP and one is not None and channel.name.endswith(";2"):
            one.answered.set()  # the Local channel's ;1 answers its dialler
            if one.dialler is None and one.alive and one.state != UP:  # no Dial waits on it: a transfer's
                self.set_state(one, UP)
                self.dial_state(one, "ANSWER", "DialEnd")

    def set_variable(self, channel: Channel, name: str, value: str) -> None:
        """Set(NAME=value); ``__NAME`` is inherited by every channel this one creates, and theirs."""
        bare = name.lstrip("_")
        channel.variables[bare] = value
        if name.startswith("__"):
            channel.inheritable.add(bare)

    def inherit(self, parent: Channel, child: Channel) -> None:
        """ast_channel_inherit_variables: what a dialled leg (or a Local pair) gets from its caller."""
        for name in parent.inheritable:
            child.variables[name] = parent.variables[name]
        child.inheritable |= parent.inheritable

    def set_caller(self, channel: Channel, number: str, name: str) -> None:
        """NewCallerid, when the caller ID changes (manager_channels.c compares the snapshots)."""
        if (channel.caller_number, channel.caller_name) == (number, name):
            return
        channel.caller_number, channel.caller_name = number, name
        self.event("NewCallerid", channel, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"))

    def set_connected(self, channel: Channel, number: str, name: str) -> None:
        """NewConnectedLine, when the connected line changes."""
        if (channel.connected_number, channel.connected_name) == (number, name):
            return
        channel.connected_number, channel.connected_name = number, name
        self.event("NewConnectedLine", channel)

    def set_parties(self, channel: Channel, caller: tuple[str, str], connected: tuple[str, str]) -> None:
        """Caller ID and connected line changed in one snapshot (a dialled leg's, app_dial.c): NewCallerid
        then NewConnectedLine, each only if its part changed, both showing the new snapshot."""
        caller_changed = (channel.caller_number, channel.caller_name) != caller
        connected_changed = (channel.connected_number, channel.connected_name) != connected
        (channel.caller_number, channel.caller_name), (channel.connected_number, channel.connected_name) = (
            caller, connected)
        if caller_changed:
            self.event("NewCallerid", channel, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)"))
        if connected_changed:
            self.event("NewConnectedLine", channel)

    def run(self, channel: Channel, context: str, exten: str) -> None:
        """Start (or restart after a Redirect) the channel's dialplan at exten@context."""
        channel.context, channel.exten, channel.priority = context, exten, 1
        channel.task = self.spawn(self._execute(channel))

    async def _execute(self, channel: Channel) -> None:
        while True:
            program = self.dialplan(channel.context, channel.exten)
            if program is None:
                log.warning("sim: no extension %s@%s for %s", channel.exten, channel.context, channel.name)
                await self.hangup(channel, 16, soft=True)
                return
            try:
                await program(self, channel)
            except Moved as move:
                channel.context, channel.exten, channel.priority = move.context, move.exten, 1
                self.leave_for_move(channel)
                continue
            except ChannelGone:
                return
            if channel.alive:  # the dialplan ran off its end
                await self.hangup(channel, 16, soft=True)
            return

    def check(self, channel: Channel) -> None:
        """Raise in the running application when its channel is gone or moved."""
        if not channel.alive:
            raise ChannelGone(channel.name)
        if channel.moved is not None and channel.moved.done():
            context, exten = channel.moved.result()
            channel.moved = None
            raise Moved(context, exten)

    async def wait_while_alive(self, channel: Channel, *awaitables: Awaitable[Any],
                               seconds: float | None = None) -> None:
        """Wait for any of ``awaitables`` (or ``seconds``), aborting when the channel goes or moves."""
        if channel.moved is None:
            channel.moved = asyncio.get_running_loop().create_future()
        watched = [asyncio.ensure_future(a) for a in awaitables]
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(channel.gone.wait()), channel.moved, *watched]
        if seconds is not None:
            waiters.append(asyncio.ensure_future(self.sleep(seconds)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                if waiter is not channel.moved and not waiter.done():
                    waiter.cancel()
        self.check(channel)

    async def hangup(self, channel: Channel, cause: int | None = 16, *, request: bool = False,
                     soft: bool = False) -> None:
        """Hang a channel up.

        ``request``: the far end hung up (HangupRequest first, as from a SIP BYE);
        ``soft``: the dialplan ended it. A channel that runs dialplan is told with a
        SoftHangupRequest (cause 16); a dialled leg is not (P5, P6, R1b). A bridged
        channel leaves its bridge; a dialled peer left alone in it hangs up too."""
        if not channel.alive:
            return
        running = channel.task is not None and not channel.task.done()
        channel.hangup_cause = 16 if cause is None else cause
        if request:
            self.event("HangupRequest", channel, *([("Cause", str(cause))] if cause is not None else []))
        self._complete_queue_call(channel)
        orphans = self._leave_for_hangup(channel) if channel.bridge is not None else []
        if soft or (request and running):
            self.event("SoftHangupRequest", channel, ("Cause", "16"))
            far_end = channel.left_by
            if soft and far_end is not None and far_end.alive:  # its hangup handlers run while the far
                await far_end.gone.wait()  # end, whose hangup left it alone, is reported gone (R1b, X2b)
        orphans += [leg for leg in channel.owner_of if leg.alive and leg.bridge is None]
        for leg in orphans:
            self._finish(leg, 16)
        for leg in orphans:  # a Local half ends the other half with it: a parallel ring's queue leg (;2),
            if leg.peer is not None and leg.peer.alive:  # bridged with the agent who answered, hangs up too
                await self.hangup(leg.peer, 16, request=True)
        if request and not running and channel.linked_peer_runs and not self.races.far_end_gone_first:
            await self.hops(8)  # the peer's dialplan moves on before this leg's own end is reported (R1b)
        self._finish(channel, channel.hangup_cause)
        if channel.peer is not None and channel.peer.alive:  # a Local pair ends together
            await self.hangup(channel.peer, channel.hangup_cause)

    def race(self, racer: Callable[[], Awaitable[None]]) -> None:
        """Work another Asterisk thread does while a channel sets up its next dial: it runs at the
        next ``race_point`` (or soon, if no dial comes). The transcripts show where it lands (P5)."""
        self._racers.append(racer)
        self.spawn(self._race_anyway(racer))

    async def race_point(self) -> None:
        racers, self._racers = self._racers, []
        for racer in racers:
            await racer()

    async def _race_anyway(self, racer: Callable[[], Awaitable[None]]) -> None:
        await self.sleep(0.05)
        if racer in self._racers:
            self._racers.remove(racer)
            await racer()

    async def hops(self, count: int) -> None:
        """Let other tasks run ``count`` steps: how the simulator stands for Asterisk's
        threads racing, where the transcripts show one side's events first."""
        for _ in range(count):
            await asyncio.sleep(0)

    def _complete_queue_call(self, channel: Channel) -> None:
        """app_queue ends a connected call's bookkeeping when either party hangs up."""
        for call in list(self.queue_calls.values()):
            if channel is call.caller:
                call.complete("caller")
            elif channel is call.agent and call.agent.bridge is not None and call.agent.bridge is call.caller.bridge:
                call.complete("agent")

    def _leave_for_hangup(self, channel: Channel) -> list[Channel]:
        """Leave the bridge; return a dialled peer left alone in it, to hang up after."""
        bridge = channel.bridge
        assert bridge is not None
        channel.linked_peer_runs = False
        self.leave_bridge(channel)
        if bridge.conference or len(bridge.channels) != 1:
            return []
        peer = bridge.channels[0]
        self.leave_bridge(peer)
        if peer.task is None or peer.task.done():
            return [peer]
        channel.linked_peer_runs = True
        peer.left_by = channel
        return []

    def finish(self, channel: Channel, cause: int) -> None:
        """The channel is gone: Hangup, nothing else (a transfer's leg, a Local half)."""
        self._finish(channel, cause)

    def _finish(self, channel: Channel, cause: int) -> None:
        if not channel.alive:
            return
        self.event("Hangup", channel, ("Cause", str(cause)), ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown")))
        channel.gone.set()
        self.channels.pop(channel.name, None)
        self.refresh_device(channel.device)

    # -- bridges ------------------------------------------------------------------

    def new_bridge(self, *, conference: str = "") -> Bridge:
        uniqueid = f"{int(self.boot):08x}-{next(self._bridge_ids):04x}-4000-8000-{int(self.boot):012x}"
        bridge = Bridge(uniqueid=uniqueid, conference=conference)
        if conference:
            bridge.type, bridge.technology, bridge.creator, bridge.label = "base", "softmix", "ConfBridge", conference
        self.bridges[uniqueid] = bridge
        self.emit("BridgeCreate", "call", bridge.fields())
        return bridge

    def start_conference(self, bridge: Bridge) -> None:
        """ConfBridge's announcer joins first, unseen by AMI but counted (P6)."""
        bridge.hidden = 1
        self.emit("DeviceStateChange", "call", [("Device", f"CBAnn/{bridge.conference}"), ("State", "UNKNOWN")])
        self.emit("ConfbridgeStart", "call", [("Conference", bridge.conference)] + bridge.fields())
        self.device_state(f"confbridge:{bridge.conference}", "INUSE")

    def enter_bridge(self, channel: Channel, bridge: Bridge, *, swap: Channel | None = None) -> None:
        """BridgeEnter; ``swap``: the channel it replaces (a Local pair optimized away, X2)."""
        channel.bridge = bridge
        bridge.channels.append(channel)
        bridge.members.append(channel.name)
        self.emit("BridgeEnter", "call", bridge.fields() + channel.fields()
                  + ([("SwapUniqueid", swap.uniqueid)] if swap is not None else []))
        if len(bridge.channels) > 1 or bridge.conference:
            for member in bridge.channels:
                member.joined.set()
        if bridge.conference:
            self.emit("ConfbridgeJoin", "call", [("Conference", bridge.conference)] + bridge.fields()
                      + channel.fields() + [("Admin", "No"), ("Muted", "No")])
        bridge.changed = pulse(bridge.changed)

    def leave_bridge(self, channel: Channel) -> None:
        bridge = channel.bridge
        if bridge is None:
            return
        if bridge.conference:
            self.emit("ConfbridgeLeave", "call", [("Conference", bridge.conference)] + bridge.fields()
                      + channel.fields() + [("Admin", "No")])
        bridge.channels.remove(channel)
        bridge.members.remove(channel.name)
        channel.bridge = None
        self.emit("BridgeLeave", "call", bridge.fields() + channel.fields())
        if bridge.conference and len(bridge.channels) == 0 and bridge.hidden:
            self.emit("ConfbridgeEnd", "call", [("Conference", bridge.conference)] + bridge.fields())
            self.device_state(f"confbridge:{bridge.conference}", "NOT_INUSE")
            self.emit("DeviceStateChange", "call", [("Device", f"CBAnn/{bridge.conference}"), ("State", "UNKNOWN")])
            bridge.hidden = 0
        if not bridge.channels and not bridge.hidden:
            self.emit("BridgeDestroy", "call", bridge.fields())
            self.bridges.pop(bridge.uniqueid, None)
        bridge.changed = pulse(bridge.changed)

    def leave_for_move(self, channel: Channel) -> None:
        """A channel sent elsewhere leaves its bridge; a dialled leg left alone there hangs up (S4)."""
        bridge = channel.bridge
        if bridge is None:
            return
        self.leave_bridge(channel)
        if len(bridge.channels) == 1 and not bridge.conference:
            peer = bridge.channels[0]
            if peer.task is None or peer.task.done():
                self.leave_bridge(peer)
                self.spawn(self.hangup(peer, 16))

    def local_pair(self, context: str, exten: str, linkedid: str, parent: Channel | None = None, *,
                   optimize: bool = False) -> tuple[Channel, Channel]:
        """A Local channel: ``;1`` faces whoever dialled it, ``;2`` runs exten@context (S1, S5).
        ``;1`` answers when ``;2`` does; both inherit the ``__`` variables of the ``parent`` that made it.
        ``optimize``: without the ``/n`` option the pair leaves once both sides are bridged (X2).
        Whoever requests it sets the two sides' caller IDs, then :meth:`local_call` starts ``;2``."""
        base = self.channel_name(f"Local/{exten}@{context}")
        one = Channel(name=base + ";1", uniqueid=self.uniqueid(), linkedid=linkedid, state=0, context=context,
                      exten=exten, device=f"Local/{exten}@{context}")
        two = Channel(name=base + ";2", uniqueid=self.uniqueid(), linkedid=linkedid, state=4, context=context,
                      exten=exten, device=f"Local/{exten}@{context}")
        one.optimize = two.optimize = optimize
        for channel in (one, two):
            if parent is not None:
                self.inherit(parent, channel)
            self.channels[channel.name] = channel
            self.event("Newchannel", channel)
        one.peer, two.peer = two, one
        return one, two

    def local_call(self, one: Channel, two: Channel) -> None:
        """ast_call on a Local ;1 (core_local.c local_call): LocalBridge, and ;2 runs its dialplan."""
        self.emit("LocalBridge", "call", one.fields("LocalOne") + two.fields("LocalTwo") + [
            ("Context", two.context), ("Exten", two.exten), ("LocalOptimization", "Yes" if one.optimize else "No")])
        self.run(two, two.context, two.exten)

    def update_connected(self, channel: Channel, party: tuple[str, str]) -> None:
        """A connected-line update reaching ``channel``. On a Local ;2 it goes through the pair: ;1 takes it
        as its caller ID and passes it on to whoever ;1 is bridged with (core_unreal.c; X2: 110's number
        back to the agent's consultation leg)."""
        self.set_connected(channel, *party)
        one = channel.peer
        if channel.name.endswith(";2") and one is not None and one.alive:
            self.set_caller(one, *party)
            for other in list(one.bridge.channels) if one.bridge is not None else []:
                if other is not one:
                    self.update_connected(other, party)

    def indicate_ringing(self, channel: Channel) -> Channel | None:
        """``channel`` hears ringing from the far end. A Local ;2 passes it to its ;1, which rings (X2: the
        consultation leg rings once 110 does); returns that ;1, for :meth:`dial_state` to tell."""
        one = channel.peer
        if not channel.name.endswith(";2") or one is None or not one.alive or one.state in (RINGING, UP):
            return None
        self.set_state(one, RINGING)
        return one

    def dial_state(self, leg: Channel, status: str, event: str = "DialState") -> None:
        """DialState or DialEnd of a leg, from whoever dialled it (nobody: a transfer's leg, X2)."""
        dialler = leg.dialler.fields() if leg.dialler is not None else []
        self.emit(event, "call", dialler + leg.fields("Dest") + [("DialStatus", status)])

    async def stay_bridged(self, channel: Channel) -> None:
        """The application that holds a channel in its bridge until it leaves it."""
        while channel.bridge is not None:
            await self.wait_while_alive(channel, channel.bridge.changed.wait())

    # -- applications shared by every dialplan --------------------------------------

    async def answer(self, channel: Channel) -> None:
        self.check(channel)
        channel.app = "Answer"
        self.set_state(channel, UP)

    async def playback(self, channel: Channel, seconds: float, name: str = "") -> None:
        channel.app, channel.app_data = "Playback", name
        await self.wait_while_alive(channel, seconds=seconds)

    async def wait(self, channel: Channel, seconds: float) -> None:
        channel.app, channel.app_data = "Wait", str(seconds)
        await self.wait_while_alive(channel, seconds=seconds)
