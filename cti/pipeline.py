"""The one path every AMI message takes, live or replayed:
message -> event time -> call tracker -> domain events to subscribers,
finished calls to the record writer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from cti.ami.clock import EventClock
from cti.ami.message import AmiMessage
from cti.calls.events import CallEvent
from cti.calls.record import CallRecord
from cti.calls.state import UNSEEN_NOTES
from cti.calls.tracker import CallTracker, NoteFactory

log = logging.getLogger(__name__)

Subscriber = Callable[[Sequence[CallEvent]], None]


class CallPipeline:
    def __init__(self, tracker: CallTracker, clock: EventClock,
                 on_record: Callable[[CallRecord], None]) -> None:
        self.tracker = tracker
        self.clock = clock
        self._on_record = on_record
        self._subscribers: list[Subscriber] = []
        self.messages = 0

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def on_message(self, message: AmiMessage) -> None:
        self.messages += 1
        self._publish(self.tracker.feed(message, self.clock(message)))

    def note(self, uniqueid: str, linkedid: str, make: NoteFactory) -> None:
        """An event from outside AMI (FastAGI) for the call of channel ``uniqueid``."""
        dropped = self.tracker.dropped_notes
        self._publish(self.tracker.note(uniqueid, linkedid, make))
        if self.tracker.dropped_notes > dropped:
            log.warning("the AMI link has been down for %d route decisions: the oldest is dropped, and a call that "
                        "came and went then will have no record", UNSEEN_NOTES)

    def _publish(self, events: Sequence[CallEvent]) -> None:
        if events:
            for subscriber in self._subscribers:
                subscriber(events)
        if self.tracker.finished:
            for record in self.tracker.take_finished():
                self._on_record(record)

    def on_link_lost(self, at: float) -> None:
        self.tracker.link_lost(at)

    def on_listing_requested(self) -> None:
        self.tracker.listing_requested()
