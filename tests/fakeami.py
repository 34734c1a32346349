"""A fake Asterisk AMI server on 127.0.0.1, driven by captured transcripts.

It speaks AMI over real TCP: banner, Login (checked against a secret, refused
with Asterisk's own "Authentication failed"), Ping, Logoff, and then the bytes
a real Asterisk 22 sent in a captured session, split into random-sized writes.
Where the capture answers an action our client also sends (CoreShowChannels
after a reconnect), the server waits for the client's action and answers with
the captured response under the client's ActionID.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "ami-traces"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
_ACTION_ID = re.compile(rb"^ActionID: (.*)\r$", re.MULTILINE)

# What a running Asterisk sends a session right after its Login (main/manager.c; trace R3): no Timestamp.
FULLY_BOOTED = (b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 38\r\nLastReload: 38\r\n"
                b"Status: Fully Booted\r\n\r\n")

EMPTY_CHANNEL_LIST = (
    b"Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
    b"Event: CoreShowChannelsComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
)


@dataclass
class Scripted:
    raw: bytes
    answers: str = ""  # the client action this message answers ("" = just send it)
    action_id: bytes = b""  # its captured ActionID, replaced with the client's


@dataclass
class Session:
    """What the fake Asterisk does on one connection."""

    script: list[Scripted] = field(default_factory=list)
    answer_resync: bool = True  # answer the client's first CoreShowChannels with an empty list
    close_at_end: bool = True
    silent: bool = False  # after login, answer nothing at all (not even Ping)
    # action -> "ignore" | "drop" | "error:<Message>" | "reply:<Message>"
    on_action: dict[str, str] = field(default_factory=dict)
    # action -> the events Asterisk sends after its reply (MixMonitorStart after MixMonitor…)
    events_after: dict[str, Callable[[dict[str, str]], bytes]] = field(default_factory=dict)
    # action -> its whole answer, made from the action (a Getvar's Value)
    respond: dict[str, Callable[[dict[str, str]], bytes]] = field(default_factory=dict)
    banner: bool = True  # False: accept and close at once, as Asterisk did 1 ms after a restart
    hold: asyncio.Event | None = None  # when given, the banner waits for it (a PBX not answering yet)
    gate: asyncio.Event | None = None  # when given, the script waits for it after the login
    pauses: dict[int, asyncio.Event] = field(default_factory=dict)  # script index -> wait for this first
    # sent with the login's answer: a running Asterisk's FullyBooted; None for one still starting (R4b)
    booted: bytes | None = FULLY_BOOTED


RESYNC_ACTIONS = ("CoreShowChannels", "QueueStatus")  # what our client asks after every login
AT_LOGIN = 0.5  # seconds after its Login within which a captured client's action was part of its resync


def transcript(name: str) -> Session:
    """A session replaying ``fixtures/ami-traces/NAME.jsonl`` after our own login.

    The captured banner and login response are left out (the server does its
    own). The captured answers to the lists our client also asks for after its
    login (CoreShowChannels, QueueStatus sent with the login) wait for our
    client's action and go out under its ActionID, in the captured order; every
    other captured response is sent as it was."""
    with (FIXTURES / f"{name}.jsonl").open(encoding="utf-8") as lines:
        entries = [json.loads(line) for line in lines]
    sent = [(e["t"], _fields(e["raw"].encode())) for e in entries if e["dir"] == "out"]
    login = next((t for t, a in sent if a.get(b"Action") == b"Login"), 0.0)
    names = {a.get(b"ActionID", b""): a.get(b"Action", b"").decode() for t, a in sent
             if a.get(b"Action") == b"Login" or t - login <= AT_LOGIN}
    script = []
    for entry in entries:
        raw = entry["raw"].encode()
        if entry["dir"] != "in" or raw.startswith(b"Asterisk Call Manager/"):
            continue
        match = _ACTION_ID.search(raw)
        action_id = match.group(1) if match else b""
        if names.get(action_id) == "Login":
            continue
        if names.get(action_id) in RESYNC_ACTIONS:
            script.append(Scripted(raw, names[action_id], action_id))
        else:
            script.append(Scripted(raw))
    resync_id = next((i for i, n in names.items() if n == "CoreShowChannels"), None)
    booted = None
    if script and script[0].raw.startswith(b"Event: FullyBooted") and not script[0].answers:
        booted = script.pop(0).raw  # the running PBX's answer to the login, not part of what follows
    return Session(script=script, answer_resync=resync_id is None, booted=booted)


def first_index(session: Session, *needles: bytes) -> int:
    """Where in a session's script the first message containing every one of ``needles`` is."""
    return next(i for i, item in enumerate(session.script) if all(n in item.raw for n in needles))


def _fields(raw: bytes) -> dict[bytes, bytes]:
    fields = {}
    for line in raw.split(b"\r\n"):
        key, sep, value = line.partition(b": ")
        if sep:
            fields.setdefault(key, value)
    return fields


class FakeAmi:
    def __init__(self, sessions: list[Session], *, username: str = "cti", secret: str = "cti-secret",
                 auth_delay: float = 0.05, seed: int = 7, max_chunk: int = 4096) -> None:
        self.sessions = sessions
        self.username = username
        self.secret = secret
        self.auth_delay = auth_delay
        self.max_chunk = max_chunk
        self.random = random.Random(seed)
        self.connections = 0
        self.received: list[list[dict[str, str]]] = []  # actions received, per connection
        self.bytes_received = bytearray()  # every byte any client wrote, in order
        self.finished = asyncio.Event()  # every session played
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._locks: dict[int, asyncio.Lock] = {}

    async def __aenter__(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def actions(self, name: str) -> list[dict[str, str]]:
        return [a for conn in self.received for a in conn if a.get("Action") == name]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        index = self.connections
        self.connections += 1
        # after its scripted sessions the server is an Asterisk with no calls: log in, stay quiet
        session = self.sessions[index] if index < len(self.sessions) else Session(close_at_end=False)
        received: list[dict[str, str]] = []
        self.received.append(received)
        waiting: dict[str, asyncio.Queue[str]] = {}
        login: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        reading = asyncio.create_task(self._read(reader, writer, session, received, waiting, login))
        try:
            if not session.banner:
                return
            if session.hold is not None:
                await session.hold.wait()
            writer.write(BANNER)
            action = await login.get()
            if action.get("Username") != self.username or action.get("Secret") != self.secret:
                await asyncio.sleep(self.auth_delay)  # Asterisk answers a bad secret after a pause
                await self._send(writer, _response(action, b"Error", b"Authentication failed"))
                return
            await self._send(writer, _response(action, b"Success", b"Authentication accepted")
                             + (session.booted or b""))
            if session.answer_resync and not session.silent:
                try:
                    resync_id = await asyncio.wait_for(self._queue(waiting, "CoreShowChannels").get(), 2)
                    await self._send(writer, EMPTY_CHANNEL_LIST.replace(b"{id}", resync_id.encode()))
                except TimeoutError:
                    pass
            if session.silent:
                await reading
                return
            if session.gate is not None:
                await session.gate.wait()
            client_ids: dict[bytes, bytes] = {}  # captured ActionID -> the client's
            for position, item in enumerate(session.script):
                if position in session.pauses:
                    await session.pauses[position].wait()
                raw = item.raw
                if item.answers and item.action_id not in client_ids:
                    client_ids[item.action_id] = (await self._queue(waiting, item.answers).get()).encode()
                if item.action_id in client_ids:
                    raw = raw.replace(b"ActionID: " + item.action_id + b"\r\n",
                                      b"ActionID: " + client_ids[item.action_id] + b"\r\n")
                await self._send(writer, raw)
            if not session.close_at_end:
                await reading
            else:  # a graceful end: closing with the client's bytes unread would reset the connection and
                # throw away what it has not read yet (the last events of the script)
                writer.write_eof()
                await asyncio.wait([reading], timeout=2)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            reading.cancel()
            writer.close()
            if index == len(self.sessions) - 1:
                self.finished.set()

    @staticmethod
    def _queue(waiting: dict[str, asyncio.Queue[str]], name: str) -> asyncio.Queue[str]:
        return waiting.setdefault(name, asyncio.Queue())

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: Session,
                    received: list[dict[str, str]], waiting: dict[str, asyncio.Queue[str]],
                    login: asyncio.Queue[dict[str, str]]) -> None:
        buffer = b""
        while True:
            data = await reader.read(4096)
            if not data:
                writer.close()
                return
            self.bytes_received += data
            buffer += data
            while b"\r\n\r\n" in buffer:
                raw, buffer = buffer.split(b"\r\n\r\n", 1)
                action = {k.decode(): v.decode() for k, v in _fields(raw + b"\r\n").items()}
                received.append(action)
                await self._react(action, writer, session, waiting, login)

    async def _react(self, action: dict[str, str], writer: asyncio.StreamWriter, session: Session,
                     waiting: dict[str, asyncio.Queue[str]], login: asyncio.Queue[dict[str, str]]) -> None:
        name = action.get("Action", "")
        behaviour = session.on_action.get(name)
        if name == "Login":
            await login.put(action)
        elif session.silent or behaviour == "ignore":
            return
        elif behaviour == "drop":
            writer.transport.abort()
        elif name in session.respond:
            await self._send(writer, session.respond[name](action))
        elif behaviour is not None and behaviour.startswith(("error:", "reply:")):
            status = b"Error" if behaviour.startswith("error:") else b"Success"
            await self._send(writer, _response(action, status, behaviour.split(":", 1)[1].encode()))
        elif name == "Ping":
            pong = b"Ping: Pong\r\nTimestamp: 1795281316.245723\r\n"  # as in S10
            await self._send(writer, _response(action, b"Success", None, pong))
        elif name == "Logoff":
            await self._send(writer, _response(action, b"Goodbye", b"Thanks for all the fish."))
            writer.close()
        elif name in ("CoreShowChannels",) or any(item.answers == name for item in session.script):
            await self._queue(waiting, name).put(action.get("ActionID", ""))
        else:
            await self._send(writer, _response(action, b"Success", b"Fake reply"))
        if name in session.events_after and not writer.is_closing():
            await self._send(writer, session.events_after[name](action))

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Write in random-sized pieces, as TCP may deliver them; one message at a time per connection
        (an answer to an action must not land inside a scripted message being written)."""
        async with self._locks.setdefault(id(writer), asyncio.Lock()):
            start = 0
            while start < len(data):
                size = self.random.randint(1, self.max_chunk)
                writer.write(data[start:start + size])
                start += size
                await writer.drain()


def _response(action: dict[str, str], status: bytes, message: bytes | None, extra: bytes = b"") -> bytes:
    out = b"Response: " + status + b"\r\nActionID: " + action.get("ActionID", "").encode() + b"\r\n"
    if message is not None:
        out += b"Message: " + message + b"\r\n"
    return out + extra + b"\r\n"


def raw_session(data: bytes, **options: object) -> Session:
    """A session that sends ``data`` (already framed AMI messages) after login."""
    return Session(script=[Scripted(data)], **options)  # type: ignore[arg-type]


Predicate = Callable[[], bool]


async def until(predicate: Predicate, timeout: float = 5.0, what: str = "condition") -> None:
    """Wait for ``predicate`` to hold, polling the event loop; fail clearly on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)
