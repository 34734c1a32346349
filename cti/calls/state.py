"""The tracker's state: channels, calls and their legs as the tracker keeps them while they last, and
the call record a finished call becomes. Pure: no IO."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cti.ami.message import AmiMessage
from cti.calls.channels import NUMBER_LIMIT, UNKNOWN_CALLER, printable
from cti.calls.events import (
    CallEvent,
)
from cti.calls.record import CallRecord, Leg, Transfer

# Linkedids of finished calls remembered, so late events of their remaining
# channels never start a second record for the same call.
FINISHED_MEMORY = 4096
# Notes (route decisions) for channels the tracker has not seen yet: the AGI
# request and the AMI Newchannel travel on different sockets.
PENDING_NOTES = 1024
# Notes taken while the AMI link is down, the only trace of a call that comes and goes meanwhile: about
# a day of a big city's calls before the oldest is dropped (a few hundred bytes each).
UNSEEN_NOTES = 100_000
# Where the shipped dialplan (asterisk-conf/extensions.conf) takes an inbound call after [from-carrier].
# where citizens' calls arrive: from the carrier, and from another node through the trunk between nodes
INBOUND_CONTEXTS = ("from-carrier", "from-node")
HOTLINE_CONTEXTS = ("cti-next", "cti-queue", "emergency", "cti-seat", "conference")
ENDED_UNSEEN = "began and ended while the AMI link was down"
ENDED_AWAY = "ended while cti was not running"
UP_STATE = "6"  # ChannelState of a channel that is up (answered)

NoteFactory = Callable[[str], CallEvent]  # linkedid -> the event to put in that call's timeline
Names = Callable[[str], str]  # device -> the name of the agent or seat behind it ("" if none)


def no_names(device: str) -> str:
    return ""


@dataclass(slots=True)
class PendingNotes:
    """Notes for a channel not seen yet."""

    linkedid: str
    makes: list[NoteFactory]


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
class LegState:
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
    legs: dict[str, LegState] = field(default_factory=dict)  # by device
    rung: dict[str, str] = field(default_factory=dict)  # uniqueid of a rung channel -> its device
    transfers: list[Transfer] = field(default_factory=list)
    expected_moves: dict[str, tuple[str, str]] = field(default_factory=dict)
    conference_seen: set[str] = field(default_factory=set)
    recording: str = ""  # the file, once Asterisk reports MixMonitorStart for one of the call's legs
    requested_recording: str = ""  # the file the dialplan records into, from the route decision
    origin: str = ""  # the Linkedid of the call's part on the node it came from (CallFromNode), else ""
    estimated: bool = False
    citizen_hangup: tuple[int | None, str] | None = None  # outbound: the dialled citizen's own cause
    shutdown: bool = False  # Asterisk hung the citizen up as it shut down (SoftHangupRequest Cause 4)
    handing_over: int | None = None  # index of a blind transfer or redirect whose Dial is still to tell
    handover_dial: str = ""  # uniqueid of the leg that Dial rings
    dialled_out: tuple[str, str] = ("", "")  # the last leg dialled after the answer: (device, number it is shown)
    spies: dict[str, str] = field(default_factory=dict)  # ChanSpy channels on its legs: Uniqueid -> channel name
    timeline: list[CallEvent] = field(default_factory=list)


def to_record(call: Call, at: float, cause: int | None, cause_text: str) -> CallRecord:
    if call.citizen_hangup is not None:
        cause, cause_text = call.citizen_hangup
    return CallRecord(
        linkedid=call.linkedid, direction=call.direction, caller_number=call.caller_number,
        caller_name=call.caller_name, dialled_number=call.dialled_number, arrived_at=call.arrived_at,
        ended_at=at, unit=call.unit, unit_id=call.unit_id, treatment=call.treatment, queue=call.queue,
        queued_at=call.queued_at, answered_at=call.answered_at, queue_wait=call.queue_wait,
        talk_time=talk_time_of(call, at), answered_by=call.answered_by,
        answered_by_name=call.answered_by_name, answered_channel=call.answered_channel_name,
        transfers=tuple(call.transfers),
        legs=tuple(Leg(leg.device, leg.name, leg.channel, leg.rang_at, leg.outcome, leg.ended_at, leg.attempts)
                   for leg in call.legs.values()),
        hangup_cause=cause, hangup_cause_text=cause_text, recording=recording_of(call),
        estimated=call.estimated, origin=call.origin, timeline=tuple(call.timeline),
    )


def recording_of(call: Call) -> str:
    """The recording confirmed by MixMonitorStart; for a call rebuilt already answered (its start
    missed), the file the dialplan was told to record into."""
    if call.recording or not (call.estimated and call.answered_at is not None):
        return call.recording
    return call.requested_recording


def talk_time_of(call: Call, ended_at: float) -> float | None:
    """app_queue's TalkTime when the queue reported it before the end; else answer to end (a
    call Dial connected, or a citizen who hung up first on a parallel ring, whose queue leg
    reports only after the citizen's Hangup). Unknown when the end itself is an estimate."""
    if call.talk_time is not None or call.answered_at is None or call.estimated:
        return call.talk_time
    return round(ended_at - call.answered_at, 3)


def known(value: str) -> str:
    return "" if value in UNKNOWN_CALLER else value


def to_int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def to_int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def to_float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def duration_of(value: str) -> float:
    """CoreShowChannel's Duration, ``HH:MM:SS``, in seconds."""
    try:
        hours, minutes, seconds = (int(part) for part in value.split(":"))
    except ValueError:
        return 0.0
    return float(hours * 3600 + minutes * 60 + seconds)
