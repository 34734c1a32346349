"""Several Asterisk nodes (ami.nodes): two simulated Asterisk 22 nodes, each naming itself (systemname),
read by one cti; each call recorded once with its node's ids, actions sent to the node that holds them."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cti.ami.client import AmiLoginError
from cti.configuration import load_configuration
from cti.nodes import node_of
from cti.service import Service
from cti.settings import (
    AgiSettings,
    AmiSettings,
    DatabaseSettings,
    NodeSettings,
    PathSettings,
    Settings,
    WebSettings,
    load_settings,
)
from cti.sim.phones import Citizen
from cti.sim.trunk import link
from cti.sim.world import World
from cti.store.database import Database
from cti.yamlconfig import ConfigError
from tests.conftest import REPO, REPO_PATHS
from tests.fakeami import until

SCALE = 0.05  # twenty simulated seconds a second


def test_a_call_id_finds_its_node_by_the_systemname_before_it() -> None:
    names = ["sz1", "sz2", ""]
    assert node_of("sz2-1764806400.17", names) == "sz2"
    assert node_of("sz1-1764806400.3", names) == "sz1"
    assert node_of("1764806400.3", names) is None  # an unnamed Asterisk's id: no node claims it
    assert node_of("sz12-1764806400.3", names) is None  # a name must be followed by its "-"


def test_nodes_are_named_once_each_by_a_systemname_and_their_secrets_come_from_the_environment(
        tmp_path: Path) -> None:
    path = tmp_path / "cti.yaml"
    path.write_text("ami:\n  nodes:\n    - {name: sz1, host: 10.0.0.1}\n    - {name: sz1, host: 10.0.0.2}\n"
                    "    - {name: sz1-b, host: 10.0.0.3}\n    - {name: 'a b', host: 10.0.0.4, port: 70000}\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(path, {})
    text = str(refused.value)
    assert "ami.nodes[1].name: 'sz1' names two nodes" in text
    assert "ami.nodes[2].name: 'sz1-b' starts with node 'sz1' and a '-'" in text
    assert "ami.nodes[3].name: 'a b' is not a systemname" in text
    assert "ami.nodes[3].port: 70000 is not a TCP port" in text
    path.write_text("ami:\n  username: cti\n  nodes:\n    - {name: sz1, host: 10.0.0.1}\n"
                    "    - {name: sz-2.b, host: 10.0.0.2, port: 5039, username: cti2}\n")
    links = load_settings(path, {"CTI_AMI_SECRET": "shared", "CTI_AMI_SECRET_SZ_2_B": "own"}).ami.links()
    assert [(a.systemname, a.host, a.port, a.username, a.secret) for a in links] == [
        ("sz1", "10.0.0.1", 5038, "cti", "shared"), ("sz-2.b", "10.0.0.2", 5039, "cti2", "own")]
    assert AmiSettings(host="pbx").links() == (AmiSettings(host="pbx"),)  # no nodes: the one of host and port


@dataclass
class Pair:
    service: Service
    worlds: dict[str, World]
    database: Database


def _paths(tmp_path: Path) -> PathSettings:
    """The shipped files, with agent 1001 on node sz1 and 1002 on node sz2, and 12369's seat the 12345 queue of
    node sz2 (reached from sz1 through the trunk between them)."""
    trunk_map = tmp_path / "trunk_map.yaml"
    shipped = (REPO / "trunk_map.yaml").read_text(encoding="utf-8")
    trunk_map.write_text(shipped.replace("seats: [PJSIP/seat-12369]", "seats: [PJSIP/q12345@node-sz2]"),
                         encoding="utf-8")
    agents = tmp_path / "agents"
    shutil.copytree(REPO / "agents", agents)
    data = yaml.safe_load((agents / "agents.yaml").read_text())
    for agent, node in zip(data["agents"], ("sz1", "sz2"), strict=False):
        agent["node"] = node
    (agents / "agents.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    return PathSettings(trunk_map=str(trunk_map), agents=str(agents), ivr_flows=REPO_PATHS.ivr_flows,
                        prompts=REPO_PATHS.prompts, cases=REPO_PATHS.cases)


@asynccontextmanager
async def two_nodes(tmp_path: Path, names: tuple[str, str] = ("sz1", "sz2"),
                    told: tuple[str, str] | None = None) -> AsyncIterator[Pair]:
    """Two simulated nodes (systemnames ``told``, by default ``names``) and a cti reading both as ``names``."""
    paths = _paths(tmp_path)
    configuration = load_configuration(Settings(paths=paths))
    worlds = {name: World(configuration, agi_url="agi://127.0.0.1:9", secret=f"secret-{name}", scale=SCALE, seed=i,
                          systemname=systemname)
              for i, (name, systemname) in enumerate(zip(names, told or names, strict=True))}
    ports = {name: await world.start() for name, world in worlds.items()}
    nodes = tuple(NodeSettings(name, "127.0.0.1", ports[name], secret=f"secret-{name}") for name in names)
    settings = Settings(ami=AmiSettings(nodes=nodes, reconnect_min=0.05, reconnect_max=0.1),
                        agi=AgiSettings(port=0), web=WebSettings(port=0),
                        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'nodes.db'}", flush_interval=0.01),
                        paths=paths)
    database = await Database.open(settings.database.url)
    service = Service(settings, database, load_configuration(settings))
    try:
        yield Pair(service, worlds, database)
    finally:
        for world in worlds.values():
            await world.close()
        await database.close()


async def _running(pair: Pair, stop: asyncio.Event) -> asyncio.Task[None]:
    running = asyncio.create_task(pair.service.run(stop))
    await until(lambda: pair.service.agi_port and pair.service.nodes.up() and pair.service.web_port or running.done(),
                10, "both nodes' links")
    for world in pair.worlds.values():
        world.dialplan.agi_url = f"agi://127.0.0.1:{pair.service.agi_port}"
    return running


async def test_one_cti_reads_two_nodes_each_call_once_with_its_nodes_ids(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as pair:
        service, stop = pair.service, asyncio.Event()
        running = await _running(pair, stop)
        directory = service.configuration.directory
        for agent in directory.agents:  # QueueAdd to the node each agent names
            await service.desk.log_in(agent)
        members = {name: sorted(m.interface for q in world.pbx.queues.values() for m in q.members)
                   for name, world in pair.worlds.items()}
        assert members == {"sz1": ["PJSIP/agent1001"], "sz2": ["PJSIP/agent1002"]}
        await until(lambda: all(s.queues for s in service.board.all()), 5, "both agents in their node's queue")
        for i in range(3):
            for n, world in enumerate(pair.worlds.values()):
                world.call("12345", Citizen(f"1380000{n}{i:03d}", talk_seconds=10, patience=200))
        await until(lambda: service.nodes.calls == 6, 10, "six calls followed")
        # the desk's hang-up of a call on sz2 goes to sz2: its agent's leg there ends, sz1's calls stay
        on_sz2 = next(c for c in service.nodes.live_calls() if c.linkedid.startswith("sz2-"))
        await until(lambda: bool((service.nodes.live(on_sz2.linkedid) or on_sz2).agent_channel), 20,
                    "the call on sz2 answered")
        await service.desk.hang_up(on_sz2.linkedid, None)
        await until(lambda: service.writer.written == 6, 30, "six records written")
        stop.set()
        await asyncio.wait_for(running, 10)
        records = await pair.database.calls.calls(limit=20)
    assert sorted(r.linkedid.split("-")[0] for r in records) == ["sz1"] * 3 + ["sz2"] * 3
    assert len({r.linkedid for r in records}) == 6
    by_node = {r.answered_by for r in records if r.linkedid.startswith("sz1-")}, \
        {r.answered_by for r in records if r.linkedid.startswith("sz2-")}
    assert by_node == ({"PJSIP/agent1001"}, {"PJSIP/agent1002"})  # each node's calls, its own agent
    hung_up = next(r for r in records if r.linkedid == on_sz2.linkedid)
    assert hung_up.talk_time is not None and hung_up.talk_time < 10  # ended by the desk, before the citizen's 10 s
    assert all(r.dialled_number == "12345" and r.answered for r in records)


async def test_a_node_that_names_itself_otherwise_is_refused_with_what_to_set(tmp_path: Path) -> None:
    async with two_nodes(tmp_path, told=("sz1", "")) as pair:
        with pytest.raises(AmiLoginError, match=r"127\.0\.0\.1:\d+ has systemname '', but cti's settings name this "
                                                r"node 'sz2': set systemname = sz2 in asterisk.conf \[options\]"):
            await asyncio.wait_for(pair.service.run(asyncio.Event()), 10)


async def test_a_node_link_dropping_leaves_the_other_nodes_calls_alone(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as pair:
        service, stop = pair.service, asyncio.Event()
        running = await _running(pair, stop)
        for agent in service.configuration.directory.agents:
            await service.desk.log_in(agent)
        for n, world in enumerate(pair.worlds.values()):
            world.call("12345", Citizen(f"1390000000{n}", talk_seconds=30, patience=200))
        await until(lambda: service.nodes.calls == 2, 10, "a call on each node")
        sz2 = pair.worlds["sz2"]
        for session in list(sz2.ami.sessions):  # sz2's link drops; it comes back and lists its channels
            session.writer.transport.abort()
        await until(lambda: not service.nodes.up(), 5, "the link to sz2 down")
        assert service.nodes.links() == {"sz1": True, "sz2": False}
        await until(service.nodes.up, 10, "the link to sz2 back")
        await until(lambda: service.writer.written == 2, 60, "both calls recorded")
        stop.set()
        await asyncio.wait_for(running, 10)
        records = await pair.database.calls.calls(limit=10)
    assert sorted(r.linkedid.split("-")[0] for r in records) == ["sz1", "sz2"]
    assert all(r.answered and r.talk_time and r.talk_time > 20 for r in records)  # neither cut short by the drop


async def test_a_call_sent_to_another_nodes_queue_is_one_record_with_who_answered_there(tmp_path: Path) -> None:
    """12369 rings sz1's 12345 queue and, through the trunk between the nodes, sz2's, where agent 1002 answers:
    sz2's part of the call (its own Linkedid) pops with the number the citizen dialled on sz1, and the two parts
    are one record: sz1's ids, number and route, sz2's answer, both nodes' legs."""
    async with two_nodes(tmp_path) as pair:
        service, stop = pair.service, asyncio.Event()
        link(pair.worlds["sz1"].pbx, pair.worlds["sz2"].pbx)
        running = await _running(pair, stop)
        agent = next(a for a in service.configuration.directory.agents if a.node == "sz2")
        await service.desk.log_in(agent)  # only sz2's agent: sz1's queue rings nobody
        await until(lambda: any(s.queues for s in service.board.all()), 5, "agent 1002 in sz2's queue")
        near = pair.worlds["sz1"].call("12369", Citizen("13700001111", talk_seconds=10, patience=200))
        await until(lambda: service.nodes.calls == 2, 10, "the call's two parts, one on each node")
        far = next(c for c in service.nodes.live_calls() if c.linkedid.startswith("sz2-"))
        await until(lambda: (service.nodes.live(far.linkedid) or far).unit != "", 5, "sz2's part told its origin")
        seen_far = service.nodes.live(far.linkedid)
        assert seen_far is not None
        assert (seen_far.dialled_number, seen_far.unit, seen_far.treatment) == ("12369", "市生态环境局", "remote_seat")
        await until(lambda: service.writer.written >= 1 and not service.nodes.calls and not service.crossings.waiting,
                    30, "the call ended and written")
        stop.set()
        await asyncio.wait_for(running, 10)
        records = await pair.database.calls.calls(limit=10)
        timeline = await pair.database.calls.timeline(near.linkedid)
    assert [r.linkedid for r in records] == [near.linkedid]  # one record, the near part's
    record = records[0]
    assert (record.dialled_number, record.unit_id, record.treatment) == ("12369", "ecology-environment", "remote_seat")
    assert record.answered_by == "PJSIP/agent1002" and record.answered_by_name == agent.name
    assert record.queue == "q12345" and record.talk_time is not None and record.talk_time > 5
    devices = {leg.device for leg in record.legs}
    assert {"PJSIP/node-sz2", "PJSIP/agent1002"} <= devices
    kinds = [event.kind for event in timeline]
    assert "from_node" in kinds and kinds.count("offered") == 2  # both parts' timelines, under the one id
    assert service.crossings.joined == 1


async def test_a_peer_naming_no_linkedid_as_the_origin_is_logged_and_its_call_recorded_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What a peer node sends in X-CTI-Linkedid reaches cti as an AGI argument: anything but a Linkedid is
    refused (logged with the channel), and the call it came with is still recorded, on its own."""
    async with two_nodes(tmp_path) as pair:
        service, stop = pair.service, asyncio.Event()
        running = await _running(pair, stop)
        sz2 = pair.worlds["sz2"]
        arrived = sz2.pbx.inbound("q12345", ("13700002222", ""), device="PJSIP/node-sz1", context="from-node")
        arrived.headers["X-CTI-Linkedid"] = "sz1-1.2 <script>"  # (a SIP header holds no line break)
        await until(lambda: "not one; the call is recorded on its own" in caplog.text, 10, "the refusal logged")
        await sz2.pbx.hangup(arrived, 16, request=True)
        await until(lambda: service.writer.written == 1, 10, "the call recorded")
        stop.set()
        await asyncio.wait_for(running, 10)
        [record] = await pair.database.calls.calls(limit=10)
    assert record.linkedid == arrived.linkedid and record.caller_number == "13700002222"
    assert f"channel {arrived.name} gave 'sz1-1.2 <script>'" in caplog.text
