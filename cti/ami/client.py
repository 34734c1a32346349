"""The AMI link to Asterisk: panoramisk, subclassed where 1.4 is wrong.

What panoramisk 1.4 gets wrong, and what is done about it here:

- its protocol decodes each TCP read on its own and drops a UTF-8 character
  split across two reads: ``AmiProtocol.data_received`` uses our byte-level
  :class:`~cti.ami.framing.Framer` instead;
- its ``Action`` guesses from message texts whether more responses follow, so
  ``QueueAdd`` ("Added interface to queue") never completes and an error to a
  list action never resolves: :class:`CtiAction` decides from ``EventList``;
- it has no action timeout: every action here has one;
- after a reconnect it re-sends the actions that got no answer, an Originate
  included (a second call to a citizen): here an action pending when the link
  drops fails with :class:`AmiDisconnected` and is never re-sent;
- it has no liveness check: a silent peer is probed with Ping and dropped;
- its reconnect is a fixed delay: here it is exponential backoff with jitter,
  and a refused login stops the client with a clear error instead of retrying;
- it writes whatever a header holds: here every action goes through
  :func:`cti.ami.action.encode_action`, which refuses a line break or a NUL in
  any header before a byte is written (:class:`AmiUnsafeAction`).

A session's ``FullyBooted`` (sent at login by a running Asterisk, or when a
starting one finishes loading, trace R4b) is kept, so that the resync waits
for app_queue before asking for QueueStatus.

Every message is also handed, in stream order, to ``on_message`` (the call
pipeline), responses and list items included: the tracker needs the
CoreShowChannels items at their place in the stream, not after an await.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from cti.ami.action import UnsafeAction, encode_action
from cti.ami.framing import Framer
from cti.ami.message import AmiMessage
from cti.settings import AmiSettings

log = logging.getLogger(__name__)


class AmiError(Exception):
    """Something went wrong on the AMI link."""


class AmiLoginError(AmiError):
    """Asterisk refused the credentials; retrying would not help."""


class AmiTimeout(AmiError):
    """An action got no response in time."""


class AmiDisconnected(AmiError):
    """The link is down, or dropped before the action was answered."""


class AmiUnsafeAction(AmiError, UnsafeAction):
    """An action with a line break or a NUL in a header: refused, nothing written."""


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error``."""

    def __init__(self, action: str, message: str, response: AmiMessage) -> None:
        super().__init__(f"AMI {action} failed: {message}")
        self.action = action
        self.reason = message
        self.response = response


class CtiAction(Action):
    """panoramisk's Action, completed by what Asterisk says rather than by guesswork.

    An error ends any action. A first response with ``EventList: start`` opens a
    list that ends with its ``EventList: Complete`` event. Anything else is
    complete with its first response (an async Originate's later
    OriginateResponse is an event like any other)."""

    @property
    def multi(self) -> bool:
        first = self.responses[0]  # panoramisk's Message, untyped
        multi: bool = first.response.lower() != "error" and first.eventlist.lower() == "start"
        return multi

    @property
    def completed(self) -> bool:
        if not self.multi:
            return True
        complete: bool = self.responses[-1].eventlist.lower() == "complete"
        return complete

    def __str__(self) -> str:
        """What panoramisk writes to the socket: our encoding (checked before the action was made)."""
        return encode_action(dict(self.items())).decode("utf-8")


def _to_panoramisk(message: AmiMessage) -> Message:
    headers: dict[str, Any] = dict(message.fields)
    if message.repeated:
        headers.update(message.repeated)
    converted = Message(headers, "\n".join(message.body))
    converted.frame = message  # the original, handed back to callers
    return converted


class AmiProtocol(AMIProtocol):
    """panoramisk's protocol with byte-level framing and no re-sending."""

    closed: bool  # set by AMIProtocol.__init__

    def __init__(self, on_message: Callable[[AmiMessage], None], source: str) -> None:
        super().__init__()
        self._on_message = on_message
        self._source = source

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.encoding = "utf-8"
        self.log = log
        self.framer = Framer(source=self._source)
        loop = asyncio.get_running_loop()
        self.banner: asyncio.Future[str] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.booted: asyncio.Future[int] = loop.create_future()  # FullyBooted's Uptime
        self.last_rx = time.monotonic()

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        for message in self.framer.feed(data):
            if message.kind == "banner":
                if not self.banner.done():
                    self.banner.set_result(message.name)
                continue
            if message.name == "FullyBooted" and not self.booted.done():
                uptime = message.get("uptime")
                self.booted.set_result(int(uptime) if uptime.isdigit() else 0)
            action_id = message.peek("ActionID")
            if action_id and action_id in self.responses:
                self.handle_message(_to_panoramisk(message))
            try:
                self._on_message(message)
            except Exception:  # a bug downstream must not take the link down
                log.exception("%s: handling %r failed", self._source, message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        """Close, failing every pending action; unlike panoramisk, nothing is kept to re-send."""
        pending = {id(a): a for a in self.responses.values()}
        self.responses.clear()
        for action in pending.values():
            if not action.future.done():
                action.future.set_exception(
                    AmiDisconnected(f"AMI link to {self._source} dropped before {action['Action']} was answered"))
        if not self.closed:
            self.closed = True
            self.transport.close()
        if not self.banner.done():
            self.banner.set_exception(AmiDisconnected(f"{self._source} closed the connection before its banner"))
        if not self.lost.done():
            self.lost.set_result(None)


class AmiClient:
    """One AMI session at a time, reconnected for as long as ``run`` runs."""

    def __init__(
        self,
        settings: AmiSettings,
        on_message: Callable[[AmiMessage], None],
        *,
        on_connected: Callable[[], Awaitable[None]] | None = None,
        on_lost: Callable[[], None] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.address = f"{settings.host}:{settings.port}"
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._rng = rng
        self._protocol: AmiProtocol | None = None
        self._sleeper: asyncio.Future[None] | None = None
        self._closing = False
        self.connected = asyncio.Event()
        self.sessions = 0  # logins so far

    # -- actions ------------------------------------------------------------------

    async def send(self, fields: dict[str, Any], timeout: float | None = None) -> AmiMessage:
        """Send an action and return its response; ``Response: Error`` raises AmiActionError."""
        responses = await self._send(fields, timeout)
        return responses[0]

    async def collect(self, fields: dict[str, Any], timeout: float | None = None) -> list[AmiMessage]:
        """Send a list action (CoreShowChannels, QueueStatus…) and return its items."""
        responses = await self._send(fields, timeout)
        return [m for m in responses[1:] if m.fields.get("eventlist", "").lower() != "complete"]

    async def _send(self, fields: dict[str, Any], timeout: float | None) -> list[AmiMessage]:
        protocol = self._protocol
        name = str(fields.get("Action", "?"))
        try:
            encode_action(fields)
        except UnsafeAction as exc:
            raise AmiUnsafeAction(exc.action, exc.header, exc.reason) from None
        if protocol is None or protocol.closed:
            raise AmiDisconnected(f"AMI link to {self.address} is down; {name} not sent")
        action = CtiAction(dict(fields))
        future = protocol.send(action)
        limit = self.settings.action_timeout if timeout is None else timeout
        try:
            result = await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError:
            protocol.responses.pop(action.id, None)
            raise AmiTimeout(
                f"AMI {name} (ActionID {action.id}) got no response from {self.address} within {limit:g}s"
            ) from None
        messages = [m.frame for m in (result if isinstance(result, list) else [result])]
        if messages[0].is_error:
            raise AmiActionError(name, messages[0].get("message"), messages[0])
        return messages

    # -- the session loop ----------------------------------------------------------

    async def run(self) -> None:
        """Connect, log in, watch the link, reconnect; returns after ``close``.

        Raises AmiLoginError when Asterisk refuses the credentials."""
        attempt = 0
        while not self._closing:
            try:
                protocol = await self._connect()
            except AmiLoginError:
                raise
            except (OSError, AmiError, TimeoutError) as exc:
                delay = self._backoff(attempt)
                attempt += 1
                log.warning("AMI %s: %s; retrying in %.2fs", self.address, exc, delay)
                await self._sleep(delay)
                continue
            attempt = 0
            await self._serve(protocol)
            if self._closing:
                break
            if self._on_lost is not None:
                self._on_lost()
            delay = self._backoff(0)
            log.warning("AMI link to %s lost; reconnecting in %.2fs", self.address, delay)
            await self._sleep(delay)

    async def close(self) -> None:
        self._closing = True
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            try:
                await self.send({"Action": "Logoff"}, timeout=1.0)
            except AmiError:
                pass
            protocol.close()
        self._wake_sleep()

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: half fixed, half random, so that
        many clients reconnecting to a restarted Asterisk do not arrive together."""
        base: float = min(self.settings.reconnect_max, self.settings.reconnect_min * (2 ** min(attempt, 30)))
        return base / 2 + self._rng() * base / 2

    async def _connect(self) -> AmiProtocol:
        loop = asyncio.get_running_loop()
        limit = self.settings.action_timeout
        _, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: AmiProtocol(self._on_message, self.address),
                                   self.settings.host, self.settings.port),
            limit,
        )
        try:
            banner = await asyncio.wait_for(asyncio.shield(protocol.banner), limit)
        except TimeoutError:
            protocol.close()
            raise AmiTimeout(f"{self.address} sent no AMI banner within {limit:g}s") from None
        self._protocol = protocol
        try:
            await self.send({"Action": "Login", "Username": self.settings.username,
                             "Secret": self.settings.secret, "Events": "on"})
        except AmiActionError as exc:
            protocol.close()
            raise AmiLoginError(
                f"Asterisk at {self.address} refused the AMI login of user {self.settings.username!r}: "
                f"{exc.reason}. Check CTI_AMI_USER/CTI_AMI_SECRET (or ami.username/ami.secret) "
                f"against the [{self.settings.username}] section of manager.conf."
            ) from None
        if self.settings.systemname:
            await self._check_systemname(protocol)
        self.sessions += 1
        log.info("AMI logged in to %s (Asterisk Call Manager/%s) as %s", self.address, banner,
                 self.settings.username)
        return protocol

    async def _check_systemname(self, protocol: AmiProtocol) -> None:
        """Several nodes' call ids are told apart by the systemname Asterisk puts before each Uniqueid
        and Linkedid (asterisk.conf [options] systemname): a node without it, or with another node's,
        would mix two nodes' calls. CoreSettings says which it is."""
        expected = self.settings.systemname
        try:
            told = (await self.send({"Action": "CoreSettings"})).get("systemname")
        except AmiActionError as exc:
            protocol.close()
            raise AmiLoginError(
                f"Asterisk at {self.address} refused CoreSettings ({exc.reason}): the [{self.settings.username}] "
                f"user of manager.conf needs write = reporting to show its systemname") from None
        if told != expected:
            protocol.close()
            raise AmiLoginError(
                f"Asterisk at {self.address} has systemname {told!r}, but cti's settings name this node "
                f"{expected!r}: set systemname = {expected} in asterisk.conf [options] (and restart Asterisk), "
                f"or correct ami.nodes") from None

    async def _serve(self, protocol: AmiProtocol) -> None:
        """Watch the link while the resync runs beside it (it may wait for Asterisk to finish booting,
        and retries); the resync ends when the link does."""
        self.connected.set()
        resync = asyncio.ensure_future(self._resync()) if self._on_connected is not None else None
        try:
            await self._watch(protocol)
        finally:
            self.connected.clear()
            protocol.close()
            if resync is not None:
                resync.cancel()
                await asyncio.wait([resync])

    async def _resync(self) -> None:
        assert self._on_connected is not None
        try:
            await self._on_connected()
        except AmiError as exc:
            log.warning("AMI resync after login failed: %s", exc)

    async def booted(self, timeout: float) -> int | None:
        """Wait for this session's FullyBooted; its Uptime in seconds, or None if none came in time."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            raise AmiDisconnected(f"AMI link to {self.address} is down")
        waiting: list[asyncio.Future[Any]] = [protocol.booted, protocol.lost]
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if protocol.booted.done():
            return protocol.booted.result()
        if protocol.lost.done():
            raise AmiDisconnected(f"AMI link to {self.address} dropped before Asterisk was fully booted")
        return None

    async def _watch(self, protocol: AmiProtocol) -> None:
        """Return when the link is lost; drop it when the peer goes silent."""
        interval = self.settings.liveness_interval
        while not protocol.lost.done():
            idle = time.monotonic() - protocol.last_rx
            if idle >= interval:
                try:
                    await self.send({"Action": "Ping"}, timeout=self.settings.liveness_timeout)
                except AmiTimeout:
                    log.warning("AMI peer %s silent for %.1fs; dropping the link", self.address,
                                time.monotonic() - protocol.last_rx)
                    protocol.transport.abort()
                    protocol.close()
                    return
                except AmiError:
                    return
                continue
            await asyncio.wait([protocol.lost], timeout=interval - idle)

    async def _sleep(self, delay: float) -> None:
        self._sleeper = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._sleeper, delay)
        except TimeoutError:
            pass

    def _wake_sleep(self) -> None:
        if self._sleeper is not None and not self._sleeper.done():
            self._sleeper.set_result(None)
