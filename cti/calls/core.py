"""What every part of the tracker shares: its state and the steps of a call's life (started, offered,
rung, answered, ended) that the event handlers of cti/calls/tracker.py, transfers.py and rebuild.py
take. Pure: no IO."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from cti.ami.message import AmiMessage
from cti.calls.channels import device_of, is_local_outward_half
from cti.calls.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallFromNode,
    CallOffered,
    LegEnded,
    LegRinging,
    ListenEnded,
    RouteDecided,
    TransferFailed,
)
from cti.calls.record import CallRecord, LiveCall
from cti.calls.state import (
    FINISHED_MEMORY,
    HOTLINE_CONTEXTS,
    INBOUND_CONTEXTS,
    Call,
    Channel,
    LegState,
    Names,
    NoteFactory,
    PendingNotes,
    known,
    no_names,
    to_record,
)


class CallCore:
    """The state of the calls in progress, and the steps every handler takes."""

    def __init__(self, inbound_contexts: tuple[str, ...] = INBOUND_CONTEXTS,
                 outbound_contexts: tuple[str, ...] = ("callback",), *,
                 hotline_contexts: tuple[str, ...] = HOTLINE_CONTEXTS, names: Names = no_names) -> None:
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
        self._pending_notes: OrderedDict[str, PendingNotes] = OrderedDict()  # channels whose Newchannel is to come
        # notes taken while the link was down: all cti will know of a call that comes and goes meanwhile, kept
        # until the next channel list (bounded only by UNSEEN_NOTES, hours of a big city's calls)
        self._unseen_notes: OrderedDict[str, PendingNotes] = OrderedDict()
        self.dropped_notes = 0  # unseen notes dropped past UNSEEN_NOTES
        self._blind = True  # from a link loss (or the start) until a channel list is asked for
        self.unrouted: list[str] = []  # Linkedids of calls rebuilt without knowing what was dialled
        self._remembered: dict[str, LiveCall] = {}  # a previous cti's calls in progress, until the first list
        self._spies: dict[str, str] = {}  # a ChanSpy channel's Uniqueid -> the Linkedid of the call it spies on

    def _emit(self, call: Call, event: CallEvent) -> None:
        call.timeline.append(event)
        self._events.append(event)

    def _is_new(self, linkedid: str) -> bool:
        """No call, running or finished, has this Linkedid yet."""
        return linkedid not in self.calls and linkedid not in self._done

    def _is_inbound_leg(self, channel: Channel) -> bool:
        return (channel.context in self.inbound_contexts and self._is_new(channel.linkedid)
                and not is_local_outward_half(channel.name))

    def _start_inbound(self, channel: Channel, at: float) -> Call:
        call = Call(
            linkedid=channel.linkedid, direction="inbound", anchor=channel.uniqueid,
            citizen=channel.uniqueid, caller_number=known(channel.caller_number),
            caller_name=known(channel.caller_name), dialled_number=channel.exten, arrived_at=at,
        )
        self.calls[call.linkedid] = call
        if call.caller_number:
            self._offer(call, at)
        makes = self._take_notes(channel.uniqueid)
        if makes and not call.offered:
            self._offer(call, at)
        for make in makes:
            self._apply_note(call, make(call.linkedid))
        return call

    def _take_notes(self, uniqueid: str) -> list[NoteFactory]:
        """The notes waiting for a channel now seen, the oldest first."""
        unseen, pending = self._unseen_notes.pop(uniqueid, None), self._pending_notes.pop(uniqueid, None)
        return [*(unseen.makes if unseen else ()), *(pending.makes if pending else ())]

    def _start_outbound(self, channel: Channel, at: float) -> None:
        """A channel runs the callback dialplan: a call the hotline places to a citizen."""
        call = Call(
            linkedid=channel.linkedid, direction="outbound", anchor=channel.uniqueid, citizen="",
            caller_number=known(channel.caller_number), caller_name=known(channel.caller_name),
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

    def _apply_note(self, call: Call, event: CallEvent) -> None:
        if isinstance(event, RouteDecided):
            call.unit, call.unit_id, call.treatment = event.unit, event.unit_id, event.treatment
            call.dialled_number = call.dialled_number or event.number
            call.requested_recording = call.requested_recording or event.recording
            if call.linkedid in self.unrouted:
                self.unrouted.remove(call.linkedid)
        elif isinstance(event, CallFromNode):
            call.origin = event.origin
            if event.number:  # the far node's part: what the citizen dialled on the near one, not the trunk's exten
                call.dialled_number, call.unit, call.unit_id, call.treatment = (
                    event.number, event.unit, event.unit_id, event.treatment)
        self._emit(call, event)

    def _ring(self, call: Call, at: float, dest: str, channel: str, device: str, name: str,
              via_queue: bool = False) -> None:
        if not dest or dest in call.rung:
            return
        name = name or self.names(device)
        call.rung[dest] = device
        leg = call.legs.get(device)
        if leg is None:
            call.legs[device] = LegState(device=device, name=name, channel=channel, rang_at=at, via_queue=via_queue)
        else:  # rung again (the queue's retry): the same leg, one more attempt
            leg.channel, leg.outcome, leg.ended_at = channel, "ringing", None
            leg.attempts += 1
        self._emit(call, LegRinging(call.linkedid, at, device, name, channel))

    def _leg(self, call: Call, uniqueid: str) -> LegState | None:
        """The leg a rung channel belongs to."""
        device = call.rung.get(uniqueid)
        return call.legs.get(device) if device is not None else None

    def _answer(self, call: Call, at: float, uniqueid: str, device: str, name: str, channel: str) -> None:
        if call.answered_at is not None:
            return
        call.answered_at = at
        call.answered_by, call.answered_by_name = device, name or self.names(device)
        call.answered_channel, call.answered_channel_name = uniqueid, channel
        if call.queue_wait is None and call.queued_at is not None:
            call.queue_wait = round(at - call.queued_at, 3)
        self._emit(call, CallAnswered(call.linkedid, at, device, name, channel, call.queue_wait))

    def _end_leg(self, call: Call, leg: LegState, outcome: str, at: float) -> None:
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
        if call.answered_at is None and call.queue_wait is None and call.queued_at is not None:
            # The citizen hung up in the queue and QueueCallerAbandon (its HoldTime) has not come: the record
            # is written now, and an abandon told after the Hangup (as the simulator tells it) found no call
            # and the wait was lost. It is the time since the citizen joined the queue, as HoldTime counts it.
            call.queue_wait = round(at - call.queued_at, 3)
        for spyer, channel in call.spies.items():  # a supervisor still listening: the call's end ends it
            self._spies.pop(spyer, None)
            self._emit(call, ListenEnded(call.linkedid, at, device_of(channel), channel))
        call.spies.clear()
        if call.shutdown:
            cause_text = f"{cause_text} (Asterisk shut down)" if cause_text else "Asterisk shut down"
        self._emit(call, CallEnded(call.linkedid, at, cause, cause_text, call.answered_at is not None,
                                   estimated))
        del self.calls[call.linkedid]
        self._done[call.linkedid] = None
        if len(self._done) > FINISHED_MEMORY:
            self._done.popitem(last=False)
        self.finished.append(to_record(call, at, cause, cause_text))

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

    def _leave_bridge(self, channel: Channel) -> None:
        if channel.bridge:
            members = self.bridges.get(channel.bridge)
            if members is not None:
                members.discard(channel.uniqueid)
                if not members:
                    del self.bridges[channel.bridge]
