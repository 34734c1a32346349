"""A call that crosses nodes, as one record.

With several Asterisk nodes a call may reach one node (its *near* part) and be sent on through the trunk
between nodes to a queue on another (its *far* part, a call of that node with its own Linkedid). The far
node's dialplan gives cti the near part's Linkedid ([from-node], the X-CTI-Linkedid header), which the
far part's timeline holds as a CallFromNode. Each part ends as a record of its node's tracker; this
joins them: the near part's record, with the far parts' legs, transfers and timeline, and with who
answered on the far node when the near part was answered only by the trunk. A part whose partner has
not come within ``hold`` seconds of its end (that node's link down, say) is let go as it is.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence

from cti.calls.channels import is_node_trunk
from cti.calls.events import CallEvent, CallFromNode
from cti.calls.record import CallRecord

HOLD = 30.0  # seconds a part waits for its partner after it ended
EXPECTED_LIMIT = 10_000  # near parts whose far part began, kept at most (a near record never seen)


class Crossings:
    """Feed every node's domain events (``on_events``) and finished records (``finished``); write what
    comes back. ``expired`` lets go of parts held too long."""

    def __init__(self, hold: float = HOLD) -> None:
        self.hold = hold
        self._expected: OrderedDict[str, set[str]] = OrderedDict()  # near Linkedid -> far parts not yet ended
        self._near: dict[str, tuple[CallRecord, float]] = {}  # near records waiting for their far parts
        self._far: dict[str, list[tuple[CallRecord, float]]] = {}  # near Linkedid -> far records ended
        self.joined = 0

    @property
    def waiting(self) -> int:
        return len(self._near) + sum(len(parts) for parts in self._far.values())

    def on_events(self, events: Sequence[CallEvent]) -> None:
        for event in events:
            if isinstance(event, CallFromNode):
                self._expected.setdefault(event.origin, set()).add(event.linkedid)
                if len(self._expected) > EXPECTED_LIMIT:
                    self._expected.popitem(last=False)

    def finished(self, record: CallRecord, at: float) -> list[CallRecord]:
        """The records to write now that ``record`` ended (none while its partner is to come)."""
        if record.origin:
            self._far.setdefault(record.origin, []).append((record, at))
            self._expected.get(record.origin, set()).discard(record.linkedid)
            return self._complete(record.origin)
        if record.linkedid in self._expected or record.linkedid in self._far:
            self._near[record.linkedid] = (record, at)
            return self._complete(record.linkedid)
        return [record]

    def expired(self, at: float) -> list[CallRecord]:
        """Parts held ``hold`` seconds: a near part with the far parts that came, far parts without theirs."""
        out = []
        for origin, (_, since) in list(self._near.items()):
            if at - since >= self.hold:
                out.append(self._release(origin))
        for origin, parts in list(self._far.items()):
            if origin not in self._near and at - parts[0][1] >= self.hold:
                del self._far[origin]
                self._expected.pop(origin, None)
                out.extend(record for record, _ in parts)
        return out

    def _complete(self, origin: str) -> list[CallRecord]:
        if origin not in self._near or self._expected.get(origin):
            return []
        return [self._release(origin)]

    def _release(self, origin: str) -> CallRecord:
        near, _ = self._near.pop(origin)
        self._expected.pop(origin, None)
        far = [record for record, _ in self._far.pop(origin, [])]
        self.joined += bool(far)
        return join(near, far)


def join(near: CallRecord, far: Sequence[CallRecord]) -> CallRecord:
    """One record of a call's parts: the near part's ids, caller, number, route and end; every part's legs,
    transfers and timeline; and, when no person answered on the near node (the trunk did), the far node's
    queue, answer and talk."""
    if not far:
        return near
    far = sorted(far, key=lambda record: record.arrived_at)
    record = dataclasses.replace(
        near,
        legs=near.legs + tuple(leg for part in far for leg in part.legs),
        transfers=near.transfers + tuple(transfer for part in far for transfer in part.transfers),
        estimated=near.estimated or any(part.estimated for part in far),
        timeline=tuple(sorted((*near.timeline, *(dataclasses.replace(event, linkedid=near.linkedid)
                                                 for part in far for event in part.timeline)),
                              key=lambda event: event.at)))
    if near.answered and not is_node_trunk(near.answered_by):
        return record  # a person on the near node answered; the far part is where they sent the call
    answered = next((part for part in far if part.answered), None)
    last = answered or far[-1]
    return dataclasses.replace(
        record, queue=last.queue or near.queue, queued_at=last.queued_at or near.queued_at,
        queue_wait=last.queue_wait, answered_at=last.answered_at, talk_time=last.talk_time,
        answered_by=last.answered_by, answered_by_name=last.answered_by_name,
        answered_channel=last.answered_channel, recording=near.recording or last.recording)
