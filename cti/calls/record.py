"""The call record: one row per citizen call, written when the call ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cti.calls.events import CallEvent


@dataclass(frozen=True, slots=True)
class Transfer:
    kind: str  # blind | attended | redirect | conference
    target: str  # the number (or conference room, or device) the citizen was handed to
    at: float
    transferer: str = ""  # channel that asked for it
    transferee: str = ""  # channel that was moved
    # what came of it: answered (the target took the citizen), noanswer, busy…, failed (the citizen's leg
    # ended without reaching anyone), or "" when it cannot be told (the record ended first)
    outcome: str = ""
    reached: str = ""  # the device the citizen was put through to, when a Dial shows it
    presented: str = ""  # the number that device was shown as the caller (its connected line): the citizen's?


@dataclass(frozen=True, slots=True)
class Leg:
    """A phone rung for the call while it waited for an answer."""

    device: str  # queue member interface (PJSIP/agent1001) or the dialled device
    name: str  # queue member name, when the queue gives one
    channel: str
    rang_at: float
    outcome: str  # answered | cancel | noanswer | busy | chanunavail | congestion | ringing (the last attempt's)
    ended_at: float | None = None
    attempts: int = 1  # times it was rung (a queue rings a member again after each ring timeout)


@dataclass(frozen=True, slots=True)
class CallRecord:
    linkedid: str
    direction: str  # inbound | outbound
    caller_number: str
    caller_name: str
    dialled_number: str
    arrived_at: float
    ended_at: float
    unit: str = ""  # the unit owning the dialled legacy number, from the route decision
    unit_id: str = ""
    treatment: str = ""  # merged | remote_seat | interconnected | emergency | excluded | hotline | unknown
    queue: str = ""
    queued_at: float | None = None
    answered_at: float | None = None
    queue_wait: float | None = None  # seconds in the queue (app_queue's HoldTime when it gives one)
    talk_time: float | None = None
    answered_by: str = ""  # queue member interface or device that answered the citizen
    answered_by_name: str = ""
    answered_channel: str = ""
    transfers: tuple[Transfer, ...] = ()
    legs: tuple[Leg, ...] = ()
    hangup_cause: int | None = None
    hangup_cause_text: str = ""
    recording: str = ""
    estimated: bool = False  # parts were inferred after an AMI outage
    origin: str = ""  # a call's part on the node a trunk between nodes took it to: its near part's Linkedid
    timeline: tuple[CallEvent, ...] = field(default=(), compare=False)

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    def to_json(self, zone: ZoneInfo | None = None) -> dict[str, Any]:
        """The record as plain JSON data (times as ISO 8601 in ``zone``, default UTC)."""
        return {
            "linkedid": self.linkedid,
            "direction": self.direction,
            "caller_number": self.caller_number,
            "caller_name": self.caller_name,
            "dialled_number": self.dialled_number,
            "unit": self.unit,
            "unit_id": self.unit_id,
            "treatment": self.treatment,
            "queue": self.queue,
            "arrived_at": iso_time(self.arrived_at, zone),
            "queued_at": iso_time(self.queued_at, zone),
            "answered_at": iso_time(self.answered_at, zone),
            "ended_at": iso_time(self.ended_at, zone),
            "queue_wait": self.queue_wait,
            "talk_time": self.talk_time,
            "duration": round(self.ended_at - self.arrived_at, 3),
            "answered_by": self.answered_by,
            "answered_by_name": self.answered_by_name,
            "transfers": [
                {"target": t.target, "kind": t.kind, "at": iso_time(t.at, zone),
                 "transferer": t.transferer, "transferee": t.transferee, "outcome": t.outcome,
                 "reached": t.reached, "presented": t.presented}
                for t in self.transfers
            ],
            "legs": [
                {"device": leg.device, "name": leg.name, "outcome": leg.outcome, "attempts": leg.attempts,
                 "rang_at": iso_time(leg.rang_at, zone), "ended_at": iso_time(leg.ended_at, zone)}
                for leg in self.legs
            ],
            "hangup_cause": self.hangup_cause,
            "hangup_cause_text": self.hangup_cause_text,
            "recording": self.recording,
            "estimated": self.estimated,
        }


@dataclass(frozen=True, slots=True)
class LiveCall:
    """A call in progress, as the desk and the screen-pops need it."""

    linkedid: str
    direction: str
    caller_number: str
    caller_name: str
    dialled_number: str
    unit: str
    unit_id: str
    treatment: str
    arrived_at: float
    queue: str
    answered_at: float | None
    answered_by: str
    citizen_channel: str  # what a Redirect moves
    agent_channel: str  # the answering leg, what a BlindTransfer or Atxfer is sent on ("" once gone)
    recording: str = ""  # the file the dialplan records it into, once known
    queued_at: float | None = None  # when it joined the queue (its wait starts there: cti.stats.measures)
    rung: bool = False  # a phone rang for it (a parallel ring waits from the arrival)

    def to_json(self, zone: ZoneInfo | None = None) -> dict[str, Any]:
        return {
            "linkedid": self.linkedid, "direction": self.direction, "caller_number": self.caller_number,
            "caller_name": self.caller_name, "dialled_number": self.dialled_number, "unit": self.unit,
            "unit_id": self.unit_id, "treatment": self.treatment, "arrived_at": iso_time(self.arrived_at, zone),
            "queue": self.queue, "answered_at": iso_time(self.answered_at, zone), "answered_by": self.answered_by,
        }


def iso_time(value: float | None, zone: ZoneInfo | None = None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, zone or UTC).isoformat(timespec="milliseconds")
