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


class Queue:
    def __init__(self, pbx: Pbx, name: str, *, strategy: str = "ringall", timeout: float = 15,
                 retry: float = 2, ringinuse: bool = False) -> None:
        self.pbx = pbx
        self.name = name
        self.strategy = strategy
        self.timeout = timeout
        self.retry = retry
        self.ringinuse = ringinuse
        self.members: list[Member] = []
        self.waiting: list[QueueEntry] = []
        self.completed = 0
        self.abandoned = 0
        self.hold_total = 0.0
        self.talk_total = 0.0
        self._last = -1  # rrmemory position
        self._turn = asyncio.Event()  # a member became free
        # app_queue's own devices: Queue:<name> rings while callers wait; Queue:<name>_avail is
        # in use while no member is free (P5)
        pbx.device_states[f"Queue:{name}"] = "NOT_INUSE"
        pbx.device_states[f"Queue:{name}_avail"] = "NOT_INUSE"

    def _queue_devices(self) -> None:
        self.pbx.device_state(f"Queue:{self.name}", "RINGING" if self.waiting else "NOT_INUSE")
        free = any(m.status == 1 and not m.paused for m in self.members)
        self.pbx.device_state(f"Queue:{self.name}_avail", "NOT_INUSE" if free or not self.members else "INUSE")

    # -- members (QueueAdd, QueueRemove, QueuePause) ----------------------------------

    def member(self, interface: str) -> Member | None:
        return next((m for m in self.members if m.interface == interface), None)

    def add(self, interface: str, name: str, paused: bool = False, reason: str = "") -> Member:
        member = Member(interface, name or interface, paused, reason, login_time=int(self.pbx.now()))
        member.status = 1 if self.pbx.device_states.get(interface, "NOT_INUSE") == "NOT_INUSE" else 2
        self.members.append(member)
        self._member_event("QueueMemberAdded", member)
        self._wake()
        return member

    def remove(self, member: Member) -> None:
        self.members.remove(member)
        self._member_event("QueueMemberRemoved", member)

    def pause(self, member: Member, paused: bool, reason: str) -> None:
        member.paused, member.reason = paused, reason if paused else ""
        self._member_event("QueueMemberPause", member)
        if not paused:
            self._wake()

    def device_changed(self, device: str, state: str) -> None:
        member = self.member(device)
        if member is None:
            return
        status = {"NOT_INUSE": 1, "INUSE": 2, "BUSY": 3, "RINGING": 6}.get(state, 1)
        if status != member.status:
            member.status = status
            self._member_event("QueueMemberStatus", member)
            if status == 1:
                self._wake()
            self._queue_devices()

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
        free = [m for m in self.members if not m.paused and (self.ringinuse or m.status == 1)]
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
                  gosub: Callable[[Channel], None] | None = None) -> None:
        """Queue(name,options,,,timeout,,gosub): ``gosub`` runs on the member's leg once connected."""
        pbx = self.pbx
        channel.app, channel.app_data = "Queue", f"{self.name},{options},,,{int(timeout)}"
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
        return sum(1 for m in self.members if not m.paused and (self.ringinuse or m.status == 1))

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
        """The caller talks to a member until one of them leaves; AgentComplete says how it ended."""
        pbx, caller = self.pbx, entry.channel
        agent, member, rang = winner
        held = round((time.monotonic() - entry.joined) / pbx.scale)
        if caller.state != UP:  # a caller still ringing (a Local channel's ;2) is answered on connect
            pbx.set_state(caller, UP)
        pbx.event("MusicOnHoldStop", caller)
        self._leave(entry)
        if entry.gosub is not None:
            entry.gosub(agent)
        pbx.emit("AgentConnect", "agent", caller.fields() + agent.fields("Dest") + [
            ("Queue", self.name), ("Interface", member.interface), ("MemberName", member.name),
            ("HoldTime", str(held)), ("RingTime", str(round(rang)))])
        member.calls_taken += 1
        member.last_call = int(self.pbx.now())
        member.in_call = True
        self.completed += 1
        self.hold_total += held
        started = time.monotonic()
        call = QueueCall(self, caller, agent, member, held, started)
        pbx.queue_calls[caller.name] = call
        bridge = pbx.new_bridge()
        pbx.enter_bridge(agent, bridge)
        pbx.device_state(agent.device, "INUSE")
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


_M = TypeVar("_M", Member, None)  # a queue's targets are its members, Dial's none


async def ring(pbx: Pbx, caller: Channel, targets: list[tuple[str, _M]], queue: Queue | None,
               *, timeout: float | None = None, keep_caller_id: bool = False,
               dial_string: Callable[[str], str] | None = None) -> tuple[Channel, _M, float] | None:
    """Ring every target for ``caller``; return (answered leg, its member, ring seconds) or None."""
    legs: list[tuple[Channel, _M, Phone | LocalAnswer | None]] = []
    phone: Phone | LocalAnswer | None
    for target, member in targets:
        if target.startswith("Local/"):  # Local/exten@context: its ;2 runs there, its ;1 rings here
            exten, _, context = target[len("Local/"):].split("/")[0].partition("@")
            leg, two = pbx.local_pair(context, exten, caller.linkedid, (caller.caller_number, caller.caller_name),
                                      parent=caller)
            leg.app, leg.app_data = "AppDial", "(Outgoing Line)"
            caller.owner_of.append(leg)
            await pbx.race_point()
            pbx.emit("DialBegin", "call", caller.fields() + leg.fields("Dest") + [("DialString", target[6:])])
            legs.append((leg, member, LocalAnswer(leg)))
            continue
        device, phone = resolve(pbx, target)
        leg = pbx.new_channel(device, state=0, context=phone.context if phone else "default", exten="s",
                              linkedid=caller.linkedid)
        pbx.inherit(caller, leg)
        leg.app, leg.app_data = ("AppQueue" if queue is not None else "AppDial"), "(Outgoing Line)"
        caller.owner_of.append(leg)
        if keep_caller_id:  # Dial's o: the caller's own number, shown with the connected line at once (P5)
            leg.exten = caller.exten
            leg.connected_number, leg.connected_name = caller.caller_number, caller.caller_name
            pbx.set_caller(leg, caller.caller_number, caller.caller_name)
            pbx.set_connected(leg, caller.caller_number, caller.caller_name)
        else:
            pbx.set_caller(leg, caller.exten, UNKNOWN)
        if queue is not None and member is not None:
            pbx.emit("AgentCalled", "agent", caller.fields() + leg.fields("Dest") + [
                ("Queue", queue.name), ("Interface", member.interface), ("MemberName", member.name)])
        if keep_caller_id:
            await pbx.race_point()  # another thread's work lands between the new channel and DialBegin (P5)
        pbx.emit("DialBegin", "call", caller.fields() + leg.fields("Dest") +
                 [("DialString", dial_string(target) if dial_string else target)])
        legs.append((leg, member, phone))
    started = time.monotonic()
    for leg, _, phone in legs:
        if isinstance(phone, LocalAnswer):
            continue  # a Local channel's ;1 rings only when its ;2's side does
        if keep_caller_id:  # Dial: the caller sees the leg's (its own) number before the leg rings (P5)
            pbx.set_connected(caller, leg.caller_number, leg.caller_name)
        else:
            leg.exten = caller.exten
        leg.state = RINGING
        leg.connected_number, leg.connected_name = caller.caller_number, caller.caller_name
        pbx.event("Newstate", leg)
        if not keep_caller_id:
            pbx.event("NewConnectedLine", leg)
        pbx.device_state(leg.device, "RINGING")
        pbx.emit("DialState", "call", caller.fields() + leg.fields("Dest") + [("DialStatus", "RINGING")])
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
    if not keep_caller_id:
        pbx.set_connected(caller, leg.caller_number, leg.caller_name)
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


async def dial(pbx: Pbx, caller: Channel, targets: list[str], timeout: float, *,
               features: bool = True, gosub: Callable[[Channel], None] | None = None) -> Channel | None:
    """Dial(…,o): ring every target with the caller's own number; bridge the first to answer.

    ``features``: the t/T options arm transfer feature codes, so Asterisk keeps the
    media in the core (simple_bridge); without them two SIP legs soon bridge
    natively (native_rtp, P5's emergency leg)."""
    caller.app, caller.app_data = "Dial", "&".join(targets)
    result = await ring(pbx, caller, [(t, None) for t in targets], None, timeout=timeout, keep_caller_id=True,
                        dial_string=lambda device: device.split("/", 1)[1])
    if result is None:
        caller.variables["DIALSTATUS"] = "NOANSWER"
        return None
    leg = result[0]
    caller.variables["DIALSTATUS"] = "ANSWER"
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
