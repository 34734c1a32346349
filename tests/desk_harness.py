"""A running cti service (AMI to a fake Asterisk, FastAGI, web) for desk tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from cti.configuration import load_configuration
from cti.service import Service
from cti.settings import AgiSettings, AmiSettings, DatabaseSettings, RecordingSettings, Settings, WebSettings
from cti.store.database import Database
from tests.conftest import REPO_PATHS
from tests.fakeami import FakeAmi, Session, until
from tests.test_fastagi import environment

PASSWORD = "correct horse battery"


@dataclass
class Desk:
    service: Service
    server: FakeAmi
    database: Database
    base: str
    http: aiohttp.ClientSession
    tokens: dict[str, str] = field(default_factory=dict)

    async def user(self, user_id: str, role: str, agent_id: str | None = None) -> str:
        """Add a user and sign in through the API; returns the token."""
        await self.database.users.add(user_id, user_id, role, PASSWORD, agent_id)
        reply = await self.request("POST", "/api/session", json={"user": user_id, "password": PASSWORD})
        self.tokens[user_id] = reply["token"]
        return reply["token"]

    async def request(self, method: str, path: str, token: str | None = None, expect: int = 200,
                      **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.base + path, headers=headers, **kwargs) as reply:
            body = await (reply.json() if reply.content_type == "application/json" else reply.read())
            assert reply.status == expect, (reply.status, body)
            return body

    async def route(self, number: str, uniqueid: str, recording: str = "") -> list[str]:
        """Ask the service what a call gets, as the dialplan's AGI(…/route,number,linkedid,recording)
        does for the citizen's leg; returns the AGI commands cti sent."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.service.agi_port)
        writer.write(environment("route", number, uniqueid=uniqueid, linkedid=uniqueid, recording=recording))
        commands = []
        while line := await asyncio.wait_for(reader.readline(), 5):
            commands.append(line.decode().strip())
            writer.write(b"200 result=1\n")
        writer.close()
        return commands

    @asynccontextmanager
    async def socket(self, token: str) -> AsyncIterator[Pops]:
        async with self.http.ws_connect(self.base.replace("http", "ws") + "/api/ws") as ws:
            await ws.send_json({"type": "auth", "token": token})
            pops = Pops(ws)
            await pops.next("hello")
            yield pops


@dataclass
class Pops:
    ws: aiohttp.ClientWebSocketResponse
    seen: list[dict[str, Any]] = field(default_factory=list)  # every message, in arrival order
    _taken: set[int] = field(default_factory=set)

    async def next(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The first message of ``kind`` not taken yet, waiting for it if need be."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for index, message in enumerate(self.seen):
                if message["type"] == kind and index not in self._taken:
                    self._taken.add(index)
                    return message
            left = deadline - asyncio.get_running_loop().time()
            message = await self.ws.receive(timeout=max(left, 0.01))
            self.seen.append(json.loads(message.data))

    async def drain(self, quiet: float = 0.2) -> list[str]:
        try:
            while True:
                message = await self.ws.receive(timeout=quiet)
                self.seen.append(json.loads(message.data))
        except TimeoutError:
            pass
        return [m["type"] for m in self.seen]


@asynccontextmanager
async def running_desk(tmp_path: Path, sessions: list[Session], database: Database | None = None, *,
                       boot_timeout: float = 2.0) -> AsyncIterator[Desk]:
    """The service on SQLite in tmp_path, or on ``database`` (which the caller closes)."""
    own = database is None
    if database is None:
        database = await Database.open(f"sqlite:///{tmp_path / 'desk.db'}")
    recordings = tmp_path / "monitor"
    async with FakeAmi(sessions) as server:
        settings = Settings(
            ami=AmiSettings(port=server.port, secret="cti-secret", reconnect_min=0.02, reconnect_max=0.05,
                            boot_timeout=boot_timeout),
            agi=AgiSettings(port=0), web=WebSettings(port=0), database=DatabaseSettings(flush_interval=0.01),
            recordings=RecordingSettings(directory=str(recordings)), paths=REPO_PATHS)
        service = Service(settings, database, load_configuration(settings))
        stop = asyncio.Event()
        running = asyncio.create_task(service.run(stop))
        await until(lambda: service.web_port and service.ami.connected.is_set(), what="the service to start")
        async with aiohttp.ClientSession() as http:
            try:
                yield Desk(service, server, database, f"http://127.0.0.1:{service.web_port}", http)
            finally:
                stop.set()
                await asyncio.wait_for(running, 10)
                if own:
                    await database.close()
