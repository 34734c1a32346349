"""A live Asterisk for tests/live: skipped cleanly unless the environment names one.

The PBX runs the shipped asterisk-conf/ plus a loop that plays the outside world (the lab of
tests/live/README.md): an endpoint that places citizens' calls into the carrier trunk, and
handsets that answer for agents, seats, 110 and called-back citizens after SIP_RING_<ext>
seconds. The tests drive that loop through a privileged AMI user (Originate, dialplan globals),
and run a real `cti serve` of their own on free ports, as the PBX's cti: its FastAGI port goes
into the dialplan's CTI_AGI global, the recordings folder into CTI_RECORDINGS.

  CTI_LIVE_AMI=host:port          Asterisk's AMI (required)
  CTI_LIVE_AMI_SECRET=…           the secret of manager.conf's [cti] user, for cti itself
  CTI_LIVE_LAB_USER=lab           the loop's AMI user (write = all)
  CTI_LIVE_LAB_SECRET=…           its secret
  CTI_LIVE_CITIZEN=sim-out        the endpoint citizens call from (PJSIP/<number>@<it>)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml

from cti.ami.client import AmiActionError, AmiClient
from cti.ami.message import AmiMessage
from cti.settings import AmiSettings
from tests.conftest import REPO

LIVE = os.environ.get("CTI_LIVE_AMI", "")
NEEDED = ("CTI_LIVE_AMI", "CTI_LIVE_AMI_SECRET", "CTI_LIVE_LAB_USER", "CTI_LIVE_LAB_SECRET")
PASSWORD = "live test password"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [name for name in NEEDED if not os.environ.get(name)]
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"no live Asterisk: set {', '.join(missing)} (tests/live/README.md)")
    for item in items:
        if "tests/live/" in item.nodeid:
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Lab:
    """The loop's AMI user: places citizens' calls, turns the handsets' knobs, runs CLI commands."""

    def __init__(self) -> None:
        host, _, port = LIVE.rpartition(":")
        self.settings = AmiSettings(host=host, port=int(port), username=os.environ["CTI_LIVE_LAB_USER"],
                                    secret=os.environ["CTI_LIVE_LAB_SECRET"], reconnect_min=0.2, reconnect_max=1.0,
                                    action_timeout=10)
        self.events: list[AmiMessage] = []
        self.client = AmiClient(self.settings, self.events.append)
        self.task: asyncio.Task[None] | None = None
        self.endpoint = os.environ.get("CTI_LIVE_CITIZEN", "sim-out")

    async def __aenter__(self) -> Lab:
        self.task = asyncio.create_task(self.client.run())
        await wait_for(lambda: self.client.connected.is_set(), 20, "the lab's AMI login")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        if self.task is not None:
            await asyncio.wait([self.task], timeout=5)

    async def cli(self, command: str) -> str:
        """A CLI command's output (a command that fails answers Response: Error with its output too)."""
        try:
            reply = await self.client.send({"Action": "Command", "Command": command}, timeout=20)
        except AmiActionError as refused:
            reply = refused.response
        return "\n".join(reply.getall("output") or list(reply.body))

    async def globals(self, **values: object) -> None:
        for name, value in values.items():
            await self.cli(f"dialplan set global {name} {value}")

    async def call(self, number: str, caller: str, name: str, talk: float) -> None:
        """A citizen dials ``number`` through the carrier trunk and stays ``talk`` seconds once answered."""
        await self.client.send({
            "Action": "Originate", "Channel": f"PJSIP/{number}@{self.endpoint}", "Context": "sim-citizen",
            "Exten": "s", "Priority": "1", "CallerID": f'"{name}" <{caller}>', "Async": "true",
            "Timeout": "120000", "Variable": f"CITIZEN_TALK={int(talk)}"})

    async def channels(self) -> list[str]:
        return [line for line in (await self.cli("core show channels concise")).splitlines() if "!" in line]


@dataclass
class Cti:
    """A `cti serve` of the tests' own, the PBX's cti while it runs."""

    workdir: Path
    lab: Lab
    agi_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    output: BinaryIO | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def database(self) -> str:
        return f"sqlite:///{self.workdir / 'live.db'}"

    def write_settings(self) -> Path:
        # the shipped map, with its first merged number still in its transition window (Yuncheng's ended in
        # 2020), so that every treatment can be tried today
        trunk_map = (REPO / "trunk_map.yaml").read_text(encoding="utf-8")
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
        window = f"window: {{start: {today - timedelta(days=1)}, end: {today + timedelta(days=30)}}}"
        trunk_map = trunk_map.replace("window: {start: 2019-12-31, end: 2020-06-30}", window, 1)
        (self.workdir / "trunk_map.yaml").write_text(trunk_map, encoding="utf-8")
        cases = yaml.safe_load((REPO / "cases.yaml").read_text(encoding="utf-8"))
        cases["sweep_seconds"] = 2  # callbacks at once, at any hour, tried again after a minute
        cases["callback"]["hours"] = ["00:00", "23:59"]
        (self.workdir / "cases.yaml").write_text(yaml.safe_dump(cases, allow_unicode=True), encoding="utf-8")
        host, _, port = LIVE.rpartition(":")
        settings = {
            "ami": {"host": host, "port": int(port), "username": "cti", "reconnect_min": 0.2, "reconnect_max": 2,
                    "liveness_interval": 5},
            "agi": {"host": "127.0.0.1", "port": self.agi_port}, "web": {"host": "127.0.0.1", "port": self.web_port},
            "database": {"url": self.database}, "recordings": {"directory": str(self.workdir / "recordings")},
            "paths": {"trunk_map": str(self.workdir / "trunk_map.yaml"), "agents": str(REPO / "agents"),
                      "ivr_flows": str(REPO / "ivr_flows"), "prompts": str(REPO / "recordings" / "prompts"),
                      "cases": str(self.workdir / "cases.yaml")},
            "timezone": "Asia/Shanghai"}
        path = self.workdir / "cti.yaml"
        path.write_text(json.dumps(settings), encoding="utf-8")
        return path

    def command(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run([sys.executable, "-m", "cti.cli", "--settings", str(self.workdir / "cti.yaml"), *args],
                                input=stdin, capture_output=True, text=True, timeout=60, env=self.environment())
        assert result.returncode == 0, result.stderr
        return result.stdout

    def environment(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("CTI_")} | {
            "CTI_AMI_SECRET": os.environ["CTI_LIVE_AMI_SECRET"]}

    async def start(self) -> None:
        for attempt in range(3):
            self.close_output()
            self.output = (self.workdir / "cti.log").open("ab")
            said = len(self.log())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cti.cli", "--settings", str(self.workdir / "cti.yaml"), "serve"],
                env=self.environment(), stdout=self.output, stderr=subprocess.STDOUT)
            await wait_for_async(self._up_or_gone, 20, f"{self.base}/api/openapi.json")
            if self.process.poll() is None:
                break
            # a free port found by binding port 0 may be taken by another process before cti binds it (seen once
            # in a full live run): new ports, and again
            assert "address already in use" in self.log()[said:] and attempt < 2, self.log()[said:][-2000:]
            self.agi_port, self.web_port = free_port(), free_port()
            self.write_settings()
        # the PBX asks this cti for routes and records where it reads
        await self.lab.globals(CTI_AGI=f"agi://127.0.0.1:{self.agi_port}", CTI_RECORDINGS=self.workdir / "recordings")
        await wait_for(lambda: "AMI resync" in self.log(), 20, "cti's first resync")

    async def _up_or_gone(self) -> bool:
        """cti answers its web port, or has exited."""
        assert self.process is not None
        if self.process.poll() is not None:
            return True
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http, \
                    http.get(f"{self.base}/api/openapi.json") as reply:
                return reply.status == 200
        except (aiohttp.ClientError, TimeoutError):  # refused, or a port held by something else that never answers
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            await asyncio.to_thread(self.process.wait, 20)
        self.close_output()

    def close_output(self) -> None:
        if self.output is not None:
            self.output.close()
            self.output = None

    def log(self) -> str:
        path = self.workdir / "cti.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    async def api(self, method: str, path: str, user: str = "supervisor", body: Any = None,
                  expect: int = 200) -> Any:
        async with aiohttp.ClientSession() as http, http.request(
                method, self.base + path, json=body, headers={"Authorization": f"Bearer {self.tokens[user]}"}) as r:
            data = await (r.json() if r.content_type == "application/json" else r.read())
            assert r.status == expect, (method, path, r.status, data)
            return data

    async def sign_in(self, user: str) -> None:
        async with aiohttp.ClientSession() as http, http.post(
                self.base + "/api/session", json={"user": user, "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            self.tokens[user] = (await r.json())["token"]

    async def record(self, caller: str, timeout: float = 90) -> dict[str, Any]:
        """The call record of ``caller``'s call, once written."""
        found: list[dict[str, Any]] = []

        async def written() -> bool:
            found[:] = await self.api("GET", f"/api/calls?caller={caller}")
            return bool(found)

        await wait_for_async(written, timeout, f"the record of {caller}'s call")
        assert len(found) == 1, found
        return found[0]


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def wait_for_async(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.5)


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    async with Lab() as connected:
        await connected.globals(SIM_RING_agent1001=1, SIM_RING_agent1002=1, SIM_TALK=60, SIM_RING_110=2,
                                SIM_TALK_110=8, SURVEY_DIGIT=1, **{"SIM_NOANSWER_seat-12315": 0,
                                                                  "SIM_NOANSWER_seat-12369": 0})
        yield connected


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "recordings").mkdir()
    yield tmp_path
    shutil.rmtree(tmp_path / "recordings", ignore_errors=True)


@pytest.fixture
async def cti(workdir: Path, lab: Lab) -> AsyncIterator[Cti]:
    """cti serve, with agents 1001 and 1002 and a supervisor signed in, 1001 logged into the queue."""
    service = Cti(workdir, lab)
    service.write_settings()
    for user, role in (("1001", "agent"), ("1002", "agent"), ("supervisor", "supervisor")):
        service.command("user", "add", user, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")
    try:
        await service.start()  # a cti that does not come up is stopped too (one was left running for an hour)
        for user in ("1001", "1002", "supervisor"):
            await service.sign_in(user)
        await service.api("POST", "/api/agents/1002/logout", "1002")
        await service.api("POST", "/api/agents/1001/login", "1001")
        await service.api("POST", "/api/agents/1001/ready", "1001")  # a member left paused by an earlier run
        yield service
    finally:
        await quiet(service, lab)
        await service.stop()


async def quiet(service: Cti, lab: Lab, timeout: float = 90) -> None:
    """Leave the PBX as found: every call over, the agents out of the queue."""
    async def idle() -> bool:
        return not any("carrier" in c or "agent" in c for c in await lab.channels())
    try:
        await wait_for_async(idle, timeout, "the PBX to be idle")
    finally:
        for agent in ("PJSIP/agent1001", "PJSIP/agent1002"):
            await lab.cli(f"queue remove member {agent} from q12345")
