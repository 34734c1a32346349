"""Dial and Queue: ringing phones for a caller, the first answer wins.

Orders as the transcripts show them (P5, S1, S2): every leg is created and
announced (Newchannel, NewCallerid, AgentCalled, DialBegin) before any rings;
the winner's DialEnd ANSWER comes first, then each loser's CANCEL, reported
twice for a ringall queue; the caller's connected line moves to the winner; the
two enter a fresh bridge; the losers hang up with cause 26 (answered elsewhere).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cti.sim.control import resolve
from cti.sim.pbx import Bridge, Channel, ChannelGone, Moved, Pbx, pulse
from cti.sim.phones import Phone
from cti.sim.snapshot import RINGING, UNKNOWN, UP


@dataclass
class Member:
    interface: str  # PJSIP/agent1001
    name: str
    paused: bool = False
    reason: str = ""
    dynamic: bool = True
    calls_taken: int = 0
    last_call: int = 0
    login_time: int = field(default_factory=lambda: int(time.time()))
    status: int = 1  # app_queue's device states: 1 not in use, 2 in use, 6 ringing
    in_call: bool = False


@dataclass
class QueueEntry:
    channel: Channel
    joined: float
    ringing: bool = False  # its members are being rung now
    gosub: Callable[[Channel], None] | None = None  # Queue's gosub argument, run on the member's leg


# app_queue's member status: the device state of its interface (include/asterisk/devicestate.h)
MEMBER_STATUS = {"UNKNOWN": 0, "NOT_INUSE": 1, "INUSE": 2, "BUSY": 3, "INVALID": 4, "UNAVAILABLE": 5, "RINGING": 6,
                 "RINGINUSE": 7, "ONHOLD": 8}


class Queue:
    def __init__(self, pbx: Pbx, name: str, *, strategy: str = "ringall", timeout: float = 15,
                 retry: float = 2, ringinuse: bool = False, wrapuptime: float = 0) -> None:
        self.pbx = pbx
        self.name = name
        self.strategy = strategy
        self.timeout = timeout
        self.retry = retry
        self.ringinuse = ringinuse
        self.wrapuptime = wrapuptime  # seconds after a call before a member is rung again (queues.conf)
        self.members: list[Member] = []
        self.waiting: list[QueueEntry] = []
        self.completed = 0
        self.abandoned = 0
        self.hold_total = 0.0
        self.talk_total = 0.0
        self._last = -1  # rrmemory position
        self._turn = asyncio.Event()  # a member became free
        # app_queue's own devices: Queue:<name> rings while callers wait; Queue:<name>_avail is
        # in use while no member may be rung (app_queue.c device_state_cb, add_to_queue, remove_from_queue)
        pbx.device_states[f"Queue:{name}"] = "NOT_INUSE"
        pbx.device_states[f"Queue:{name}_avail"] = "NOT_INUSE"

    def _queue_devices(self) -> None:
        self.pbx.device_state(f"Queue:{self.name}", "RINGING" if self.waiting else "NOT_INUSE")

    def _avail(self, state: str) -> None:
        self.pbx.device_state(f"Queue:{self.name}_avail", state)

    def available(self, member: Member) -> bool:
        """app_queue.c is_member_available: by its device state and pause, and not in its wrap-up time."""
        if member.status in (MEMBER_STATUS["INVALID"], MEMBER_STATUS["UNAVAILABLE"]):
            return False
        if member.status not in (MEMBER_STATUS["NOT_INUSE"], MEMBER_STATUS["UNKNOWN"]) and not self.ringinuse:
            return False
        if member.paused:
            return False
        return not (member.last_call and self.wrapuptime and self.pbx.now() - self.wrapuptime < member.last_call)

    def restarted(self, persistent: bool) -> None:
        """The queue as a restarted Asterisk loads it: no caller, no statistics, "no member available"
        (app_queue.c init_queue), and its dynamic members only if they were kept (persistentmembers):
        back as they were paused, logged in now, their status their interface's (R4c: 5, not yet
        registered), without an event."""
        kept = [m for m in self.members if m.dynamic] if persistent else []
        self.members = [Member(m.interface, m.name, m.paused, m.reason, login_time=int(self.pbx.now()),
                               status=MEMBER_STATUS.get(self.pbx.query_device(m.interface), 0)) for m in kept]
        self.waiting = []
        self.completed = self.abandoned = 0
        self.hold_total = self.talk_total = 0.0
        self._last = -1
        self.pbx.device_states[f"Queue:{self.name}"] = "NOT_INUSE"
        self.pbx.device_states[f"Queue:{self.name}_avail"] = "INUSE"

    # -- members (QueueAdd, QueueRemove, QueuePause) ----------------------------------

    def member(self, interface: str) -> Member | None:
        return next((m for m in self.members if m.interface == interface), None)

    def add(self, interface: str, name: str, paused: bool = False, reason: str = "") -> Member:
        """QueueAdd (app_queue.c add_to_queue): its pause device, QueueMemberAdded with the interface's
        state as its status, and the queue's availability when the new member may be rung."""
        member = Member(interface, name or interface, paused, reason, login_time=int(self.pbx.now()))
        member.status = MEMBER_STATUS.get(self.pbx.query_device(interface), 0)
        self.members.append(member)
        self._pause_device(member)
        self._member_event("QueueMemberAdded", member)
        if self.available(member):
            self._avail("NOT_INUSE")
        self._wake()
        return member

    def remove(self, member: Member) -> None:
        self.members.remove(member)
        self._member_event("QueueMemberRemoved", member)
        self.pbx.device_state(f"Queue:{self.name}_pause_{member.interface}", "NOT_INUSE")
        if not any(self.available(m) for m in self.members):
            self._avail("INUSE")

    def pause(self, member: Member, paused: bool, reason: str) -> None:
        member.paused, member.reason = paused, reason if paused else ""
        self._pause_device(member)
        if self.available(member):
            self._avail("NOT_INUSE")
        elif not any(self.available(m) for m in self.members):
            self._avail("INUSE")
        self._member_event("QueueMemberPause", member)
        if not paused:
            self._wake()

    def _pause_device(self, member: Member) -> None:
        self.pbx.device_state(f"Queue:{self.name}_pause_{member.interface}", "INUSE" if member.paused else "NOT_INUSE")

    def device_changed(self, device: str, state: str) -> None:
        """app_queue.c device_state_cb: the member's status follows its interface; then whether any member
        may be rung."""
        member = self.member(device)
        if member is None:
            return
        status = MEMBER_STATUS.get(state, 0)
        if status != member.status:
            member.status = status
            self._member_event("QueueMemberStatus", member)
        self._avail("NOT_INUSE" if any(self.available(m) for m in self.members) else "INUSE")
        if self.available(member):
            self._wake()

    def member_fields(self, member: Member) -> list[tuple[str, str]]:
        return [("Queue", self.name), ("MemberName", member.name), ("Interface", member.interface),
                ("StateInterface", member.interface), ("Membership", "dynamic" if member.dynamic else "static"),
                ("Penalty", "0"), ("CallsTaken", str(member.calls_taken)), ("LastCall", str(member.last_call)),
                ("LastPause", "0"), ("LoginTime", str(member.login_time)), ("InCall", "1" if member.in_call else "0"),
                ("Status", str(member.status)), ("Paused", "1" if member.paused else "0"),
                ("PausedReason", member.reason), ("Ringinuse", "1" if self.ringinuse else "0"), ("Wrapuptime", "0")]

    def _member_event(self, name: str, member: Member) -> None:
        self.pbx.emit(name, "agent", self.member_fields(member))

    def free_members(self) -> list[Member]:
        """Who may be rung now, in the order app_queue rings them."""
        free = [m for m in self.members if self.available(m)]
        if self.strategy == "ringall":
            return list(reversed(free))  # app_queue builds its outgoing list back to front
        if not free:
            return []
        start = (self._last + 1) % len(self.members)
        ordered = self.members[start:] + self.members[:start]
        chosen = next(m for m in ordered if m in free)
        self._last = self.members.index(chosen)
        return [chosen]

    # -- the Queue application ------------------------------------------------------

    async def run(self, channel: Channel, timeout: float, options: str = "t",
                  gosub: Callable[[Channel], None] | None = None, gosub_name: str = "") -> None:
        """Queue(name,options,,,timeout,,gosub): ``gosub`` runs on the member's leg once connected;
        ``gosub_name`` is its context as the application's argument names it (R3b)."""
        pbx = self.pbx
        channel.app, channel.app_data = "Queue", f"{self.name},{options},,,{int(timeout)}" + (
            f",,{gosub_name}" if gosub_name else "")
        entry = QueueEntry(channel, time.monotonic(), gosub=gosub)
        self.waiting.append(entry)
        position = len(self.waiting)
        pbx.event("QueueCallerJoin", channel, ("Queue", self.name), ("Position", str(position)),
                  ("Count", str(len(self.waiting))), privilege="agent")
        self._queue_devices()
        pbx.event("MusicOnHoldStart", channel, ("Class", "default"))
        deadline = time.monotonic() + timeout * pbx.scale
        try:
            while True:
                members = self.free_members() if self._our_turn(entry) else []
                if not members:
                    await self._wait_turn(channel)
                    if time.monotonic() > deadline:
                        break
                    continue
                entry.ringing = True
                try:
                    winner = await ring(pbx, channel, [(m.interface, m) for m in members], self)
                finally:
                    entry.ringing = False
                if winner is not None:
                    await self._connected(entry, winner)
                    return
                if time.monotonic() > deadline:
                    break
                await pbx.wait_while_alive(channel, seconds=self.retry)
        except ChannelGone:
            self._abandon(entry)
            raise
        except Moved:
            self._leave(entry)
            raise
        self._leave(entry)

    async def _wait_turn(self, channel: Channel) -> None:
        await self.pbx.wait_while_alive(channel, self._turn.wait(), seconds=1.0)

    def _wake(self) -> None:
        """A member became free or a caller left: every waiting caller looks again."""
        self._turn = pulse(self._turn)

    def _available(self) -> int:
        return sum(1 for m in self.members if self.available(m))

    def _our_turn(self, entry: QueueEntry) -> bool:
        """app_queue's autofill (the default): as many waiting callers are served at once as there
        are members free; a caller already ringing its members does not hold the others back."""
        ahead = 0
        for other in self.waiting:
            if other is entry:
                break
            if not other.ringing:
                ahead += 1
        return ahead < max(1, self._available())

    def _leave(self, entry: QueueEntry) -> None:
        if entry in self.waiting:
            position = self.waiting.index(entry) + 1
            self.waiting.remove(entry)
            self.pbx.event("QueueCallerLeave", entry.channel, ("Queue", self.name), ("Position", str(position)),
                           ("Count", str(len(self.waiting))), privilege="agent")
            self._queue_devices()
            self._wake()

    def _abandon(self, entry: QueueEntry) -> None:
        if entry not in self.waiting:
            return
        position = self.waiting.index(entry) + 1
        held = round((time.monotonic() - entry.joined) / self.pbx.scale)
        self.abandoned += 1
        self.pbx.event("QueueCallerAbandon", entry.channel, ("Queue", self.name), ("Position", str(position)),
                       ("OriginalPosition", str(position)), ("HoldTime", str(held)), privilege="agent")
        self._leave(entry)

    async def _connected(self, entry: QueueEntry, winner: tuple[Channel, Member, float]) -> None:
        """The caller talks to a member until one of them leaves; AgentComplete says how it ended.

        The member's phone went up when it answered; app_queue hears it from its device-state thread while
        the Queue application goes on (app_queue.c try_calling): before AgentConnect or after it
        (``Races.member_state_first``)."""
        pbx, caller = self.pbx, entry.channel
        agent, member, rang = winner
        held = round((time.monotonic() - entry.joined) / pbx.scale)
        pbx.event("MusicOnHoldStop", caller)
        self._leave(entry)
        if entry.gosub is not None:
            entry.gosub(agent)
        first = entry.gosub is not None or pbx.races.member_state_first
        if first:
            pbx.refresh_device(agent.device)
        pbx.emit("AgentConnect", "agent", caller.fields() + agent.fields("Dest") + [
            ("Queue", self.name), ("Interface", member.interface), ("MemberName", member.name),
            ("HoldTime", str(held)), ("RingTime", str(round(rang)))])
        member.in_call = True
        self.completed += 1
        self.hold_total += held
        started = time.monotonic()
        call = QueueCall(self, caller, agent, member, held, started)
        pbx.queue_calls[caller.name] = call
        if caller.state != UP:  # the bridge answers a caller still ringing (features.c pre_bridge_setup)
            pbx.set_state(caller, UP)
        bridge = pbx.new_bridge()
        pbx.enter_bridge(agent, bridge)
        if not first:
            pbx.refresh_device(agent.device)
        await hang_up_losers(pbx, caller)
        pbx.enter_bridge(caller, bridge)
        await pbx.stay_bridged(caller)


@dataclass
class QueueCall:
    """A queue caller connected to a member, until AgentComplete."""

    queue: Queue
    caller: Channel
    agent: Channel
    member: Member
    hold_time: int
    started: float
    done: bool = False

    def complete(self, reason: str) -> None:
        """AgentComplete; the member's call is counted and its wrap-up starts (app_queue.c update_queue)."""
        if self.done:
            return
        self.done = True
        pbx = self.queue.pbx
        talk = round((time.monotonic() - self.started) / pbx.scale)
        self.queue.talk_total += talk
        pbx.emit("AgentComplete", "agent", self.caller.fields() + self.agent.fields("Dest") + [
            ("Queue", self.queue.name), ("Interface", self.member.interface), ("MemberName", self.member.name),
            ("HoldTime", str(self.hold_time)), ("TalkTime", str(talk)), ("Reason", reason)])
        pbx.queue_calls.pop(self.caller.name, None)
        self.member.in_call = False
        self.member.calls_taken += 1
        self.member.last_call = int(pbx.now())


_M = TypeVar("_M", Member, None)  # a queue's targets are its members, Dial's none


Predial = Callable[[Channel], None]  # Dial's b(): a gosub run on each new leg before it is called


async def ring(pbx: Pbx, caller: Channel, targets: list[tuple[str, _M]], queue: Queue | None,
               *, timeout: float | None = None, keep_caller_id: bool = False, ignore_connected: bool = False,
               predial: Predial | None = None,
               dial_string: Callable[[str], str] | None = None) -> tuple[Channel, _M, float] | None:
    """Ring every target for ``caller``; return (answered leg, its member, ring seconds) or None.

    ``keep_caller_id``: Dial's o (the legs show the caller's own number); ``ignore_connected``: Dial's I
    (no connected-line update from the legs reaches the caller while they ring); ``predial``: Dial's b()."""
    legs: list[tuple[Channel, _M, Phone | LocalAnswer | None]] = []
    phone: Phone | LocalAnswer | None
    citizen = (caller.caller_number, caller.caller_name)
    for target, member in targets:
        if target.startswith("Local/"):  # Local/exten@context[/n]: its ;2 runs there, its ;1 rings here
            spec, _, flags = target[len("Local/"):].partition("/")
            exten, _, context = spec.partition("@")
            leg, two = pbx.local_pair(context, exten, caller.linkedid, parent=caller, optimize="n" not in flags)
            leg.app, leg.app_data, leg.dialler = "AppDial", "(Outgoing Line)", caller
            if keep_caller_id:  # app_dial.c: its extension, o, the connected line from the caller (R3)
                leg.exten = caller.exten
                pbx.set_parties(leg, citizen, citizen)
            else:  # app_queue (S1, S2)
                pbx.set_caller(leg, *citizen)
            pbx.set_parties(two, citizen, citizen)
            pbx.local_call(leg, two)
            caller.owner_of.append(leg)
            await pbx.race_point()
            pbx.emit("DialBegin", "call", caller.fields() + leg.fields("Dest") + [("DialString", target[6:])])
            legs.append((leg, member, LocalAnswer(leg)))
            continue
        device, phone = resolve(pbx, target)
        own = (phone.caller_number, phone.caller_name or UNKNOWN) if phone and phone.caller_number else None
        leg = pbx.new_channel(device, state=0, context=phone.context if phone else "default", exten="s",
                              linkedid=caller.linkedid, caller=own or (UNKNOWN, UNKNOWN))
        pbx.inherit(caller, leg)
        leg.app, leg.app_data = ("AppQueue" if queue is not None else "AppDial"), "(Outgoing Line)"
        leg.dialler = caller
        caller.owner_of.append(leg)
        if keep_caller_id:  # Dial's o: the caller's own number, shown with the connected line at once (P5)
            leg.exten = caller.exten
            pbx.set_parties(leg, citizen, citizen)
        elif own is None:  # no callerid= on the endpoint: the extension dialled (P5's lab phones)
            pbx.set_caller(leg, caller.exten, UNKNOWN)
        if queue is not None and member is not None:
            pbx.emit("AgentCalled", "agent", caller.fields() + leg.fields("Dest") + [
                ("Queue", queue.name), ("Interface", member.interface), ("MemberName", member.name)])
        where = (leg.context, leg.exten, leg.priority)
        if predial is not None:
            predial(leg)
        if keep_caller_id:
            await pbx.race_point()  # another thread's work lands between the new channel and DialBegin (P5)
        pbx.emit("DialBegin", "call", caller.fields() + leg.fields("Dest") +
                 [("DialString", dial_string(target) if dial_string else target)])
        leg.context, leg.exten, leg.priority = where  # after b()'s Return, seen from the next snapshot on (X2b)
        legs.append((leg, member, phone))
    started = time.monotonic()
    single = len(legs) == 1
    for leg, _, phone in legs:
        if isinstance(phone, LocalAnswer):
            continue  # a Local channel's ;1 rings only when its ;2's side does
        if single and not ignore_connected:  # the one leg's number is the caller's connected line (X2, X3)
            pbx.update_connected(caller, (leg.caller_number, leg.caller_name))
        if not keep_caller_id:
            leg.exten = caller.exten
        dial_state = caller.fields() + leg.fields("Dest") + [("DialStatus", "RINGING")]
        queue_first = queue is not None and pbx.races.dial_state_first
        if queue_first:
            pbx.emit("DialState", "call", dial_state)
        leg.state = RINGING
        if not keep_caller_id:  # app_queue: the member is shown the caller
            leg.connected_number, leg.connected_name = citizen
        pbx.event("Newstate", leg)
        if not keep_caller_id:
            pbx.event("NewConnectedLine", leg)
        pbx.refresh_device(leg.device)
        local = pbx.indicate_ringing(caller)
        if not queue_first:
            pbx.emit("DialState", "call", caller.fields() + leg.fields("Dest") + [("DialStatus", "RINGING")])
        if local is not None:
            pbx.dial_state(local, "RINGING")
    answers = {pbx.spawn(phone.wait_answer(leg.name, pbx.sleep)): (leg, member)
               for leg, member, phone in legs if phone is not None}
    waiting = set(answers)
    winner: tuple[Channel, _M] | None = None
    try:
        while waiting and winner is None:
            limit = timeout if timeout is not None else (queue.timeout if queue else None)
            done, waiting = await _first(pbx, caller, waiting, limit)
            if not done:
                break
            winner = answers[next(iter(done))]
    except (ChannelGone, Moved):
        for task in answers:
            task.cancel()
        _cancel_all(pbx, caller, legs, ringall=queue is not None and queue.strategy == "ringall")
        await _drop(pbx, [leg for leg, _, _ in legs], cause=0 if not caller.alive else 16)
        raise
    for task in answers:
        task.cancel()
    rang = (time.monotonic() - started) / pbx.scale
    if winner is None:
        for leg, _, _ in legs:
            pbx.emit("DialEnd", "call", caller.fields() + leg.fields("Dest") + [("DialStatus", "NOANSWER")])
        await _drop(pbx, [leg for leg, _, _ in legs], cause=19)
        return None
    leg, member = winner
    if leg.state != UP:
        pbx.set_state(leg, UP, device=queue is None)
    pbx.emit("DialEnd", "call", caller.fields() + leg.fields("Dest") + [("DialStatus", "ANSWER")])
    losers = [other for other, _, _ in legs if other is not leg]
    ringall = queue is not None and queue.strategy == "ringall"
    for other in losers:
        pbx.emit("DialEnd", "call", caller.fields() + other.fields("Dest") + [("DialStatus", "CANCEL")])
    if not single and not ignore_connected:  # the update held back while several rang: the answerer's
        pbx.update_connected(caller, (leg.caller_number, leg.caller_name))
    if ringall:  # app_queue reports a cancelled ringall leg twice (P5, S1, S2)
        for other in losers:
            pbx.emit("DialEnd", "call", caller.fields() + other.fields("Dest") + [("DialStatus", "CANCEL")])
    pbx.losers[caller.name] = losers
    return leg, member, rang


class LocalAnswer:
    """The 'phone' behind a Local channel's ;1: it answers when its ;2 is answered."""

    def __init__(self, one: Channel) -> None:
        self.one = one

    async def wait_answer(self, channel: str, sleep: Callable[[float], Awaitable[None]]) -> bool:
        await self.one.answered.wait()
        return True


async def hang_up_losers(pbx: Pbx, caller: Channel) -> None:
    for other in pbx.losers.pop(caller.name, []):
        await pbx.hangup(other, 26)


async def _first(pbx: Pbx, caller: Channel, waiting: set[asyncio.Task[bool]],
                 limit: float | None) -> tuple[set[asyncio.Task[bool]], set[asyncio.Task[bool]]]:
    gone = asyncio.ensure_future(caller.gone.wait())
    if caller.moved is None:
        caller.moved = asyncio.get_running_loop().create_future()
    try:
        watched: set[asyncio.Future[Any]] = {gone, caller.moved}
        done, pending = await asyncio.wait(waiting | watched,
                                           timeout=None if limit is None else limit * pbx.scale,
                                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    pbx.check(caller)
    return {t for t in done if t in waiting}, {t for t in pending if t in waiting}


def _cancel_all(pbx: Pbx, caller: Channel, legs: Sequence[tuple[Channel, object, object]], ringall: bool) -> None:
    for leg, _, _ in legs:
        pbx.emit("DialEnd", "call", caller.fields() + leg.fields("Dest") + [("DialStatus", "CANCEL")])
    if ringall:
        for leg, _, _ in legs:
            pbx.emit("DialEnd", "call", caller.fields() + leg.fields("Dest") + [("DialStatus", "CANCEL")])


async def _drop(pbx: Pbx, legs: list[Channel], cause: int) -> None:
    for leg in legs:
        if leg.alive:
            await pbx.hangup(leg, cause)


async def dial(pbx: Pbx, caller: Channel, targets: list[str], timeout: float, *, options: str = "o",
               features: bool = True, gosub: Callable[[Channel], None] | None = None,
               predial: Predial | None = None, data: str = "") -> Channel | None:
    """Dial(targets,timeout,options): ring every target; bridge the first to answer.

    ``options``: o (the legs show the caller's own number), I (no connected-line update from the legs
    reaches the caller); ``gosub`` is U() (on the answered leg), ``predial`` b() (on each new leg before it
    is called); ``data`` is the application's argument as the channel list shows it (R3).
    ``features``: the t/T options arm transfer feature codes, so Asterisk keeps the
    media in the core (simple_bridge); without them two SIP legs soon bridge
    natively (native_rtp, P5's emergency leg)."""
    caller.app, caller.app_data = "Dial", data or "&".join(targets)
    result = await ring(pbx, caller, [(t, None) for t in targets], None, timeout=timeout,
                        keep_caller_id="o" in options, ignore_connected="I" in options, predial=predial,
                        dial_string=lambda device: device.split("/", 1)[1])
    if result is None:
        caller.variables["DIALSTATUS"] = "NOANSWER"
        return None
    leg = result[0]
    caller.variables["DIALSTATUS"] = "ANSWER"
    if caller.state != UP:  # Dial answers its caller (X2: the consultation call's ;2, then its ;1)
        pbx.set_state(caller, UP)
    if gosub is not None:  # Dial's U(): on the answered leg, before it is bridged
        gosub(leg)
    bridge = pbx.new_bridge()
    if not features and leg.name.startswith("PJSIP/") and caller.name.startswith("PJSIP/"):
        bridge.native_after = time.monotonic() + 1.0 * pbx.scale
    leg.exten = ""
    pbx.enter_bridge(leg, bridge)
    await hang_up_losers(pbx, caller)
    pbx.enter_bridge(caller, bridge)
    await pbx.stay_bridged(caller)
    return leg


Bridge = Bridge  # re-exported for type hints in dialplans
