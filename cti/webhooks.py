"""What units hear from cti by HTTP POST of JSON: the call records of interconnected units
(对接联通) when a call ends, and case notices (a case dispatched to them, reminders, overdue
notices, escalations…), delivered from the webhook outbox (cti.store.outbox).

Every message is a row in the database before it is sent, written with what it reports, so
nothing pending is lost when cti stops or crashes; a new sender on the same database goes on
where the last one stopped. Delivery is at least once: every attempt carries the message's
``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header: a structured-field string, so
quoted, ``"call.ended:1795281884.19"``), the same on every attempt, beside the ``X-CTI-Linkedid``
(calls) or ``X-CTI-Case`` and ``X-CTI-Event`` (cases) headers; a unit drops a key it has seen.

Each destination has a worker of its own: one request in flight, oldest message first, its own
exponential backoff with jitter (reset by a success), so a unit that is down or slow never
delays another, and nothing evicts anything. A 2xx marks the message delivered; anything else
is an error kept with the message, and the destination waits before its next attempt:

- the unit is unreachable (no connection, no answer within ``webhooks.timeout``, HTTP 5xx, 408,
  425, 429): all its messages wait, in the outbox too, and the same one goes first again after
  the wait (``Retry-After`` is honoured up to ``retry_max``); only a sender started during that
  wait may send a message written meanwhile before it;
- the unit refuses this message (any other answer, 3xx and 4xx): the message steps aside with a
  backoff of its own, and the next ones go after the wait, so one message a unit cannot take
  does not hold up every later one.

A message still undelivered ``webhooks.give_up_after_days`` after it was written is dead at its
next failed attempt: kept, listed (``GET /api/admin/webhooks?state=dead``), counted in
/api/metrics, and sent again only by an admin (``POST /api/admin/webhooks/{id}/retry``).
Delivered messages are purged after ``webhooks.keep_delivered_days``.

Several senders may share a database (``cti serve`` and a second one by mistake, a restart
overlapping the old process): taking a message for an attempt is a conditional update (a
lease of ``timeout`` + 60 s), so two never send it at once; a sender that dies mid-attempt
leaves the message to be tried again when its lease ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import aiohttp

from cti.calls.record import CallRecord
from cti.privacy import without_caller
from cti.settings import WebhookSettings
from cti.store.outage import Outage
from cti.store.outbox import Backlog, Message, OutboxStore, Stored, message

log = logging.getLogger(__name__)
LEASE_MARGIN = 60.0  # seconds beyond the request timeout a taken message stays taken
PURGE_EVERY = 3600.0  # seconds between purges of old delivered messages
UNREACHABLE = frozenset({408, 425, 429})  # 4xx answers that mean "later", not "never this message"
_STORE_RETRIES = 5  # marking a delivered message: tries before the lease is left to expire


def call_ended(url: str, unit: str, record: CallRecord, zone: ZoneInfo, *, confidential: bool = False) -> Message:
    """A finished call, for an interconnected unit's system; a confidential caller (the call's case says so)
    masked, as the unit's API shows them."""
    data = record.to_json(zone)
    return message(url, unit, "call.ended", f"call.ended:{record.linkedid}",
                   {"event": "call.ended", "call": without_caller(data, record.direction) if confidential else data},
                   {"X-CTI-Linkedid": record.linkedid})


def shown_url(url: str) -> str:
    """A webhook's URL as logs and lists show it: no user or password, no query (either may hold
    the unit's credentials)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "…" if parts.query else "", ""))


def backoff(attempt: int, low: float, high: float, rng: Callable[[], float]) -> float:
    """The wait after ``attempt`` failures (1, 2…): doubling from ``low`` up to ``high``, half of it
    fixed and half random, so that units coming back are not all tried at the same moment."""
    base: float = min(high, low * 2 ** min(attempt - 1, 30))
    return base / 2 + rng() * base / 2


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    error: str = ""
    refused: bool = False  # the unit answered, but not this message (it steps aside)
    retry_after: float | None = None


@dataclass
class _Destination:
    url: str
    task: asyncio.Task[None] | None = None
    failures: int = 0  # consecutive failed attempts
    paused_until: float = 0.0  # loop time before which nothing is sent here
    resume_at: datetime | None = None  # the same, as the outbox's next attempts say it
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    taken: int | None = None  # the message in flight


class WebhookSender:
    """Delivers the outbox, a worker per destination; ``start()``, then ``close()``."""

    def __init__(self, outbox: OutboxStore, settings: WebhookSettings | None = None, *, poll_interval: float = 1.0,
                 lease_margin: float = LEASE_MARGIN, clock: Callable[[], datetime] = now_utc,
                 rng: Callable[[], float] = random.random) -> None:
        self.outbox = outbox
        self.settings = settings or WebhookSettings()
        self.poll_interval = poll_interval  # how often the outbox is read for what another process wrote
        self.lease = timedelta(seconds=self.settings.timeout + lease_margin)  # a taken message stays taken
        self._outage = Outage(log, "reading the webhook outbox")
        self.clock = clock
        self._rng = rng
        self.delivered = 0  # by this sender
        self.failed = 0  # attempts that failed
        self.pending: list[Backlog] = []  # the outbox as last read (every poll_interval)
        self.dead: dict[str, int] = {}  # unit -> dead messages, as last read
        self._destinations: dict[str, _Destination] = {}
        self._generation = 0  # counts the outbox's changes: a worker with nothing to do leaves only if none came
        self._wake = asyncio.Event()
        self._closing = False
        self._grace = 5.0
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        outbox.listen(self._changed)

    # -- what the metrics read --------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Messages waiting, as last read."""
        return sum(b.count for b in self.pending)

    def pending_by_unit(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for b in self.pending:
            counts[b.unit] = counts.get(b.unit, 0) + b.count
        return counts

    def oldest_by_unit(self) -> dict[str, float]:
        """Seconds the oldest pending message of each unit has waited."""
        now = self.clock()
        ages: dict[str, float] = {}
        for b in self.pending:
            ages[b.unit] = max(ages.get(b.unit, 0.0), (now - b.oldest).total_seconds())
        return ages

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def close(self, grace: float = 5.0) -> None:
        """Stop: requests in flight get ``grace`` seconds to finish; what is not delivered stays in
        the outbox for the next start."""
        self._closing = True
        self._grace = grace
        self._wake.set()
        for destination in self._destinations.values():
            destination.wake.set()
        if self._task is not None:
            await self._task
        self.outbox.unlisten(self._changed)

    def _changed(self, retried: str | None) -> None:
        """The outbox has new messages (or one was put up for a retry now: its destination tries at once)."""
        self._generation += 1
        self._wake.set()
        destination = self._destinations.get(retried) if retried else None
        if destination is not None:
            destination.failures, destination.paused_until, destination.resume_at = 0, 0.0, None
            destination.wake.set()

    async def _run(self) -> None:
        """Read the outbox (when told of new messages, else every poll_interval): start a worker for
        each destination with messages pending, wake those with messages due."""
        last_purge = -PURGE_EVERY
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout)) as session:
            self._session = session
            try:
                while not self._closing:
                    self._wake.clear()
                    try:
                        await self._look()
                        if loop.time() - last_purge >= PURGE_EVERY:
                            last_purge = loop.time()
                            await self._purge()
                        self._outage.worked()
                    except Exception as exc:  # the database is an edge: read again at the next poll
                        self._outage.failed(exc)
                    await _wait(self._wake, self.poll_interval)
            finally:
                await self._stop_workers()

    async def _look(self) -> None:
        self.pending = await self.outbox.backlog()
        self.dead = await self.outbox.dead()
        now = self.clock()
        for url, due in _soonest(self.pending).items():
            destination = self._destinations.get(url)
            if destination is None:
                destination = self._destinations[url] = _Destination(url)
                destination.task = asyncio.create_task(self._work(destination), name=f"webhooks {shown_url(url)}")
            elif due <= now:
                destination.wake.set()

    async def _purge(self) -> None:
        days = self.settings.keep_delivered_days
        if days > 0:
            purged = await self.outbox.purge(self.clock() - timedelta(days=days))
            if purged:
                log.info("%d webhook messages delivered more than %g days ago purged", purged, days)

    async def _stop_workers(self) -> None:
        tasks = [d.task for d in self._destinations.values() if d.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        cut_short = [d.taken for d in self._destinations.values() if d.taken is not None]
        if cut_short:
            try:
                await self.outbox.release(cut_short, self.clock())
            except Exception:  # their leases end in timeout + 60 s: they are tried again then
                log.exception("releasing %d webhook messages cut short failed", len(cut_short))

    # -- one destination ------------------------------------------------------------------------

    async def _work(self, destination: _Destination) -> None:
        """Deliver one destination's messages, oldest first, one at a time, until none is pending."""
        loop = asyncio.get_running_loop()
        try:
            while not self._closing:
                destination.wake.clear()
                paused = destination.paused_until - loop.time()
                if paused > 0:
                    await _wait(destination.wake, paused)
                    continue
                generation = self._generation
                # the messages held for this pause are due when it ends, however the clocks differ
                now = max(self.clock(), destination.resume_at or datetime.min.replace(tzinfo=UTC))
                try:
                    taken, next_due = await self.outbox.claim(destination.url, now, now + self.lease)
                except Exception:
                    log.exception("reading the webhook outbox for %s failed", shown_url(destination.url))
                    await _wait(destination.wake, self.poll_interval)
                    continue
                if taken is not None and self._closing:  # stopping: it waits for the next start
                    await self.outbox.release([taken.id], now)
                    return
                if taken is None:
                    if next_due is None:
                        if generation == self._generation:
                            return  # nothing pending; a message written from now on starts a new worker
                        continue
                    await _wait(destination.wake, (next_due - self.clock()).total_seconds())
                    continue
                destination.taken = taken.id
                outcome = await self._post(taken)
                await self._settle(destination, taken, outcome)
                destination.taken = None
        finally:
            if self._destinations.get(destination.url) is destination:
                del self._destinations[destination.url]

    async def _post(self, taken: Stored) -> Outcome:
        assert self._session is not None
        headers = {"Content-Type": "application/json; charset=utf-8", **taken.headers,
                   "Idempotency-Key": _sf_string(taken.key)}
        try:
            async with self._session.post(taken.destination, data=taken.body.encode(), headers=headers,
                                          allow_redirects=False) as reply:
                if 200 <= reply.status < 300:
                    return Outcome(True)
                unreachable = reply.status >= 500 or reply.status in UNREACHABLE
                return Outcome(False, f"HTTP {reply.status} {reply.reason or ''}".strip(), refused=not unreachable,
                               retry_after=_seconds(reply.headers.get("Retry-After")))
        except TimeoutError:
            return Outcome(False, f"no answer within {self.settings.timeout:g} s")
        except aiohttp.ClientError as exc:
            return Outcome(False, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # whatever else goes wrong with one request, the worker goes on
            log.exception("webhook %s to %s: unexpected error", taken.key, shown_url(taken.destination))
            return Outcome(False, f"{type(exc).__name__}: {exc}")

    async def _settle(self, destination: _Destination, taken: Stored, outcome: Outcome) -> None:
        now = self.clock()
        if outcome.delivered:
            destination.failures, destination.paused_until, destination.resume_at = 0, 0.0, None
            await self._mark_delivered(taken, now)
            self.delivered += 1
            return
        self.failed += 1
        destination.failures += 1
        low, high = self.settings.retry_min, self.settings.retry_max
        pause = max(backoff(destination.failures, low, high, self._rng), min(high, outcome.retry_after or 0.0))
        destination.paused_until = asyncio.get_running_loop().time() + pause
        destination.resume_at = now + timedelta(seconds=pause)
        # refused: this message waits its own backoff while the next ones go; unreachable: the destination's
        # messages all wait, and this one goes first again
        wait = backoff(taken.attempts, low, high, self._rng) + pause if outcome.refused else pause
        dead = now - taken.created_at >= timedelta(days=self.settings.give_up_after_days)
        try:
            await self.outbox.failed(taken.id, outcome.error, now + timedelta(seconds=wait), now if dead else None,
                                     hold=None if outcome.refused else taken.destination)
        except Exception:  # its lease ends in timeout + 60 s: it is tried again then
            log.exception("recording the failed attempt of webhook message %d failed", taken.id)
        if dead:
            log.error("webhook %s to %s (unit %s) given up after %d attempts: %s; it is kept as dead "
                      "(GET /api/admin/webhooks?state=dead)", taken.key, shown_url(taken.destination), taken.unit,
                      taken.attempts, outcome.error)
        else:
            log.warning("webhook %s to %s failed (attempt %d): %s; next attempt in %.1f s", taken.key,
                        shown_url(taken.destination), taken.attempts, outcome.error, wait)

    async def _mark_delivered(self, taken: Stored, now: datetime) -> None:
        delay = 0.5
        for attempt in range(1, _STORE_RETRIES + 1):
            try:
                await self.outbox.delivered(taken.id, now)
                return
            except Exception:
                if attempt == _STORE_RETRIES:  # the lease ends and it is sent again: the unit drops it by its key
                    log.exception("webhook message %d delivered but not marked so", taken.id)
                    return
                await asyncio.sleep(delay)
                delay *= 2


def _soonest(backlog: list[Backlog]) -> dict[str, datetime]:
    """Each destination's soonest next attempt."""
    due: dict[str, datetime] = {}
    for b in backlog:
        due[b.destination] = min(b.next_due, due.get(b.destination, b.next_due))
    return due


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Until ``event`` is set or ``seconds`` have passed."""
    try:
        await asyncio.wait_for(event.wait(), max(0.0, seconds))
    except TimeoutError:
        pass


def _sf_string(text: str) -> str:
    """A structured-field string (RFC 8941 3.3.3), as the Idempotency-Key draft asks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _seconds(retry_after: str | None) -> float | None:
    """A Retry-After of delay-seconds (an HTTP date is ignored: the backoff applies)."""
    if retry_after is None or not retry_after.strip().isdigit():
        return None
    return float(retry_after.strip())
