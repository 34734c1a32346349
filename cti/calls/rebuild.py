"""Catching up after a (re)connect: the calls a channel list shows, and those it no longer shows.
Pure: no IO.

Nothing Asterisk sends later repeats the state of a live call (trace R3); by then the shipped dialplan
has moved the citizen out of the inbound context, so a listed channel is a citizen's leg when it began
its call (Uniqueid = Linkedid), is no Local half, and sits in an inbound or a hotline context. A call
that came and went while the link was down is known only from its FastAGI route request; one that
ended while cti itself was not running, from the journal the cti before it kept (cti.store.journal)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from cti.ami.message import AmiMessage
from cti.calls.channels import NUMBER_LIMIT, device_of, printable
from cti.calls.core import CallCore
from cti.calls.events import (
    RouteDecided,
)
from cti.calls.record import LiveCall
from cti.calls.state import (
    ENDED_AWAY,
    ENDED_UNSEEN,
    PENDING_NOTES,
    UP_STATE,
    Call,
    Channel,
    PendingNotes,
    duration_of,
    known,
    to_int,
)


class Rebuilding(CallCore):
    """The resynchronisation of the tracker: link lost, channel lists."""

    def remember(self, calls: Sequence[LiveCall]) -> None:
        """The calls the cti before this one was following when it stopped (its journal). At the first
        channel list, a listed one is rebuilt knowing when it arrived and what was dialled; the others
        ended while no cti was running, and are recorded from what the journal says."""
        self._remembered.update((call.linkedid, call) for call in calls)

    def link_lost(self, at: float) -> None:
        """The AMI link dropped: events from now until the next channel list are lost."""
        self._snapshot = None
        self._blind = True

    def listing_requested(self) -> None:
        """A CoreShowChannels list has been asked for: any channel that exists now will be in it, so
        notes from now on are not for calls that came and went unseen."""
        self._blind = False

    def _queue_entry(self, message: AmiMessage, at: float) -> None:
        """A QueueStatus item: a caller waiting in a queue (the citizen, or a parallel ring's Local ;2
        leg with the citizen's number, trace R3). A rebuilt call learns its queue and when it joined."""
        f = message.fields
        channel = self.channels.get(f.get("uniqueid", ""))
        call = self.calls.get(channel.linkedid) if channel is not None else None
        if call is not None and not call.queue:
            call.queue = f.get("queue", "")
            call.queued_at = at - float(to_int(f.get("wait")))

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
        self._recall(at)
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
        arrived = at - duration_of(message.fields.get("duration", ""))
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

    def _recall(self, at: float) -> None:
        remembered, self._remembered = self._remembered, {}
        for linkedid, live in remembered.items():
            call = self.calls.get(linkedid)
            if call is not None:
                self._complete_rebuilt(call, live)
            elif self._is_new(linkedid):
                self._record_away(live, at)

    def _complete_rebuilt(self, call: Call, live: LiveCall) -> None:
        """A rebuilt call the journal knew: its arrival to the millisecond (a channel list gives whole
        seconds), what was dialled, and when it was answered, if by the same phone. It stays unrouted: the
        dialplan's variables, read back, say where the route sent it (the journal does not)."""
        call.arrived_at = live.arrived_at
        if not call.treatment:
            call.dialled_number = call.dialled_number or live.dialled_number
            call.unit, call.unit_id, call.treatment = live.unit, live.unit_id, live.treatment
        call.queue = call.queue or live.queue
        call.requested_recording = call.requested_recording or live.recording
        if live.answered_at is not None and call.answered_by == live.answered_by:
            call.answered_at = live.answered_at

    def _record_away(self, live: LiveCall, at: float) -> None:
        """A call the journal knew and the channel list does not show: it ended while no cti was
        running, at some time before ``at``. Recorded from the journal, estimated."""
        call = Call(linkedid=live.linkedid, direction="inbound", anchor="", citizen="",
                    caller_number=live.caller_number, caller_name=live.caller_name,
                    dialled_number=live.dialled_number, arrived_at=live.arrived_at, unit=live.unit,
                    unit_id=live.unit_id, treatment=live.treatment, queue=live.queue,
                    answered_at=live.answered_at, answered_by=live.answered_by,
                    answered_by_name=self.names(live.answered_by) if live.answered_by else "",
                    answered_channel_name=live.agent_channel, requested_recording=live.recording, estimated=True)
        self.calls[call.linkedid] = call
        self._end(call, at, None, ENDED_AWAY, estimated=True)

    def _record_unseen(self, listed: set[str], at: float) -> None:
        """Calls whose route cti decided while the link was down, gone before the channel list: their
        only trace is the decision. Recorded as estimated, with what it says (caller, number, time)."""
        unseen, self._unseen_notes = self._unseen_notes, OrderedDict()
        for uniqueid, pending in unseen.items():
            if uniqueid in listed:  # a listed channel that is no citizen's (a survey's): its notes wait as others do
                self._pending_notes.setdefault(uniqueid, PendingNotes(pending.linkedid, [])).makes[:0] = pending.makes
                continue
            events = [make(pending.linkedid) for make in pending.makes]
            route = next((e for e in events if isinstance(e, RouteDecided)), None)
            if route is None or not self._is_new(pending.linkedid):
                continue  # a survey's or another flow's note: not a citizen's inbound call
            call = Call(linkedid=pending.linkedid, direction="inbound", anchor=uniqueid, citizen=uniqueid,
                        caller_number=known(printable(route.caller_number, NUMBER_LIMIT)),
                        caller_name=known(printable(route.caller_name)),
                        dialled_number=route.number, arrived_at=route.at, estimated=True)
            self.calls[call.linkedid] = call
            self._offer(call, route.at)
            for event in events:
                self._apply_note(call, event)
            self._end(call, at, None, ENDED_UNSEEN, estimated=True)
        while len(self._pending_notes) > PENDING_NOTES:
            self._pending_notes.popitem(last=False)
