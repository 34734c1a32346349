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

from cti.ami.message import AmiMessage
from cti.calls.channels import NUMBER_LIMIT, UNKNOWN_CALLER, device_of, printable
from cti.calls.events import (
    CallAnswered,
    CallEvent,
    CallQueued,
    ListenEnded,
    ListenStarted,
    RecordingStarted,
)
from cti.calls.rebuild import Rebuilding
from cti.calls.record import CallRecord, LiveCall
from cti.calls.state import (
    ENDED_UNSEEN,
    HOTLINE_CONTEXTS,
    INBOUND_CONTEXTS,
    PENDING_NOTES,
    UNSEEN_NOTES,
    Channel,
    Names,
    NoteFactory,
    PendingNotes,
    known,
    no_names,
    to_float,
    to_int,
    to_int_or_none,
)
from cti.calls.transfers import TransferTracking

__all__ = ["ENDED_UNSEEN", "HOTLINE_CONTEXTS", "INBOUND_CONTEXTS", "CallTracker", "NoteFactory"]


class CallTracker(TransferTracking, Rebuilding):
    """Feed AMI events in stream order; collect domain events and finished records."""

    def __init__(self, inbound_contexts: tuple[str, ...] = INBOUND_CONTEXTS,
                 outbound_contexts: tuple[str, ...] = ("callback",), *,
                 hotline_contexts: tuple[str, ...] = HOTLINE_CONTEXTS, names: Names = no_names) -> None:
        super().__init__(inbound_contexts, outbound_contexts, hotline_contexts=hotline_contexts, names=names)
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
            "ChanSpyStart": self._spy_start,
            "ChanSpyStop": self._spy_stop,
            "SoftHangupRequest": self._soft_hangup,
            "Hangup": self._hangup,
            "QueueEntry": self._queue_entry,
            "CoreShowChannel": self._snapshot_item,
            "CoreShowChannelsComplete": self._snapshot_complete,
        }

    def feed(self, message: AmiMessage, at: float) -> list[CallEvent]:
        """Apply one AMI message; return the domain events it caused."""
        if message.kind != "event":
            return []
        if message.name == "VarSet" and message.peek("Variable") != "MIXMONITOR_FILENAME":
            return []  # a quarter of all events, and the only one that matters; a channel's moves come with Newexten
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
            notes, limit = (self._unseen_notes, UNSEEN_NOTES) if self._blind else (self._pending_notes, PENDING_NOTES)
            notes.setdefault(uniqueid, PendingNotes(linkedid, [])).makes.append(make)
            if len(notes) > limit:
                notes.popitem(last=False)
                self.dropped_notes += self._blind
            return []
        self._apply_note(call, make(call.linkedid))
        return self.drain()

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
            agent_channel=agent.name if agent else "", recording=call.recording or call.requested_recording,
            queued_at=call.queued_at, rung=bool(call.legs),
        )

    def live_calls(self) -> list[LiveCall]:
        return [call for linkedid in list(self.calls) if (call := self.live(linkedid)) is not None]

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
            call.caller_number = known(channel.caller_number) or call.caller_number
            call.caller_name = known(channel.caller_name) or call.caller_name
        if not call.offered and call.caller_number:
            self._offer(call, at)

    def _queue_join(self, message: AmiMessage, at: float) -> None:
        call = self._call_for(message, at)
        if call is None or message.fields.get("uniqueid") != call.citizen:
            return
        call.queue = message.fields.get("queue", "")
        call.queued_at = at
        self._emit(call, CallQueued(call.linkedid, at, call.queue, to_int(message.fields.get("position"))))

    def _queue_abandon(self, message: AmiMessage, at: float) -> None:
        call = self._call_for(message, at)
        if call is not None:
            call.queue_wait = to_float(message.fields.get("holdtime"))

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
        call.dialled_out = (device_of(f.get("destchannel", "")), known(f.get("destconnectedlinenum", "")))
        if source == call.citizen and call.handing_over is not None and not call.handover_dial:
            call.handover_dial = dest  # the citizen, handed over, now dials where it was sent
            self._settle(call, "", *call.dialled_out)

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
        call.queue_wait = to_float(f.get("holdtime"))
        self._answer(call, at, f.get("destuniqueid", ""), f.get("interface", ""),
                     f.get("membername", ""), f.get("destchannel", ""))

    def _agent_complete(self, message: AmiMessage, at: float) -> None:
        call = self._call_for(message, at)
        if call is not None and call.talk_time is None:
            call.talk_time = to_float(message.fields.get("talktime"))

    def _mixmonitor_start(self, message: AmiMessage, at: float) -> None:
        """The dialplan started recording on the leg that answered (MixMonitorStart names no file:
        the route decision did)."""
        call = self._call_for(message, at)
        if call is not None and call.requested_recording and not call.recording:
            call.recording = call.requested_recording
            self._emit(call, RecordingStarted(call.linkedid, at, call.recording))

    def _spy_start(self, message: AmiMessage, at: float) -> None:
        """ChanSpy ([cti-spy]: a supervisor listening) began on a leg of a hotline call. The spying channel
        is a call of its own (the supervisor's phone, originated); the spied-on leg says which call."""
        f = message.fields
        spied = self.channels.get(f.get("spyeeuniqueid", ""))
        call = self.calls.get(spied.linkedid if spied is not None else f.get("spyeelinkedid", ""))
        spyer = f.get("spyeruniqueid", "")
        if call is None or not spyer:
            return
        channel = f.get("spyerchannel", "")
        self._spies[spyer] = call.linkedid
        call.spies[spyer] = channel
        self._emit(call, ListenStarted(call.linkedid, at, device_of(channel), channel, f.get("spyeechannel", "")))

    def _spy_stop(self, message: AmiMessage, at: float, spyer: str = "") -> None:
        """ChanSpy ended: ChanSpyStop (the supervisor hung up first), or the Hangup of the spying channel
        (``spyer``): app_chanspy.c publishes no ChanSpyStop once the leg spied on has hung up. (The call's
        own end ends a spy still on it: core._end.)"""
        f = message.fields
        spyer = spyer or f.get("spyeruniqueid", "")
        call = self.calls.get(self._spies.pop(spyer, ""))
        if call is not None and call.spies.pop(spyer, None) is not None:
            channel = f.get("channel", "") if spyer == f.get("uniqueid") else f.get("spyerchannel", "")
            self._emit(call, ListenEnded(call.linkedid, at, device_of(channel), channel))

    def _varset(self, message: AmiMessage, at: float) -> None:
        """MIXMONITOR_FILENAME (feed skips every other variable)."""
        f = message.fields
        call = self._call_for(message, at)
        if call is not None and not call.recording:
            call.recording = f.get("value", "")
            self._emit(call, RecordingStarted(call.linkedid, at, call.recording))

    def _hangup(self, message: AmiMessage, at: float) -> None:
        f = message.fields
        uniqueid = f.get("uniqueid", "")
        if uniqueid in self._spies:  # a spying channel gone with no ChanSpyStop (none comes once the leg
            self._spy_stop(message, at, uniqueid)  # spied on is gone: app_chanspy.c finds no snapshot of it)
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
            call.citizen_hangup = (to_int_or_none(f.get("cause")), f.get("cause-txt", ""))
        if uniqueid == call.anchor:
            cause = to_int_or_none(f.get("cause"))
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
