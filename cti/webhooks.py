"""What units hear from cti by HTTP POST of JSON: the call records of
interconnected units (对接联通) when a call ends, and case notices (a case
dispatched to them, reminders, overdue notices, escalations).

Delivery is at least once: a unit that is down gets the message later, retried
with backoff; the ``X-CTI-Linkedid`` (calls) or ``X-CTI-Case`` and
``X-CTI-Event`` (cases) headers let it drop a repeat. The queue is
bounded so a unit gone for days cannot exhaust memory; what is dropped is
logged with its Linkedid (the record itself stays in cti's database).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from cti.calls.record import CallRecord

log = logging.getLogger(__name__)


@dataclass
class _Delivery:
    url: str
    what: str  # for the logs: "call 1795…", "case 12 case.overdue"
    body: bytes
    headers: dict[str, str]
    attempts: int = 0


class WebhookSender:
    def __init__(self, zone: ZoneInfo, *, timeout: float = 5.0, retry_min: float = 1.0, retry_max: float = 300.0,
                 max_pending: int = 10_000) -> None:
        self.zone = zone
        self.timeout = timeout
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.max_pending = max_pending
        self.delivered = 0
        self._pending: deque[_Delivery] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def send(self, url: str, record: CallRecord) -> None:
        """A finished call to an interconnected unit."""
        self.post(url, {"event": "call.ended", "call": record.to_json(self.zone)},
                  {"X-CTI-Linkedid": record.linkedid})

    def post(self, url: str, payload: dict[str, Any], headers: dict[str, str]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        what = " ".join(f"{k.removeprefix('X-CTI-').lower()} {v}" for k, v in headers.items())
        if len(self._pending) >= self.max_pending:
            dropped = self._pending.popleft()
            log.error("webhook queue full: %s for %s dropped (it stays in the database)", dropped.what, dropped.url)
        self._pending.append(_Delivery(url, what, body, headers))
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def close(self, grace: float = 5.0) -> None:
        """Try to deliver what is pending for ``grace`` seconds, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, grace)
            except TimeoutError:
                pass
        for delivery in self._pending:
            log.warning("webhook for %s to %s not delivered before shutdown", delivery.what, delivery.url)

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not (self._closing and not self._pending):
                if not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                delivery = self._pending[0]
                if await self._post(session, delivery):
                    self._pending.popleft()
                    self.delivered += 1
                    continue
                delivery.attempts += 1
                self._pending.rotate(-1)  # one unit being down must not hold up the others
                delay = min(self.retry_max, self.retry_min * 2 ** min(delivery.attempts - 1, 16))
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
                self._wake.clear()

    async def _post(self, session: aiohttp.ClientSession, delivery: _Delivery) -> bool:
        try:
            async with session.post(delivery.url, data=delivery.body, headers={
                    "Content-Type": "application/json; charset=utf-8", **delivery.headers}) as reply:
                if 200 <= reply.status < 300:
                    return True
                log.warning("webhook for %s: %s answered HTTP %d", delivery.what, delivery.url, reply.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("webhook for %s to %s failed: %s", delivery.what, delivery.url, exc or type(exc).__name__)
        return False
