"""Domain events: what happened to a citizen's call, in the hotline's terms.

The tracker turns AMI events into these; the screen-pop hub, the store and the
case workflow consume them. Each is frozen and carries the call's Linkedid and
the time it happened (seconds since the epoch).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


@dataclass(frozen=True, slots=True)
class CallEvent:
    kind: ClassVar[str] = "event"
    linkedid: str
    at: float

    def data(self) -> dict[str, Any]:
        """The event's own fields, without the call's id and the time. (Shallow: the fields are
        plain values or a dict of strings; dataclasses.asdict's deep copy showed in profiles.)"""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in ("linkedid", "at")}


@dataclass(frozen=True, slots=True)
class CallOffered(CallEvent):
    """A citizen's call reached the PBX (inbound) or a callback was placed (outbound)."""

    kind: ClassVar[str] = "offered"
    direction: str
    caller_number: str
    caller_name: str
    dialled_number: str
    channel: str


@dataclass(frozen=True, slots=True)
class CallQueued(CallEvent):
    kind: ClassVar[str] = "queued"
    queue: str
    position: int


@dataclass(frozen=True, slots=True)
class LegRinging(CallEvent):
    """An agent's phone or a remote seat starts ringing for this call."""

    kind: ClassVar[str] = "ringing"
    device: str
    name: str
    channel: str


@dataclass(frozen=True, slots=True)
class LegEnded(CallEvent):
    """A ringing leg stopped ringing: answered, cancelled (answered elsewhere), no answer, busy."""

    kind: ClassVar[str] = "leg_ended"
    device: str
    channel: str
    outcome: str


@dataclass(frozen=True, slots=True)
class CallAnswered(CallEvent):
    kind: ClassVar[str] = "answered"
    answered_by: str
    name: str
    channel: str
    queue_wait: float | None


@dataclass(frozen=True, slots=True)
class CallTransferred(CallEvent):
    """The citizen was handed on: ``blind``, ``attended``, ``redirect`` or joined a ``conference``."""

    kind: ClassVar[str] = "transferred"
    transfer_kind: str
    target: str
    transferer: str
    transferee: str


@dataclass(frozen=True, slots=True)
class TransferFailed(CallEvent):
    kind: ClassVar[str] = "transfer_failed"
    transfer_kind: str
    target: str
    result: str


@dataclass(frozen=True, slots=True)
class RecordingStarted(CallEvent):
    kind: ClassVar[str] = "recording"
    file: str


@dataclass(frozen=True, slots=True)
class SupervisorListening(CallEvent):
    """A supervisor asked to listen to, whisper to or barge into the agent's leg: cti rang their phone."""

    kind: ClassVar[str] = "listen"
    mode: str  # listen | whisper | barge
    supervisor: str  # the supervisor's user id
    name: str
    device: str  # the supervisor's phone, originated into [cti-spy]
    agent_channel: str  # the channel spied on: the agent's leg


@dataclass(frozen=True, slots=True)
class ListenStarted(CallEvent):
    """ChanSpy began on the call's agent leg (ChanSpyStart): the supervisor's phone answered and hears it."""

    kind: ClassVar[str] = "listen_started"
    device: str  # the spying phone (PJSIP/supervisor9001)
    channel: str  # its channel
    agent_channel: str


@dataclass(frozen=True, slots=True)
class ListenEnded(CallEvent):
    """ChanSpy stopped (ChanSpyStop): the supervisor hung up, or the agent's leg ended."""

    kind: ClassVar[str] = "listen_ended"
    device: str
    channel: str


@dataclass(frozen=True, slots=True)
class RouteDecided(CallEvent):
    """The FastAGI service decided how to treat the dialled (legacy) number."""

    kind: ClassVar[str] = "routed"
    number: str
    unit: str
    unit_id: str
    treatment: str
    action: str
    caller_number: str = ""  # as the AGI request gave it: all there is of a call the AMI link missed
    caller_name: str = ""
    recording: str = ""  # the file the dialplan records the call into once it is answered ([cti-record])


@dataclass(frozen=True, slots=True)
class CallFromNode(CallEvent):
    """The call came from another node of the centre through the trunk between them: ``origin`` is the
    Linkedid of its part there (the X-CTI-Linkedid header the near node sent), whose record this part joins.
    The number dialled there, its unit and treatment come along when cti knew them, for the screen-pop."""

    kind: ClassVar[str] = "from_node"
    origin: str
    number: str = ""
    unit: str = ""
    unit_id: str = ""
    treatment: str = ""


@dataclass(frozen=True, slots=True)
class IvrFinished(CallEvent):
    """An IVR flow ended: how it handed the call on, and the answers it read (a survey's)."""

    kind: ClassVar[str] = "ivr"
    flow: str
    next: str
    answers: dict[str, str]
    hung_up: bool


@dataclass(frozen=True, slots=True)
class CallEnded(CallEvent):
    """The citizen's leg is gone. ``estimated`` when it ended while the AMI link was down."""

    kind: ClassVar[str] = "ended"
    cause: int | None
    cause_text: str
    answered: bool
    estimated: bool


EVENT_TYPES: dict[str, type[CallEvent]] = {
    cls.kind: cls
    for cls in (
        CallOffered, CallQueued, LegRinging, LegEnded, CallAnswered,
        CallTransferred, TransferFailed, RecordingStarted, RouteDecided, CallFromNode, IvrFinished, CallEnded,
        SupervisorListening, ListenStarted, ListenEnded,
    )
}


def event_from_data(kind: str, linkedid: str, at: float, data: dict[str, Any]) -> CallEvent:
    """Rebuild a domain event from its stored form (the inverse of ``data()``)."""
    cls = EVENT_TYPES[kind]
    names = {f.name for f in fields(cls)}
    return cls(linkedid=linkedid, at=at, **{k: v for k, v in data.items() if k in names})
