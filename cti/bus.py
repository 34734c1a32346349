"""What one cti instance tells the others: PostgreSQL's LISTEN/NOTIFY.

Every instance reads every node's AMI, so calls, pops, agent states and the wallboard
are the same on each without help. What only one instance learns travels here: a
FastAGI route decision or IVR outcome (Asterisk asks one instance), a desk's
listen request, the hotspot sweep's alerts (the lease holder's, cti.leader), a
sign-out, and "the outbox has new messages" for the instance delivering webhooks.

Why PostgreSQL: several instances need it already (they share the database, and
SQLite cannot be shared), so the bus adds no server to run, secure and watch.
NOTIFY reaches the sessions listening when it commits, at most once; that fits,
because nothing here is the only copy of anything lasting: records, cases and the
outbox are tables, and a message a peer misses while it reconnects is a pop or a
timeline entry it rebuilds from AMI or no longer needs. A payload is at most 8000
bytes; these are a few hundred. On SQLite (one instance) the bus has no peers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "cti_bus"
LIMIT = 7900  # bytes of a NOTIFY payload (PostgreSQL's limit is 8000)
Receiver = Callable[[str, dict[str, Any]], None]  # kind, body


def encode(instance: str, kind: str, body: dict[str, Any]) -> str:
    """A message as NOTIFY carries it; over ``LIMIT`` bytes it is not sent."""
    return json.dumps({"from": instance, "kind": kind, "body": body}, ensure_ascii=False, separators=(",", ":"))


class Bus(Protocol):
    published: int
    received: int

    def publish(self, kind: str, body: dict[str, Any]) -> None: ...

    async def run(self, stop: asyncio.Event) -> None: ...


class NoPeers:
    """One instance (SQLite): nothing to tell anyone."""

    published = 0
    received = 0

    def __init__(self, receive: Receiver) -> None:
        pass

    def publish(self, kind: str, body: dict[str, Any]) -> None:
        pass

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()


class PostgresBus:
    """LISTEN on one connection of its own, kept open (reconnected with backoff); NOTIFY on it too."""

    def __init__(self, url: str, instance: str, receive: Receiver, *, retry_max: float = 10.0) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.instance = instance
        self._receive = receive
        self._retry_max = retry_max
        self._connection: Any = None
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
        self.connected = asyncio.Event()
        self.published = 0
        self.received = 0
        self.connections = 0  # LISTEN sessions opened so far
        self.dropped = 0  # messages not sent: too long, or the queue full while PostgreSQL was away

    def publish(self, kind: str, body: dict[str, Any]) -> None:
        payload = encode(self.instance, kind, body)
        if len(payload.encode()) > LIMIT:
            self.dropped += 1
            log.error("bus message %s of %d bytes is over NOTIFY's limit: not sent", kind, len(payload.encode()))
            return
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self, stop: asyncio.Event) -> None:
        import asyncpg  # type: ignore[import-untyped]  # the driver, there whenever the database is PostgreSQL

        delay = 0.5
        while not stop.is_set():
            try:
                self._connection = await asyncpg.connect(self.dsn, timeout=5)
                lost = asyncio.Event()
                self._connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await self._connection.add_listener(CHANNEL, self._on_notify)
                self.connections += 1
                self.connected.set()
                delay = 0.5
                await self._send_until(stop, lost)
            except Exception as exc:  # refused, dropped, timed out: all mean "again later"
                log.warning("the bus (PostgreSQL LISTEN %s): %s; again in %.1fs", CHANNEL, exc, delay)
            finally:
                self.connected.clear()
                if self._connection is not None and not self._connection.is_closed():
                    await self._connection.close(timeout=2)
                self._connection = None
            if not stop.is_set():
                await asyncio.sleep(delay)
                delay = min(self._retry_max, delay * 2)

    async def _send_until(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        ending = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
        try:
            while True:
                getting = asyncio.ensure_future(self._queue.get())
                await asyncio.wait([getting, *ending], return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    return
                payload = getting.result()
                try:
                    await self._connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                except Exception:
                    self._queue.put_nowait(payload)  # sent again on the next connection
                    raise
                self.published += 1
        finally:
            for task in ending:
                task.cancel()

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            if message.get("from") == self.instance:
                return  # NOTIFY reaches its sender too
            kind, body = str(message["kind"]), message["body"]
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            log.error("bus: a message that is not cti's (%s): %.200r", exc, payload)
            return
        self.received += 1
        try:
            self._receive(kind, body)
        except Exception:
            log.exception("bus: handling a %s message failed", kind)


def make_bus(url: str, instance: str, receive: Receiver) -> Bus:
    """The bus for the database at ``url``: PostgreSQL's NOTIFY, or none for SQLite."""
    return PostgresBus(url, instance, receive) if url.startswith("postgres") else NoPeers(receive)
