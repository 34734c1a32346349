"""The call tracker: AMI events in, call state and domain events out. Pure: no IO.

A *call* is everything sharing Asterisk's ``Linkedid``; channels are keyed by
``Uniqueid``. Only the hotline's own calls are recorded:

- **inbound**: a channel arrives in one of the inbound contexts (the carrier
  trunk's context). That channel is the *citizen's leg*: it is what the queue,
  the bridges and the transfers act on, and the call ends when it hangs up.
- **outbound**: a channel runs the dialplan in one of the outbound contexts (the
  callback context); the phone it dials is the citizen's leg.

Every other channel is followed silently (an agent phone calling another, the
far ends of a lab's loop) so that it can join a hotline call later, for example
as the third party of a conference, without becoming a record of its own.

Transfers keep one record: Asterisk keeps the Linkedid across blind, attended
and redirect transfers, and the citizen's leg stays the same channel.

After a (re)connect the ``CoreShowChannels`` list is all there is: no event
repeats the state of a live call (trace R3). By then the shipped dialplan has
moved the citizen out of the inbound context (``cti-next``, ``cti-queue``,
``emergency``, ``conference``…), so a listed channel is taken for a citizen's
leg when it is its call's first channel (Uniqueid = Linkedid), not a Local
half, and sits in an inbound or one of the *hotline contexts*. A call that
began and ended while the link was down is known only from its FastAGI route
request: it is recorded from that, estimated.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from cti.ami.message import AmiMessage
from cti.calls.channels import NUMBER_LIMIT, UNKNOWN_CALLER, device_of, is_local_outward_half, printable
from cti.calls.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallOffered,
    CallQueued,
    CallTransferred,
    LegEnded,
    LegRinging,
    RecordingStarted,
    RouteDecided,
    TransferFailed,
)
from cti.calls.record import CallRecord, Leg, LiveCall, Transfer

# Linkedids of finished calls remembered, so late events of their remaining
# channels never start a second record for the same call.
FINISHED_MEMORY = 4096
# Notes (route decisions) for channels the tracker has not seen yet: the AGI
# request and the AMI Newchannel travel on different sockets.
PENDING_NOTES = 1024
# Where the shipped dialplan (asterisk-conf/extensions.conf) takes an inbound call after [from-carrier].
HOTLINE_CONTEXTS = ("cti-next", "cti-queue", "emergency", "cti-seat", "conference")
ENDED_UNSEEN = "began and ended while the AMI link was down"
UP_STATE = "6"  # ChannelState of a channel that is up (answered)

NoteFactory = Callable[[str], CallEvent]  # linkedid -> the event to put in that call's timeline
Names = Callable[[str], str]  # device -> the name of the agent or seat behind it ("" if none)


def _no_names(device: str) -> str:
    return ""


@dataclass(slots=True)
class _Pending:
    """Notes for a channel not seen yet; ``unseen`` when they came while the link was down."""

    linkedid: str
    makes: list[NoteFactory]
    unseen: bool


@dataclass(slots=True)
class Channel:
    uniqueid: str
    name: str
    linkedid: str
    context: str
    exten: str
    caller_number: str = ""
    caller_name: str = ""
    bridge: str = ""
    bridged_at: tuple[str, str] = ("", "")  # (context, exten) when it entered its bridge

    @classmethod
    def from_message(cls, message: AmiMessage) -> Channel:
        """From a Newchannel event or a CoreShowChannel list item (which also gives its BridgeId)."""
        f = message.fields
        channel = cls(
            uniqueid=f.get("uniqueid", ""), name=f.get("channel", ""), linkedid=f.get("linkedid", ""),
            context=f.get("context", ""), exten=f.get("exten", ""),
            caller_number=printable(f.get("calleridnum", ""), NUMBER_LIMIT),
            caller_name=printable(f.get("calleridname", "")), bridge=f.get("bridgeid", ""),
        )
        if channel.bridge:
            channel.bridged_at = (channel.context, channel.exten)
        return channel


@dataclass(slots=True)
class _Leg:
    """A device rung for the call; a queue rings a member again after each timeout: one leg,
    its attempts counted."""

    device: str
    name: str
    channel: str  # the latest channel that rang it
    rang_at: float
    via_queue: bool = False
    outcome: str = "ringing"
    ended_at: float | None = None
    attempts: int = 1


@dataclass(slots=True)
class Call:
    """The mutable state of one call in progress."""

    linkedid: str
    direction: str
    anchor: str  # uniqueid whose hangup ends the call
    citizen: str  # uniqueid of the citizen's leg ("" until an outbound call dials)
    caller_number: str
    caller_name: str
    dialled_number: str
    arrived_at: float
    offered: bool = False
    unit: str = ""
    unit_id: str = ""
    treatment: str = ""
    queue: str = ""
    queued_at: float | None = None
    answered_at: float | None = None
    answered_by: str = ""
    answered_by_name: str = ""
    answered_channel: str = ""  # uniqueid of the answering leg
    answered_channel_name: str = ""
    queue_wait: float | None = None
    talk_time: float | None = None
    legs: dict[str, _Leg] = field(default_factory=dict)  # by device
    rung: dict[str, str] = field(default_factory=dict)  # uniqueid of a rung channel -> its device
    transfers: list[Transfer] = field(default_factory=list)
    expected_moves: dict[str, tuple[str, str]] = field(default_factory=dict)
    conference_seen: set[str] = field(default_factory=set)
    recording: str = ""  # the file, once Asterisk reports MixMonitorStart for one of the call's legs
    requested_recording: str = ""  # the file the dialplan records into, from the route decision
    estimated: bool = False
    citizen_hangup: tuple[int | None, str] | None = None  # outbound: the dialled citizen's own cause
    shutdown: bool = False  # Asterisk hung the citizen up as it shut down (SoftHangupRequest Cause 4)
    handing_over: int | None = None  # index of a blind transfer or redirect whose Dial is still to tell
    handover_dial: str = ""  # uniqueid of the leg that Dial rings
    dialled_out: tuple[str, str] = ("", "")  # the last leg dialled after the answer: (device, number it is shown)
    timeline: list[CallEvent] = field(default_factory=list)


class CallTracker:
    """Feed AMI events in stream order; collect domain events and finished records."""

    def __init__(self, inbound_contexts: tuple[str, ...] = ("from-carrier",),
                 outbound_contexts: tuple[str, ...] = ("callback",), *,
                 hotline_contexts: tuple[str, ...] = HOTLINE_CONTEXTS, names: Names = _no_names) -> None:
        self.inbound_contexts = frozenset(inbound_contexts)
        self.outbound_contexts = frozenset(outbound_contexts)
        self.citizen_contexts = self.inbound_contexts | frozenset(hotline_contexts)
        self.names = names
        self.channels: dict[str, Channel] = {}
        self.calls: dict[str, Call] = {}
        self.bridges: dict[str, set[str]] = {}
        self.finished: list[CallRecord] = []
        self._events: list[CallEvent] = []
        self._done: OrderedDict[str, None] = OrderedDict()
        self._snapshot: list[AmiMessage] | None = None
        self._pending_notes: OrderedDict[str, _Pending] = OrderedDict()
        self._blind = True  # from a link loss (or the start) until a channel list is asked for
        self.unrouted: list[str] = []  # Linkedids of calls rebuilt without knowing what was dialled
        self._handlers = {
            "Newchannel": self._newchannel,
            "NewCallerid": self._newcallerid,
            "QueueCallerJoin": self._queue_join,
            "QueueCallerAbandon": self._queue_abandon,
            "AgentCalled": self._agent_called,
            "DialBegin": self._dial_begin,
            "DialEnd": self._dial_end,
            "AgentConnect": self._agent_connect,
            "AgentComplete": self._agent_complete,
            "BridgeEnter": self._bridge_enter,
            "BridgeLeave": self._bridge_leave,
            "BlindTransfer": self._blind_transfer,
            "AttendedTransfer": self._attended_transfer,
            "VarSet": self._varset,
            "MixMonitorStart": self._mixmonitor_start,
            "SoftHangupRequest": self._soft_hangup,
            "Hangup": self._hangup,
            "QueueEntry": self._queue_entry,
            "CoreShowChannel": self._snapshot_item,
            "CoreShowChannelsComplete": self._snapshot_complete,
        }

    # -- public API -----------------------------------------------------------

    def feed(self, message: AmiMessage, at: float) -> list[CallEvent]:
        """Apply one AMI message; return the domain events it caused."""
        if message.kind != "event":
            return []
        uniqueid = message.peek("Uniqueid")  # most events are not about a tracked channel: do not parse them
        if uniqueid is not None and message.name != "CoreShowChannel":
            channel = self.channels.get(uniqueid)
            if channel is not None:
                self._update_channel(channel, message, at)
        handler = self._handlers.get(message.name)
        if handler is not None:
            handler(message, at)
        return self.drain()

    def drain(self) -> list[CallEvent]:
        events, self._events = self._events, []
        return events

    def take_finished(self) -> list[CallRecord]:
        finished, self.finished = self.finished, []
        return finished

    def note(self, uniqueid: str, linkedid: str, make: NoteFactory) -> list[CallEvent]:
        """Put an event from outside AMI (a route decision, an IVR outcome) into the
        timeline of the call that channel ``uniqueid`` belongs to, now or once seen."""
        channel = self.channels.get(uniqueid)
        call = self.calls.get(channel.linkedid if channel else linkedid)
        if call is None:
            pending = self._pending_notes.setdefault(uniqueid, _Pending(linkedid, [], self._blind))
            pending.makes.append(make)
            if len(self._pending_notes) > PENDING_NOTES:
                self._pending_notes.popitem(last=False)
            return []
        self._apply_note(call, make(call.linkedid))
        return self.drain()

    def _apply_note(self, call: Call, event: CallEvent) -> None:
        if isinstance(event, RouteDecided):
            call.unit, call.unit_id, call.treatment = event.unit, event.unit_id, event.treatment
            call.dialled_number = call.dialled_number or event.number
            call.requested_recording = call.requested_recording or event.recording
            if call.linkedid in self.unrouted:
                self.unrouted.remove(call.linkedid)
        self._emit(call, event)

    def live(self, linkedid: str) -> LiveCall | None:
        """A snapshot of a call in progress, or None."""
        call = self.calls.get(linkedid)
        if call is None:
            return None
        citizen = self.channels.get(call.citizen)
        agent = self.channels.get(call.answered_channel)
        return LiveCall(
            linkedid=call.linkedid, direction=call.direction, caller_number=call.caller_number,
            caller_name=call.caller_name, dialled_number=call.dialled_number, unit=call.unit, unit_id=call.unit_id,
            treatment=call.treatment, arrived_at=call.arrived_at, queue=call.queue, answered_at=call.answered_at,
            answered_by=call.answered_by, citizen_channel=citizen.name if citizen else "",
            agent_channel=agent.name if agent else "",
        )

    def live_calls(self) -> list[LiveCall]:
        return [call for linkedid in list(self.calls) if (call := self.live(linkedid)) is not None]

    def link_lost(self, at: float) -> None:
        """The AMI link dropped: events from now until the next channel list are lost."""
        self._snapshot = None
        self._blind = True

    def listing_requested(self) -> None:
        """A CoreShowChannels list has been asked for: any channel that exists now will be in it, so
        notes from now on are not for calls that came and went unseen."""
        self._blind = False

    # -- channel identity and location ------------------------------------------

    def _update_channel(self, channel: Channel, message: AmiMessage, at: float) -> None:
        context = message.peek("Context")
        if context is None or context == channel.context:
            return
        channel.context = context
        channel.exten = message.peek("Exten") or channel.exten
        if context in self.outbound_contexts and self._is_new(channel.linkedid):
            self._start_outbound(channel, at)

    def _newchannel(self, message: AmiMessage, at: float) -> None:
        channel = Channel.from_message(message)
        if not channel.uniqueid:
            return
        self.channels[channel.uniqueid] = channel
        # a call from the carrier arrives ringing; a channel cti or the dialplan places towards the
        # carrier (a callback, an emergency leg) is created Down in the same context: not inbound
        if self._is_inbound_leg(channel) and message.fields.get("channelstate") != "0":
            self._start_inbound(channel, at)
        elif channel.context in self.outbound_contexts and self._is_new(channel.linkedid):
            self._start_outbound(channel, at)

    def _is_new(self, linkedid: str) -> bool:
        """No call, running or finished, has this Linkedid yet."""
        return linkedid not in self.calls and linkedid not in self._done

    def _is_inbound_leg(self, channel: Channel) -> bool:
        return (channel.context in self.inbound_contexts and self._is_new(channel.linkedid)
                and not is_local_outward_half(channel.name))

    def _start_inbound(self, channel: Channel, at: float) -> Call:
        call = Call(
            linkedid=channel.linkedid, direction="inbound", anchor=channel.uniqueid,
            citizen=channel.uniqueid, caller_number=_known(channel.caller_number),
            caller_name=_known(channel.caller_name), dialled_number=channel.exten, arrived_at=at,
        )
        self.calls[call.linkedid] = call
        if call.caller_number:
            self._offer(call, at)
        pending = self._pending_notes.pop(channel.uniqueid, None)
        if pending is not None and not call.offered:
            self._offer(call, at)
        for make in pending.makes if pending is not None else ():
            self._apply_note(call, make(call.linkedid))
        return call

    def _start_outbound(self, channel: Channel, at: float) -> None:
        """A channel runs the callback dialplan: a call the hotline places to a citizen."""
        call = Call(
            linkedid=channel.linkedid, direction="outbound", anchor=channel.uniqueid, citizen="",
            caller_number=_known(channel.caller_number), caller_name=_known(channel.caller_name),
            dialled_number=channel.exten, arrived_at=at,
            answered_by=device_of(channel.name), answered_channel=channel.uniqueid,
            answered_channel_name=channel.name,
        )
        self.calls[call.linkedid] = call
        self._offer(call, at)

    def _offer(self, call: Call, at: float) -> None:
        call.offered = True
        anchor = self.channels.get(call.anchor)
        self._emit(call, CallOffered(
            call.linkedid, call.arrived_at, call.direction, call.caller_number, call.caller_name,
            call.dialled_number, anchor.name if anchor else "",
        ))

    def _call_for(self, message: AmiMessage, at: float) -> Call | None:
        """The call this message is about, offering it first if it is still unannounced."""
        call = self.calls.get(message.fields.get("linkedid", ""))
        if call is not None and not call.offered:
            self._offer(call, at)
        return call

    def _newcallerid(self, message: AmiMessage, at: float) -> None:
        channel = self.channels.get(message.fields.get("uniqueid", ""))
        if channel is None:
            return
        number = printable(message.fields.get("calleridnum", ""), NUMBER_LIMIT)
        name = printable(message.fields.get("calleridname", ""))
        if number not in UNKNOWN_CALLER:
            channel.caller_number = number
        if name not in UNKNOWN_CALLER:
            channel.caller_name = name
        call = self.calls.get(channel.linkedid)
        if call is None or call.citizen != channel.uniqueid or call.direction != "inbound":
            return
        if call.answered_at is None:
            call.caller_number = _known(channel.caller_number) or call.caller_number
            call.caller_name = _known(channel.caller_name) or call.caller_name
        if not call.offered and call.caller_number:
            self._offer(call, at)

    # -- queue and ringing ----------------------------------------------------------

    def _queue_join(self, message: AmiMessage, at: float) -> None:
        call = self._call_for(message, at)
        if call is None or message.fields.get("uniqueid") != call.citizen:
            return
        call.queue = message.fields.get("queue", "")
        call.queued_at = at
        self._emit(call, CallQueued(call.linkedid, at, call.queue, _int(message.fields.get("position"))))

    def _queue_entry(self, message: AmiMessage, at: float) -> None:
        """A QueueStatus item: a caller waiting in a queue (the citizen, or a parallel ring's Local ;2
        leg with the citizen's number, trace R3). A rebuilt call learns its queue and when it joined."""
        f = message.fields
        channel = self.channels.get(f.get("uniqueid", ""))
        call = self.calls.get(channel.linkedid) if channel is not None else None
        if call is not None and not call.queue:
            call.queue = f.get("queue", "")
            call.queued_at = at - float(_int(f.get("wait")))

    def _queue_abandon(self, message: AmiMessage, at: float) -> None:
        call = self._call_for(message, at)
        if call is not None:
            call.queue_wait = _float(message.fields.get("holdtime"))

    def _agent_called(self, message: AmiMessage, at: float) -> None:
        call = self._call_for(message, at)
        if call is None:
            return
        f = message.fields
        self._ring(call, at, f.get("destuniqueid", ""), f.get("destchannel", ""),
                   f.get("interface", ""), f.get("membername", ""), via_queue=True)

    def _dial_begin(self, message: AmiMessage, at: float) -> None:
        f = message.fields
        source = f.get("uniqueid", "")
        dest = f.get("destuniqueid", "")
        call = self._call_for(message, at)
        if call is None or not dest:
            return
        if call.direction == "outbound" and source == call.anchor and not call.citizen:
            call.citizen = dest  # the callback rings the citizen
            call.dialled_number = f.get("destexten") or call.dialled_number
            return
        if source == call.citizen and call.answered_at is None:
            self._ring(call, at, dest, f.get("destchannel", ""), device_of(f.get("destchannel", "")), "")
            return
        if call.answered_at is None:
            return
        # after the answer: a line dialled for a transfer (from the citizen's leg, or an attended transfer's
        # consultation leg), shown as the caller what its connected line says (PJSIP's From and PAI)
        call.dialled_out = (device_of(f.get("destchannel", "")), _known(f.get("destconnectedlinenum", "")))
        if source == call.citizen and call.handing_over is not None and not call.handover_dial:
            call.handover_dial = dest  # the citizen, handed over, now dials where it was sent
            self._settle(call, "", *call.dialled_out)

    def _ring(self, call: Call, at: float, dest: str, channel: str, device: str, name: str,
              via_queue: bool = False) -> None:
        if not dest or dest in call.rung:
            return
        name = name or self.names(device)
        call.rung[dest] = device
        leg = call.legs.get(device)
        if leg is None:
            call.legs[device] = _Leg(device=device, name=name, channel=channel, rang_at=at, via_queue=via_queue)
        else:  # rung again (the queue's retry): the same leg, one more attempt
            leg.channel, leg.outcome, leg.ended_at = channel, "ringing", None
            leg.attempts += 1
        self._emit(call, LegRinging(call.linkedid, at, device, name, channel))

    def _leg(self, call: Call, uniqueid: str) -> _Leg | None:
        """The leg a rung channel belongs to."""
        device = call.rung.get(uniqueid)
        return call.legs.get(device) if device is not None else None

    def _dial_end(self, message: AmiMessage, at: float) -> None:
        call = self._call_for(message, at)
        if call is None:
            return
        f = message.fields
        dest = f.get("destuniqueid", "")
        status = f.get("dialstatus", "").lower()
        if call.handing_over is not None and dest == call.handover_dial and status:
            self._settle(call, "answered" if status == "answer" else status, at=at)
            return
        if call.direction == "outbound" and dest == call.citizen:
            if status == "answer" and call.answered_at is None:
                call.answered_at = at
                anchor = self.channels.get(call.anchor)
                self._emit(call, CallAnswered(call.linkedid, at, call.answered_by, "",
                                              anchor.name if anchor else "", None))
            return
        leg = self._leg(call, dest)
        if leg is None or leg.outcome != "ringing" or leg.channel != f.get("destchannel", leg.channel):
            return  # Asterisk reports a cancelled ringall leg twice
        self._end_leg(call, leg, "answered" if status == "answer" else status, at)
        if leg.outcome == "answered" and not leg.via_queue:
            self._answer(call, at, dest, leg.device, leg.name, leg.channel)

    def _agent_connect(self, message: AmiMessage, at: float) -> None:
        call = self._call_for(message, at)
        if call is None:
            return
        f = message.fields
        call.queue_wait = _float(f.get("holdtime"))
        self._answer(call, at, f.get("destuniqueid", ""), f.get("interface", ""),
                     f.get("membername", ""), f.get("destchannel", ""))

    def _answer(self, call: Call, at: float, uniqueid: str, device: str, name: str, channel: str) -> None:
        if call.answered_at is not None:
            return
        call.answered_at = at
        call.answered_by, call.answered_by_name = device, name or self.names(device)
        call.answered_channel, call.answered_channel_name = uniqueid, channel
        if call.queue_wait is None and call.queued_at is not None:
            call.queue_wait = round(at - call.queued_at, 3)
        self._emit(call, CallAnswered(call.linkedid, at, device, name, channel, call.queue_wait))

    def _agent_complete(self, message: AmiMessage, at: float) -> None:
        call = self._call_for(message, at)
        if call is not None and call.talk_time is None:
            call.talk_time = _float(message.fields.get("talktime"))

    # -- bridges, transfers, recordings --------------------------------------------------

    def _bridge_enter(self, message: AmiMessage, at: float) -> None:
        f = message.fields
        bridge, uniqueid = f.get("bridgeuniqueid", ""), f.get("uniqueid", "")
        channel = self.channels.get(uniqueid)
        if channel is None or not bridge:
            return
        channel.bridge = bridge
        channel.bridged_at = (f.get("context", ""), f.get("exten", ""))
        members = self.bridges.setdefault(bridge, set())
        members.add(uniqueid)
        call = self.calls.get(channel.linkedid)
        if call is not None and call.handing_over is not None and call.citizen in members and len(members) > 1:
            self._settle(call, "answered")  # handed over, the citizen is talking to someone again
        if len(members) >= 3:
            self._conference(members, at)

    def _conference(self, members: set[str], at: float) -> None:
        """Three or more parties in one bridge with a citizen: a three-way call (三方通话)."""
        for uniqueid in members:
            channel = self.channels.get(uniqueid)
            call = self.calls.get(channel.linkedid) if channel else None
            if call is None or call.citizen != uniqueid or call.answered_at is None:
                continue
            for other in sorted(members - {uniqueid, call.answered_channel} - call.conference_seen):
                call.conference_seen.add(other)
                joined = self.channels[other].name
                self._transfer(call, at, "conference", device_of(joined), "", joined)

    def _bridge_leave(self, message: AmiMessage, at: float) -> None:
        f = message.fields
        uniqueid = f.get("uniqueid", "")
        members = self.bridges.get(f.get("bridgeuniqueid", ""))
        if members is not None:
            members.discard(uniqueid)
            if not members:
                del self.bridges[f["bridgeuniqueid"]]
        channel = self.channels.get(uniqueid)
        if channel is None:
            return
        call = self.calls.get(channel.linkedid)
        location = (f.get("context", ""), f.get("exten", ""))
        if (call is not None and uniqueid == call.citizen and call.answered_at is not None
                and location != channel.bridged_at):
            self._moved_out_of_bridge(call, channel, location, at)
        channel.bridge, channel.bridged_at = "", ("", "")

    def _moved_out_of_bridge(self, call: Call, channel: Channel, location: tuple[str, str], at: float) -> None:
        """The citizen's leg left its bridge for another place in the dialplan.

        A blind transfer announced that move beforehand; any other move is an AMI
        Redirect, for which Asterisk sends no event of its own. BridgeLeave is
        trusted here, not every event's channel snapshot: Asterisk sends some
        events (a VarSet, say) from a snapshot taken before the move."""
        if call.expected_moves.pop(channel.uniqueid, None) == location:
            return
        self._transfer(call, at, "redirect", location[1], "", channel.name)

    def _blind_transfer(self, message: AmiMessage, at: float) -> None:
        f = message.fields
        call = self.calls.get(f.get("transfereelinkedid", "")) or self.calls.get(f.get("transfererlinkedid", ""))
        if call is None:
            return
        target = f.get("extension", "")
        if f.get("result") != "Success":
            self._emit(call, TransferFailed(call.linkedid, at, "blind", target, f.get("result", "")))
            return
        transferee = f.get("transfereeuniqueid", "")
        call.expected_moves[transferee] = (f.get("context", ""), target)
        self._transfer(call, at, "blind", target, f.get("transfererchannel", ""), f.get("transfereechannel", ""))

    def _attended_transfer(self, message: AmiMessage, at: float) -> None:
        f = message.fields
        call = self.calls.get(f.get("transfereelinkedid", "")) or self.calls.get(
            f.get("origtransfererlinkedid", ""))
        if call is None:
            return
        # The consultation leg's number: the target channel's own extension, or,
        # when the target is a trunk leg still at "s", what the agent dialled.
        target = f.get("transfertargetexten", "")
        if target in ("", "s"):
            target = f.get("secondtransfererexten", "")
        if f.get("result") != "Success":
            self._emit(call, TransferFailed(call.linkedid, at, "attended", target, f.get("result", "")))
            return
        self._transfer(call, at, "attended", target, f.get("origtransfererchannel", ""),
                       f.get("transfereechannel", ""))

    def _transfer(self, call: Call, at: float, kind: str, target: str, transferer: str, transferee: str) -> None:
        """An attended transfer or a third party in the room has reached its target already; a blind transfer
        or a redirect sends the citizen into the dialplan, and the Dial that follows tells how it went."""
        settled = kind in ("attended", "conference")
        reached, presented = call.dialled_out if kind == "attended" else ("", "")  # the consultation call
        call.transfers.append(Transfer(kind, target, at, transferer, transferee, "answered" if settled else "",
                                       reached, presented))
        if not settled:
            call.handing_over, call.handover_dial = len(call.transfers) - 1, ""
        self._emit(call, CallTransferred(call.linkedid, at, kind, target, transferer, transferee))

    def _settle(self, call: Call, outcome: str, reached: str = "", presented: str = "",
                at: float | None = None) -> None:
        """What came of the pending blind transfer or redirect (reached: where its Dial rings, shown
        ``presented`` as the caller)."""
        index = call.handing_over
        if index is None:
            return
        transfer = call.transfers[index]
        call.transfers[index] = dataclasses.replace(transfer, outcome=outcome or transfer.outcome,
                                                    reached=reached or transfer.reached,
                                                    presented=presented or transfer.presented)
        if outcome:
            call.handing_over = None
            if outcome != "answered":
                self._emit(call, TransferFailed(call.linkedid, transfer.at if at is None else at, transfer.kind,
                                                transfer.target, outcome))

    def _mixmonitor_start(self, message: AmiMessage, at: float) -> None:
        """The dialplan started recording on the leg that answered (MixMonitorStart names no file:
        the route decision did)."""
        call = self._call_for(message, at)
        if call is not None and call.requested_recording and not call.recording:
            call.recording = call.requested_recording
            self._emit(call, RecordingStarted(call.linkedid, at, call.recording))

    def _varset(self, message: AmiMessage, at: float) -> None:
        if message.peek("Variable") != "MIXMONITOR_FILENAME":
            return
        f = message.fields
        call = self._call_for(message, at)
        if call is not None and not call.recording:
            call.recording = f.get("value", "")
            self._emit(call, RecordingStarted(call.linkedid, at, call.recording))

    # -- the end of a call -------------------------------------------------------------

    def _hangup(self, message: AmiMessage, at: float) -> None:
        f = message.fields
        uniqueid = f.get("uniqueid", "")
        channel = self.channels.pop(uniqueid, None)
        if channel is None:
            return
        self._leave_bridge(channel)
        call = self.calls.get(channel.linkedid)
        if call is None:
            return
        leg = self._leg(call, uniqueid)
        if leg is not None and leg.outcome == "ringing" and leg.channel == channel.name:
            self._end_leg(call, leg, "hangup", at)
        if uniqueid == call.citizen and call.direction == "outbound":
            call.citizen_hangup = (_int_or_none(f.get("cause")), f.get("cause-txt", ""))
        if uniqueid == call.anchor:
            cause = _int_or_none(f.get("cause"))
            self._end(call, at, cause, f.get("cause-txt", ""), estimated=False)

    def _soft_hangup(self, message: AmiMessage, at: float) -> None:
        """Cause 4 is Asterisk's own shutdown (AST_SOFTHANGUP_SHUTDOWN; trace R4a): the citizen did not
        hang up, though app_queue's AgentComplete will say "caller"."""
        if message.fields.get("cause") != "4":
            return
        channel = self.channels.get(message.fields.get("uniqueid", ""))
        call = self.calls.get(channel.linkedid) if channel is not None else None
        if call is not None and channel is not None and channel.uniqueid == call.anchor:
            call.shutdown = True

    def _leave_bridge(self, channel: Channel) -> None:
        if channel.bridge:
            members = self.bridges.get(channel.bridge)
            if members is not None:
                members.discard(channel.uniqueid)
                if not members:
                    del self.bridges[channel.bridge]

    def _end_leg(self, call: Call, leg: _Leg, outcome: str, at: float) -> None:
        leg.outcome, leg.ended_at = outcome, at
        self._emit(call, LegEnded(call.linkedid, at, leg.device, leg.channel, outcome))

    def _end(self, call: Call, at: float, cause: int | None, cause_text: str, estimated: bool) -> None:
        if not call.offered:
            self._offer(call, at)
        for leg in call.legs.values():
            if leg.outcome == "ringing":  # the caller left while it rang
                self._end_leg(call, leg, "hangup", at)
        call.estimated = call.estimated or estimated
        if call.handing_over is not None:  # handed over, and gone before anyone answered: it did not work
            self._settle(call, "failed" if not call.handover_dial else "hangup", at=at)
        if call.shutdown:
            cause_text = f"{cause_text} (Asterisk shut down)" if cause_text else "Asterisk shut down"
        self._emit(call, CallEnded(call.linkedid, at, cause, cause_text, call.answered_at is not None,
                                   estimated))
        del self.calls[call.linkedid]
        self._done[call.linkedid] = None
        if len(self._done) > FINISHED_MEMORY:
            self._done.popitem(last=False)
        self.finished.append(_record(call, at, cause, cause_text))

    # -- resynchronisation after a reconnect -------------------------------------------

    def _snapshot_item(self, message: AmiMessage, at: float) -> None:
        if self._snapshot is None:
            self._snapshot = []
        self._snapshot.append(message)

    def _snapshot_complete(self, message: AmiMessage, at: float) -> None:
        listed, self._snapshot = self._snapshot or [], None
        self.reconcile(listed, at)

    def reconcile(self, listed: list[AmiMessage], at: float) -> None:
        """Bring the state in line with a CoreShowChannels list taken at ``at``.

        Channels that are no longer listed hung up while the link was down: their
        calls end now, marked estimated. Listed channels never seen are calls
        that began meanwhile (or before cti started): they are rebuilt from the
        list, which carries each leg's Linkedid and BridgeId. A route decision
        taken while the link was down for a channel not listed is a call that
        came and went unseen: it is recorded from the decision."""
        present = {m.fields.get("uniqueid", "") for m in listed}
        gone = [self.channels.pop(u) for u in [u for u in self.channels if u not in present]]
        for channel in gone:  # first the legs that stopped ringing while the link was down…
            self._leave_bridge(channel)
            call = self.calls.get(channel.linkedid)
            leg = self._leg(call, channel.uniqueid) if call is not None else None
            if call is not None and leg is not None and leg.outcome == "ringing" and leg.channel == channel.name:
                self._end_leg(call, leg, "gone", at)
        for channel in gone:  # …then the calls whose citizen left
            call = self.calls.get(channel.linkedid)
            if call is not None and channel.uniqueid == call.anchor:
                self._end(call, at, None, "ended while the AMI link was down", estimated=True)
        new = [m for m in listed if m.fields.get("uniqueid") not in self.channels]
        for message in listed:
            self._rebuild_channel(message)
        rebuilt = [self._rebuild_call(m, at) for m in new if self._is_listed_citizen(m)]
        for call in rebuilt:
            self._rebuild_progress(call, [m for m in new if m.fields.get("linkedid") == call.linkedid], at)
        fresh = {call.linkedid for call in rebuilt}
        for call in list(self.calls.values()):  # answered while the link was down
            if (call.linkedid not in fresh and call.direction == "inbound" and call.answered_at is None
                    and self._answered_in_bridge(call, at)):
                call.estimated = True
        self._record_unseen(present, at)
        self._blind = False

    def _rebuild_channel(self, message: AmiMessage) -> None:
        """A listed channel as it is now: new, or moved (another place, another bridge) while unseen."""
        listed = Channel.from_message(message)
        channel = self.channels.get(listed.uniqueid)
        if channel is None:
            channel = self.channels[listed.uniqueid] = listed
        elif (channel.context, channel.exten, channel.bridge) != (listed.context, listed.exten, listed.bridge):
            self._leave_bridge(channel)
            channel.context, channel.exten = listed.context, listed.exten
            channel.bridge, channel.bridged_at = listed.bridge, listed.bridged_at
        if channel.bridge:
            self.bridges.setdefault(channel.bridge, set()).add(channel.uniqueid)

    def _is_listed_citizen(self, message: AmiMessage) -> bool:
        """A listed channel is a citizen's leg when it began its call (its Uniqueid is the call's Linkedid,
        unlike every leg dialled for it), is no Local half, and is where the hotline's dialplan takes
        inbound calls; the lab's handsets and other phones' calls are elsewhere."""
        f = message.fields
        uniqueid, name = f.get("uniqueid", ""), f.get("channel", "")
        return (uniqueid == f.get("linkedid") and not name.startswith("Local/")
                and f.get("context", "") in self.citizen_contexts and self._is_new(uniqueid))

    def _rebuild_call(self, message: AmiMessage, at: float) -> Call:
        channel = self.channels[message.fields.get("uniqueid", "")]
        arrived = at - _duration(message.fields.get("duration", ""))
        call = self._start_inbound(channel, arrived)
        call.estimated = True
        if channel.context not in self.inbound_contexts:  # its exten is now a dialplan step, not the number
            call.dialled_number = next((e.number for e in call.timeline if isinstance(e, RouteDecided)), "")
            if not call.dialled_number:
                self.unrouted.append(call.linkedid)
        return call

    def _rebuild_progress(self, call: Call, listed: list[AmiMessage], at: float) -> None:
        """Where a rebuilt call is: talking (its citizen shares a bridge with another leg), or ringing
        the phones dialled for it (their channels run AppDial or AppQueue and are not up yet)."""
        if self._answered_in_bridge(call, at):
            return
        for message in listed:
            f = message.fields
            if f.get("application") in ("AppDial", "AppQueue") and f.get("channelstate") != UP_STATE:
                name = f.get("channel", "")
                self._ring(call, at, f.get("uniqueid", ""), name, device_of(name), "",
                           via_queue=f.get("application") == "AppQueue")

    def _answered_in_bridge(self, call: Call, at: float) -> bool:
        """The citizen shares a bridge with another leg: that leg answered."""
        citizen = self.channels[call.citizen]
        others = sorted(self.bridges.get(citizen.bridge, set()) - {citizen.uniqueid}) if citizen.bridge else []
        if not others:
            return False
        other = self.channels[others[0]]
        self._answer(call, at, other.uniqueid, device_of(other.name), "", other.name)
        return True

    def _record_unseen(self, listed: set[str], at: float) -> None:
        """Calls whose route cti decided while the link was down, gone before the channel list: their
        only trace is the decision. Recorded as estimated, with what it says (caller, number, time)."""
        for uniqueid in [u for u, p in self._pending_notes.items() if p.unseen and u not in listed]:
            pending = self._pending_notes.pop(uniqueid)
            events = [make(pending.linkedid) for make in pending.makes]
            route = next((e for e in events if isinstance(e, RouteDecided)), None)
            if route is None or not self._is_new(pending.linkedid):
                continue  # a survey's or another flow's note: not a citizen's inbound call
            call = Call(linkedid=pending.linkedid, direction="inbound", anchor=uniqueid, citizen=uniqueid,
                        caller_number=_known(printable(route.caller_number, NUMBER_LIMIT)),
                        caller_name=_known(printable(route.caller_name)),
                        dialled_number=route.number, arrived_at=route.at, estimated=True)
            self.calls[call.linkedid] = call
            self._offer(call, route.at)
            for event in events:
                self._apply_note(call, event)
            self._end(call, at, None, ENDED_UNSEEN, estimated=True)

    def _emit(self, call: Call, event: CallEvent) -> None:
        call.timeline.append(event)
        self._events.append(event)


def _record(call: Call, at: float, cause: int | None, cause_text: str) -> CallRecord:
    if call.citizen_hangup is not None:
        cause, cause_text = call.citizen_hangup
    return CallRecord(
        linkedid=call.linkedid, direction=call.direction, caller_number=call.caller_number,
        caller_name=call.caller_name, dialled_number=call.dialled_number, arrived_at=call.arrived_at,
        ended_at=at, unit=call.unit, unit_id=call.unit_id, treatment=call.treatment, queue=call.queue,
        queued_at=call.queued_at, answered_at=call.answered_at, queue_wait=call.queue_wait,
        talk_time=_talk_time(call, at), answered_by=call.answered_by,
        answered_by_name=call.answered_by_name, answered_channel=call.answered_channel_name,
        transfers=tuple(call.transfers),
        legs=tuple(Leg(leg.device, leg.name, leg.channel, leg.rang_at, leg.outcome, leg.ended_at, leg.attempts)
                   for leg in call.legs.values()),
        hangup_cause=cause, hangup_cause_text=cause_text, recording=_recording(call),
        estimated=call.estimated, timeline=tuple(call.timeline),
    )


def _recording(call: Call) -> str:
    """The recording confirmed by MixMonitorStart; for a call rebuilt already answered (its start
    missed), the file the dialplan was told to record into."""
    if call.recording or not (call.estimated and call.answered_at is not None):
        return call.recording
    return call.requested_recording


def _talk_time(call: Call, ended_at: float) -> float | None:
    """app_queue's TalkTime when the queue reported it before the end; else answer to end (a
    call Dial connected, or a citizen who hung up first on a parallel ring, whose queue leg
    reports only after the citizen's Hangup). Unknown when the end itself is an estimate."""
    if call.talk_time is not None or call.answered_at is None or call.estimated:
        return call.talk_time
    return round(ended_at - call.answered_at, 3)


def _known(value: str) -> str:
    return "" if value in UNKNOWN_CALLER else value


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _duration(value: str) -> float:
    """CoreShowChannel's Duration, ``HH:MM:SS``, in seconds."""
    try:
        hours, minutes, seconds = (int(part) for part in value.split(":"))
    except ValueError:
        return 0.0
    return float(hours * 3600 + minutes * 60 + seconds)
