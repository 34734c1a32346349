"""What each service-level measure counts, for one call record: the definitions the wallboard applies to
a call as it ends and the SQL of cti/stats applies to a year of them. Pure.

A call *asked for a person* when it is an inbound call the dialplan offered to the 12345 queue or a remote
seat (it has a queue, or a phone rang for it, or someone answered it); a call served by a notice alone (a
retired number, an excluded line's guidance) or a callback is none of the measures' business. Its *wait*
runs from when it joined the queue (the arrival when it never did: a parallel ring) to its answer, or to
its end when unanswered. A *short abandon* is a caller who hangs up unanswered within SHORT_ABANDON seconds
of starting to wait: a wrong number or a pocket dial, left out of every rate's denominator, as the
national practice does. Of the calls that remain (*offered*):

- answered within ANSWER_TARGET seconds of waiting: the 15-second answer rate (15秒接通率);
- answered at all: the answer rate (接通率); over the 24 hours of a day, nights included, it is what
  GB/T 33358 calls the 24-hour connection rate;
- unanswered: the abandon rate (放弃率).

The waits are averaged over the offered calls (answered and abandoned alike: how long callers waited), the
answered calls' alone give the average speed of answer, and the longest of the offered calls is the maximum
wait. Talk is the answered calls' talk time (app_queue's TalkTime, or answer to hang-up), averaged over those
whose talk is known. A call counts in the hour, day and month (local time) it arrived in. Seconds are counted
to the millisecond: what SQLite keeps of a time, so that the SQL of cti/stats/calls.py on either database and
these functions agree to the last call at the 5 s and 15 s limits (a float of epoch seconds is off in its
seventh decimal).
"""

from __future__ import annotations

from cti.calls.record import CallRecord

SHORT_ABANDON = 5.0  # seconds: an unanswered caller who waited less is not counted
ANSWER_TARGET = 15.0  # seconds: answered within this is within the service level (GB/T 33358: 15 s)


def asked_for_a_person(record: CallRecord) -> bool:
    return record.direction == "inbound" and bool(record.queue or record.legs or record.answered_at is not None)


def wait_started(record: CallRecord) -> float:
    return record.queued_at if record.queued_at is not None else record.arrived_at


def wait_of(record: CallRecord) -> float:
    """Seconds from the queue (or the arrival) to the answer, or to the end when unanswered."""
    end = record.answered_at if record.answered_at is not None else record.ended_at
    return max(0.0, round(end - wait_started(record), 3))


def is_short_abandon(record: CallRecord) -> bool:
    return record.answered_at is None and wait_of(record) < SHORT_ABANDON


def is_offered(record: CallRecord) -> bool:
    """In the denominator of every call rate."""
    return asked_for_a_person(record) and not is_short_abandon(record)


def answered_in_time(record: CallRecord, target: float = ANSWER_TARGET) -> bool:
    return is_offered(record) and record.answered_at is not None and wait_of(record) <= target


def is_abandoned(record: CallRecord) -> bool:
    return is_offered(record) and record.answered_at is None


def talk_of(record: CallRecord) -> float | None:
    """An answered call's talk time, when known."""
    return record.talk_time if record.answered_at is not None else None
