"""The duties only one cti instance may run at a time, under a lease in the database.

Several instances read the same nodes and write the same database: each records every
call (the store keeps the first record of a Linkedid, cti.store.calls) and gives it its
case (one per call, cti.store.cases). What must not happen twice is what cti starts by
itself: the case sweep (reminders, overdue notices, callbacks to citizens, archiving),
the delivery of the webhooks' outbox, the hotspot sweep. Those run in the instance that
holds the lease ``duties``; it renews the lease every ``renew`` seconds, and when it dies
the lease expires ``ttl`` seconds after its last renewal and another instance takes it
over at its next try. An instance that cannot renew (its database is away) stops its
duties before the lease can have expired, so that two never run them at once.

One instance alone (SQLite) takes the lease at start and keeps it: the same path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from cti.store.leases import LeaseStore

log = logging.getLogger(__name__)

Duty = Callable[[asyncio.Event], Coroutine[Any, Any, None]]  # runs until the event is set, then finishes its work
LEASE = "duties"


class Leadership:
    def __init__(self, leases: LeaseStore, holder: str, duties: Sequence[Duty], *, ttl: float = 6.0,
                 renew: float = 1.5, clock: Callable[[], float] = time.monotonic) -> None:
        assert renew * 2 < ttl, "a renewal must be able to fail once before the lease expires"
        self.leases = leases
        self.holder = holder
        self.duties = list(duties)
        self.ttl = ttl
        self.renew = renew
        self.clock = clock
        self.held = False
        self.tenures = 0  # how often this instance took the duties on, for the log and the drills
        self._renewed = 0.0  # when the lease was last renewed (clock)
        self._stop_duties: asyncio.Event | None = None
        self._running: list[asyncio.Task[None]] = []

    async def run(self, stop: asyncio.Event) -> None:
        """Take, renew and give up the lease until ``stop``; the duties run while it is held."""
        try:
            while not stop.is_set():
                await self._step()
                try:
                    await asyncio.wait_for(stop.wait(), self.renew)
                except TimeoutError:
                    pass
        finally:
            await self._end_duties()
            if self.held:
                self.held = False
                try:
                    await self.leases.release(LEASE, self.holder)
                except Exception:
                    log.warning("the lease %r was not given up: another instance takes it when it expires", LEASE,
                                exc_info=True)

    async def _step(self) -> None:
        try:
            held = await self.leases.take(LEASE, self.holder, self.ttl)
        except Exception as exc:  # the database is away: keep the duties only while the lease surely holds
            if self.held and self.clock() - self._renewed > self.ttl - self.renew:
                log.error("the lease %r could not be renewed (%s): its duties stop before it expires", LEASE, exc)
                self.held = False
                await self._end_duties()
            return
        if held:
            self._renewed = self.clock()
        if held and not self.held:
            self.held = True
            self.tenures += 1
            log.warning("this instance (%s) took the lease %r: it runs the case sweep, callbacks, webhooks and "
                        "hotspots", self.holder, LEASE)
            self._start_duties()
        elif not held and self.held:
            log.error("the lease %r was taken by another instance: this one's duties stop", LEASE)
            self.held = False
            await self._end_duties()

    def _start_duties(self) -> None:
        self._stop_duties = asyncio.Event()
        self._running = [asyncio.create_task(duty(self._stop_duties), name=f"duty-{i}")
                         for i, duty in enumerate(self.duties)]

    async def _end_duties(self) -> None:
        if self._stop_duties is None:
            return
        self._stop_duties.set()
        running, self._running, self._stop_duties = self._running, [], None
        done, pending = await asyncio.wait(running, timeout=5) if running else (set(), set())
        for task in pending:
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("a duty ended with an error", exc_info=task.exception())
