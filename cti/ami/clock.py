"""When did an AMI event happen?

Asterisk stamps events only when manager.conf has ``timestampevents = yes``
(a ``Timestamp: 1795281168.123456`` header; the shipped configuration turns it
on). Without it, a live link uses the time the event was read. A recorded
transcript read back later has no read times worth anything, so a replay keeps
a *stream clock*: the latest time the PBX itself wrote into the stream (the
Timestamp header, a CEL ``EventTime``, a security event's ``EventTV``), carried
forward to the events that have none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from cti.ami.message import AmiMessage

EventClock = Callable[[AmiMessage], float]
# the security events, which carry EventTV (Asterisk's main/security_events.c)
SECURITY_EVENTS = frozenset({
    "FailedACL", "InvalidAccountID", "SessionLimit", "MemoryLimit", "LoadAverageLimit", "RequestNotSupported",
    "RequestNotAllowed", "AuthMethodNotAllowed", "RequestBadFormat", "SuccessfulAuth", "UnexpectedAddress",
    "ChallengeResponseFailed", "InvalidPassword", "ChallengeSent", "InvalidTransport"})


def _stamp(message: AmiMessage) -> float | None:
    stamp = message.peek("Timestamp")
    if stamp:
        try:
            return float(stamp)
        except ValueError:
            return None
    return None


class ReceiveClock:
    """Live links: Asterisk's own stamp when present, else the time of reading."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now

    def __call__(self, message: AmiMessage) -> float:
        stamp = _stamp(message)
        return stamp if stamp is not None else self._now()


class StreamClock:
    """Replays: the latest time written by the PBX into the stream, carried forward.

    ``pbx_timezone`` is the zone of CEL ``EventTime`` values, which Asterisk
    writes in the PBX's local time without an offset.
    """

    def __init__(self, pbx_timezone: str = "UTC", start: float = 0.0) -> None:
        self._zone = ZoneInfo(pbx_timezone)
        self.now = start
        self._last_cel: tuple[str, float | None] = ("", None)  # CEL events come in bursts of one second

    def __call__(self, message: AmiMessage) -> float:
        stamp = _stamp(message) or self._cel_time(message) or self._event_tv(message)
        if stamp is not None and stamp > self.now:
            self.now = stamp
        return self.now

    def _cel_time(self, message: AmiMessage) -> float | None:
        value = message.peek("EventTime") if message.name == "CEL" else None
        if not value:
            return None
        try:
            return float(value)  # cel.conf dateformat = %s
        except ValueError:
            pass
        if value == self._last_cel[0]:
            return self._last_cel[1]
        try:
            parsed: float | None = datetime.fromisoformat(value).replace(tzinfo=self._zone).timestamp()
        except ValueError:
            parsed = None
        self._last_cel = (value, parsed)
        return parsed

    @staticmethod
    def _event_tv(message: AmiMessage) -> float | None:
        value = message.peek("EventTV") if message.name in SECURITY_EVENTS else None
        if not value:
            return None
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        except ValueError:
            return None
