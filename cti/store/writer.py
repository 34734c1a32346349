"""Writes finished call records in batches, off the AMI reading path.

The AMI link must never wait for the database: a slow disk or a PostgreSQL
failover would otherwise stall every screen-pop. Records wait here in memory
and are written in batches; a failed write is retried with backoff, so a
database outage delays records but does not drop them. A record's webhook
messages (cti.store.outbox) travel with it, written in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from cti.calls.record import CallRecord
from cti.store.calls import CallStore
from cti.store.outbox import Message

log = logging.getLogger(__name__)


class RecordWriter:
    def __init__(self, store: CallStore, *, batch_size: int = 200, flush_interval: float = 0.2,
                 retry_max: float = 30.0) -> None:
        self.store = store
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_max = retry_max
        self.written = 0
        self._pending: list[tuple[CallRecord, Sequence[Message]]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._hurry = False  # a flush() is waiting
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="record-writer")

    def put(self, record: CallRecord, messages: Sequence[Message] = ()) -> None:
        """A finished call to store, with the webhook messages that report it."""
        self._pending.append((record, messages))
        self._idle.clear()
        if len(self._pending) == 1 or len(self._pending) >= self.batch_size:
            self._wake.set()  # the first record starts the flush timer; a full batch goes at once

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Wait until every record put so far is in the database."""
        self._hurry = True
        self._wake.set()
        await self._idle.wait()

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                self._hurry = False
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            if len(self._pending) < self.batch_size and not (self._closing or self._hurry):
                try:  # give the batch a moment to fill
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                except TimeoutError:
                    pass
                self._wake.clear()
            await self._write_pending()

    async def _write_pending(self) -> None:
        delay = 0.0
        while self._pending:
            batch = self._pending[: self.batch_size]
            try:
                self.written += await self.store.save([record for record, _ in batch],
                                                      [m for _, messages in batch for m in messages])
            except Exception:  # the database is an edge: log, keep the records, retry
                delay = min(self.retry_max, max(0.5, delay * 2))
                log.exception("writing %d call records failed; retrying in %.1fs", len(batch), delay)
                await asyncio.sleep(delay)
                continue
            delay = 0.0
            del self._pending[: len(batch)]
