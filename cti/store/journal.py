"""The journal of calls in progress: what a restarted cti knows of a call that ended while it was not running.

Asterisk tells a new AMI session only what is live (trace R3): a citizen who hung up while cti was
down (killed, restarting, its machine rebooting) is in no channel list, and without this journal
the call would have no record. So every ``interval`` the journal writes the inbound calls whose
state changed (cti.calls.record.LiveCall: caller, number dialled, unit, arrival, answer, recording)
to ``calls_in_progress``; a call's row goes in the same transaction as its record
(cti.store.calls.CallStore.save). On start, cti hands what is left to the tracker
(CallTracker.remember), which records the calls the first channel list no longer shows.

Like the record writer, it never holds up the AMI path: a failed write is logged and tried again
at the next interval with whatever is live then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from cti.calls.record import LiveCall
from cti.store.calls import CallStore
from cti.store.outage import Outage

log = logging.getLogger(__name__)


class CallJournal:
    def __init__(self, store: CallStore, live_calls: Callable[[], list[LiveCall]], interval: float) -> None:
        self.store = store
        self.live_calls = live_calls
        self.interval = interval
        self.outage = Outage(log, "writing the journal of calls in progress")
        self._written: dict[str, LiveCall] = {}  # as the database has them
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="call-journal")

    async def close(self) -> None:
        """Write what is live now (cti stops with calls up: the next cti learns how they were) and stop."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval)
            except TimeoutError:
                pass
            await self.write()

    async def write(self) -> None:
        """Write the inbound calls that changed since the last write."""
        live = {call.linkedid: call for call in self.live_calls() if call.direction == "inbound"}
        changed = [call for linkedid, call in live.items() if self._written.get(linkedid) != call]
        if not changed:
            self._written = live
            return
        try:
            await self.store.keep_in_progress(changed)
        except Exception as exc:  # the database is an edge: the next interval writes them with what is live then
            self.outage.failed(exc)
            return
        self.outage.worked()
        self._written = live
