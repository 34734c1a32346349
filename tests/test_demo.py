"""The simulated PBX and cti together: what ``cti demo`` runs. The shipped dialplan
asks cti's FastAGI for every call and acts on its decision; records land in SQLite;
pops reach the desk; the desk's softphone answers and its transfer keys work; with
cti's FastAGI down the dialplan's fallback still reaches the agents."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from cti.calls.record import CallRecord
from cti.demo import Demo, DemoOptions
from cti.settings import PathSettings, Settings, WebSettings
from cti.sim.phones import Citizen
from tests.conftest import REPO
from tests.desk_harness import Pops

SCALE = 0.02  # fifty times faster than real time
TRUNK_MAP = """\
hotline: {number: "12345", queue: q12345}
units:
  - {id: market-regulation, name: 市市场监管局, mode: merged, numbers: ["12315"],
     window: {start: 2026-01-01, end: 2099-12-31}}
  - {id: union, name: 市总工会, mode: merged, numbers: ["12351"], window: {start: 2019-12-31, end: 2020-06-30}}
  - {id: ecology-environment, name: 市生态环境局, mode: remote_seat, numbers: ["12369"], seats: [PJSIP/seat-12369]}
  - {id: gas, name: 民生天然气, mode: interconnected, numbers: ["2587777"], seats: [PJSIP/2587777@carrier]}
  - {id: police, name: 市公安局, mode: emergency, numbers: ["110"], dial: PJSIP/110@carrier}
  - {id: party, name: 组织部, mode: excluded, numbers: ["12380"], guidance: 党员和干部监督举报请拨打12380,
     prompt: guidance-12380}
"""


def workspace(tmp_path: Path) -> Settings:
    for folder in ("ivr_flows", "agents", "recordings"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    (tmp_path / "trunk_map.yaml").write_text(TRUNK_MAP, encoding="utf-8")
    return Settings(web=WebSettings(port=0), paths=PathSettings(), source=str(tmp_path / "cti.yaml"))


@asynccontextmanager
async def running(tmp_path: Path, scale: float = SCALE) -> AsyncIterator[Demo]:
    async with started(Demo(workspace(tmp_path), DemoOptions(rate=0, scale=scale, seed=7, workdir=tmp_path / "demo",
                                                             transfer_share=0))) as demo:
        yield demo


@asynccontextmanager
async def started(demo: Demo, timeout: float = 20) -> AsyncIterator[Demo]:
    """``demo`` running on this loop until the block ends (a failure to start raised as it is)."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(demo.run(stop, ready=ready))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiting], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    try:
        yield demo
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout)


async def records(demo: Demo, count: int) -> list[CallRecord]:
    assert demo.service is not None
    store = demo.service.database.calls
    found: list[CallRecord] = []

    async def enough() -> bool:
        found[:] = await store.calls(limit=100)
        return len(found) >= count

    for _ in range(400):
        if await enough():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(found)} call records, expected {count}")


def citizen(number: str, talk: float = 30.0) -> Citizen:
    return Citizen(number, "市民", talk_seconds=talk, patience=600)


async def test_every_treatment_through_the_shipped_dialplan(tmp_path: Path) -> None:
    async with running(tmp_path) as demo:
        for caller, number in (("13900000001", "12345"), ("13900000002", "12315"), ("13900000003", "12351"),
                               ("13900000004", "12369"), ("13900000005", "2587777"), ("13900000006", "12380")):
            demo.world.call(number, citizen(caller))
        by_dialled = {r.dialled_number: r for r in await records(demo, 6)}
    agents = {"PJSIP/agent1001", "PJSIP/agent1002"}
    hotline = by_dialled["12345"]
    assert hotline.caller_number == "13900000001" and hotline.answered_by in agents
    assert hotline.talk_time is not None and hotline.talk_time > 20  # simulated seconds, as Asterisk counts
    assert hotline.recording.endswith(f"{hotline.linkedid}.wav")
    moved = by_dialled["12315"]
    assert (moved.treatment, moved.unit) == ("merged", "市市场监管局") and moved.answered_by in agents
    retired = by_dialled["12351"]
    assert (retired.treatment, retired.answered_by) == ("merged", "")
    seat = by_dialled["12369"]
    assert seat.treatment == "remote_seat" and seat.answered_by in agents | {"PJSIP/seat-12369"}
    assert {leg.device for leg in seat.legs} >= {"Local/q12345@cti-queue", "PJSIP/seat-12369"}
    assert seat.talk_time is not None and seat.talk_time > 20  # the citizen hung up first: answer to end
    utility = by_dialled["2587777"]
    assert utility.treatment == "interconnected" and utility.unit_id == "gas"
    guided = by_dialled["12380"]
    assert (guided.treatment, guided.answered_by) == ("excluded", "")
    assert all(r.hangup_cause == 16 for r in by_dialled.values())


@dataclass
class DeskOf1001:
    """Agent 1001 signed in over HTTP with a desk socket open; 1002 logged out, so 1001 takes the calls."""

    base: str
    auth: dict[str, str]
    pops: Pops

    async def post(self, http: aiohttp.ClientSession, path: str, **json: str) -> aiohttp.ClientResponse:
        return await http.post(self.base + path, headers=self.auth, json=json or None)

    async def answer(self, http: aiohttp.ClientSession, linkedid: str) -> None:
        """The softphone's 接听, until it lands: the queue rings an agent 15 s at a time, so a slow
        click waits for the next ring."""
        while True:
            async with await self.post(http, f"/api/calls/{linkedid}/answer") as reply:
                if reply.status == 200:
                    break
                assert reply.status == 409, await reply.text()
            await self.pops.next("ringing", timeout=10)
        await self.pops.next("answered")


@asynccontextmanager
async def desk_of_1001(demo: Demo, http: aiohttp.ClientSession) -> AsyncIterator[DeskOf1001]:
    assert demo.service is not None
    base = f"http://127.0.0.1:{demo.service.web_port}"
    user, password, _ = demo.sign_ins[0]
    async with http.post(base + "/api/session", json={"user": user, "password": password}) as reply:
        token = (await reply.json())["token"]
    await demo.service.desk.log_out(demo.configuration.directory.get("1002"))
    async with http.ws_connect(base.replace("http", "ws") + "/api/ws") as ws:
        await ws.send_json({"type": "auth", "token": token})
        desk = DeskOf1001(base, {"Authorization": f"Bearer {token}"}, Pops(ws))
        await desk.pops.next("hello")
        yield desk


async def test_the_desk_gets_the_pop_answers_and_hands_over_to_110(tmp_path: Path) -> None:
    async with running(tmp_path) as demo, aiohttp.ClientSession() as http:
        async with desk_of_1001(demo, http) as desk:
            demo.world.call("12369", citizen("13900000009", talk=60))
            ringing = await desk.pops.next("ringing", timeout=10)
            linkedid = ringing["call"]["linkedid"]
            assert (ringing["call"]["caller_number"], ringing["call"]["dialled_number"]) == ("13900000009", "12369")
            await asyncio.sleep(10 * SCALE)  # longer than the robots take: a person is at the desk, no robot answers
            assert not [m for m in desk.pops.seen if m["type"] == "answered"]
            await desk.answer(http, linkedid)
            async with await desk.post(http, f"/api/calls/{linkedid}/transfer", target="110", kind="blind") as reply:
                assert reply.status == 200, await reply.text()
            transferred = await desk.pops.next("transferred")
            assert transferred["target"] == "110"
        record = (await records(demo, 1))[0]
        async with await desk.post(http, f"/api/calls/{linkedid}/answer") as reply:
            assert reply.status == 409 and (await reply.json())["error"]["code"] == "not_ringing"
    assert record.answered_by == "PJSIP/agent1001"
    assert [(t.kind, t.target) for t in record.transfers] == [("blind", "110")]


async def test_with_cti_fastagi_down_the_dialplan_still_reaches_the_agents(tmp_path: Path) -> None:
    async with running(tmp_path) as demo:
        demo.world.pbx.dialplan.agi_url = "agi://127.0.0.1:9"  # nothing listens there
        demo.world.call("12369", citizen("13900000010"))
        record = (await records(demo, 1))[0]
    assert record.answered_by in {"PJSIP/agent1001", "PJSIP/agent1002"}
    assert record.treatment == ""  # no decision was made: the 12345 queue took it


def test_cti_demo_prints_where_to_go_and_calls_flow(tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "cti.cli", "demo", "--duration", "6", "--port", "0", "--seed", "3",
                           "--rate", "1", "--workdir", str(workdir)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "desk            http://127.0.0.1:" in done.stdout
    for user in ("1001", "1002", "supervisor"):
        assert f"    {user}" in done.stdout
    listed = subprocess.run([sys.executable, "-m", "cti.cli", "calls", "--json", "--db",
                             f"sqlite:///{workdir / 'demo.db'}"], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    calls = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(calls) >= 3 and all(c["dialled_number"] for c in calls)


def test_cti_demo_refuses_a_negative_rate(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "cti.cli", "demo", "--rate", "-1"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--rate must not be negative (0: no citizens calling)" in done.stderr


def test_cti_demo_at_rate_0_runs_with_no_traffic(tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "cti.cli", "demo", "--rate", "0", "--duration", "2", "--port", "0",
                           "--workdir", str(workdir)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "cti demo: a simulated Asterisk 22 and cti, and no citizens calling (--rate 0)" in done.stdout
    assert "desk            http://127.0.0.1:" in done.stdout
    assert "number ledger   http://127.0.0.1:" in done.stdout
    listed = subprocess.run([sys.executable, "-m", "cti.cli", "calls", "--db", f"sqlite:///{workdir / 'demo.db'}"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert listed.stdout.strip() == "no calls"



async def test_a_callback_asks_the_caller_and_stores_the_answer(tmp_path: Path) -> None:
    """回访 end to end: the replied case's callback is an AMI Originate to the citizen on the
    simulated carrier; answered, the dialplan runs the survey over FastAGI; the citizen's key
    closes one case and sends the other back to its unit."""
    (tmp_path / "cases.yaml").write_text('callback: {hours: ["00:00", "23:59"]}\n', encoding="utf-8")
    async with running(tmp_path) as demo:
        assert demo.service is not None
        cases = demo.service.cases
        pleased = Citizen("13900000021", "市民", digits=["1"])
        unhappy = Citizen("13900000022", "市民", digits=["3"])
        ids = []
        for person, unit in ((pleased, ""), (unhappy, "ecology-environment")):
            demo.world.people[person.number] = person
            case = await cases.open(caller_number=person.number, category="complaint", content="噪音", actor="1001",
                                    role="agent", unit=unit)
            if unit:
                await cases.act(case.id, "sign", {}, "ecology", "unit")
                await cases.act(case.id, "reply", {"reply": "已处理"}, "ecology", "unit")
            else:
                await cases.act(case.id, "answer", {"reply": "已告知"}, "1001", "agent")
            ids.append(case.id)
        assert (await cases.sweep())["callback"] == 2
        store = demo.service.database.cases
        for _ in range(400):
            states = [(await store.get(i)).state for i in ids]  # type: ignore[union-attr]
            if states == ["closed", "dispatched"]:
                break
            await asyncio.sleep(0.05)
        closed, back = [await store.get(i) for i in ids]
        assert back is not None
        actions = [e.action for e in await store.events(back.id)]
    assert closed is not None and (closed.state, closed.satisfaction) == ("closed", "1")
    assert (back.state, back.satisfaction, back.rehandled) == ("dispatched", "3", 1)
    assert actions[-2:] == ["callback", "satisfaction"]


@pytest.mark.parametrize("kind", ["attended", "conference"])
async def test_attended_and_three_way_transfers_on_the_simulated_pbx(tmp_path: Path, kind: str) -> None:
    """The desk's attended transfer to 110 (Atxfer, then DTMF to complete) and its three-way call with a
    department's seat (both legs redirected into a ConfBridge room, the seat originated into it) work on
    the simulated PBX; the record tells them as the captured P6 does: a redirect, then a conference."""
    target = "110" if kind == "attended" else "seat-12369"
    async with running(tmp_path) as demo, aiohttp.ClientSession() as http:
        async with desk_of_1001(demo, http) as desk:
            demo.world.call("12345", citizen("13900000041", talk=200))
            linkedid = (await desk.pops.next("ringing", timeout=10))["linkedid"]
            await desk.answer(http, linkedid)
            await asyncio.sleep(5 * SCALE)
            async with await desk.post(http, f"/api/calls/{linkedid}/transfer", target=target, kind=kind) as reply:
                assert reply.status == 200, await reply.text()
            if kind == "attended":
                await asyncio.sleep(10 * SCALE)  # the agent talks to the 110 operator first
                async with await desk.post(http, f"/api/calls/{linkedid}/transfer/complete") as reply:
                    assert reply.status == 200, await reply.text()
            await desk.pops.next("transferred", timeout=10)
        record = (await records(demo, 1))[0]
    assert record.linkedid == linkedid and record.answered_by == "PJSIP/agent1001"
    if kind == "attended":
        assert [(t.kind, t.target) for t in record.transfers] == [("attended", "110")]
    else:
        assert [(t.kind, t.target) for t in record.transfers] == [("redirect", f"cti-{linkedid}"),
                                                                  ("conference", "PJSIP/seat-12369")]
