"""The simulated PBX against the real Asterisk 22 transcripts.

The lab scenarios are played on the simulator with the lab's own dialplan
(``ami-traces/asterisk-conf-used-sip``), at the moments the capture did them,
twenty times faster; the events must tell the same story as the trace
(tests/simcompare.py says what "the same" means)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cti.ami.framing import Framer
from cti.sim import features
from cti.sim.ami import EVERY_CLASS, AmiServer, AmiUser
from cti.sim.dialplans import CTI_FEATURES, FirstShippedDialplan, LabDialplan, ShippedDialplan
from cti.sim.pbx import Channel, Pbx
from cti.sim.phones import Phone
from cti.sim.ringing import Member, Queue
from tests.fakeami import FIXTURES
from tests.simcompare import ARTEFACTS, differences, keys

SCALE = 0.02


class Lab:
    """The lab PBX (one ringall queue with an agent and a remote seat, 110 on a trunk) and
    cti's AMI session to it, capturing every byte the simulator sends."""

    def __init__(self) -> None:
        self.pbx = Pbx(LabDialplan(), scale=SCALE)
        self.pbx.races.dial_state_first = False  # as these captures went (cti.sim.pbx.Races)
        queue = self.pbx.queues["q12345sip"] = Queue(self.pbx, "q12345sip", strategy="ringall")
        for device, ring, name in (("PJSIP/agent1001", 2, "Seat 1001"), ("PJSIP/seat2001", 3, "Remote seat 2001")):
            self.pbx.endpoints[device] = Phone(device, ring_seconds=ring)
            queue.members.append(Member(device, name, dynamic=False))
        self.pbx.endpoints["PJSIP/emergency110"] = Phone("PJSIP/emergency110", context="from-carrier", ring_seconds=1)
        self.server = AmiServer(self.pbx, {"cti": AmiUser("cti-secret")})
        self.data = bytearray()

    async def __aenter__(self) -> Lab:
        port = await self.server.start()
        reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.action("Login", Username="cti", Secret="cti-secret", ActionID="l1")
        self.reading = asyncio.create_task(self._read(reader))
        await asyncio.sleep(0.05)
        self.t0 = asyncio.get_running_loop().time()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reading.cancel()
        self.writer.close()
        await self.server.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(65536):
            self.data.extend(chunk)

    def action(self, name: str, **headers: str) -> None:
        lines = [f"Action: {name}"] + [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def at(self, seconds: float) -> None:
        """Wait until ``seconds`` of lab time after the start."""
        await asyncio.sleep(max(0.0, self.t0 + seconds * SCALE - asyncio.get_running_loop().time()))

    def channel(self, prefix: str) -> Channel:
        return next(c for c in self.pbx.channels.values() if c.name.startswith(prefix))


async def p5_blind_transfer_to_110(lab: Lab) -> None:
    citizen = lab.pbx.inbound("12369", ("13800000043", "Citizen"))
    await lab.at(5.0)
    lab.action("BlindTransfer", Channel=lab.channel("PJSIP/agent1001").name, Exten="110", Context="emergency-sip",
               ActionID="bt")
    await lab.at(11.0)
    await lab.pbx.hangup(citizen, 16, request=True)
    await lab.at(12.0)


async def p6_three_way_in_confbridge(lab: Lab) -> None:
    citizen = lab.pbx.inbound("12369", ("13800000044", "Citizen"))
    await lab.at(5.0)
    agent = lab.channel("PJSIP/agent1001")
    lab.action("Redirect", Channel=citizen.name, ExtraChannel=agent.name, Context="conference", Exten="800",
               Priority="1", ExtraContext="conference", ExtraExten="800", ExtraPriority="1", ActionID="redirect-2")
    await lab.at(8.2)
    lab.action("Originate", Channel="PJSIP/seat2001", Context="conference", Exten="800", Priority="1",
               CallerID='"Hotline 12369" <12369>', Async="true", Timeout="30000", ActionID="p6-seat2001")
    await lab.at(16.2)
    await lab.pbx.hangup(citizen, 16, request=True)
    await lab.at(16.7)
    await lab.pbx.hangup(agent, 16, request=True)
    await lab.at(17.2)
    await lab.pbx.hangup(lab.channel("PJSIP/seat2001"), None, request=True)
    await lab.at(18.0)


SCENARIOS: dict[str, Callable[[Lab], Awaitable[None]]] = {
    "P5_sip_agent_blind_110": p5_blind_transfer_to_110,
    "P6_sip_threeway_confbridge": p6_three_way_in_confbridge,
}


@pytest.mark.parametrize("trace", sorted(SCENARIOS))
async def test_the_simulator_tells_the_same_story_as_asterisk(trace: str) -> None:
    async with Lab() as lab:
        await SCENARIOS[trace](lab)
    real = (FIXTURES / f"{trace}.raw").read_bytes()
    assert len(keys(bytes(lab.data))) > 50
    assert differences(real, bytes(lab.data)) == []


def test_the_comparison_notices_a_missing_or_reordered_event() -> None:
    real = (FIXTURES / "P5_sip_agent_blind_110.raw").read_bytes()
    messages = real.split(b"\r\n\r\n")
    dial_end = next(i for i, m in enumerate(messages) if b"Event: DialEnd" in m and b"agent1001" in m)
    without = b"\r\n\r\n".join(messages[:dial_end] + messages[dial_end + 1:])
    assert any("only in the real trace: ('DialEnd'" in d for d in differences(real, without))
    swapped = messages[:]
    own = (b"Event: Newstate", b"Event: Newchannel")
    first, second = [i for i, m in enumerate(messages) if b"Channel: PJSIP/agent1001" in m and m.startswith(own)][:2]
    swapped[first], swapped[second] = swapped[second], swapped[first]
    assert any(d.startswith("agent1001: order differs") for d in differences(real, b"\r\n\r\n".join(swapped)))


# -- the conversations: each action a captured client sent, and what came back --------

ANSWER_FIELDS = ("response", "message", "eventlist", "listitems", "reason", "ping", "value", "variable")


def answers(raw: bytes, action_ids: set[str]) -> dict[str, list[tuple]]:
    """Per ActionID, what Asterisk answered: each response or event's name, meaningful values and layout."""
    found: dict[str, list[tuple]] = {}
    for message in Framer().feed(raw):
        if message.action_id in action_ids:
            found.setdefault(message.action_id, []).append((
                message.name, tuple(f"{k}={message.get(k)}" for k in ANSWER_FIELDS if k in message),
                tuple(k for k in message.fields if k != "timestamp")))
    return found


def captured_actions(trace: str) -> list[tuple[float, str]]:
    with (FIXTURES / f"{trace}.jsonl").open(encoding="utf-8") as lines:
        entries = [json.loads(line) for line in lines]
    return [(e["t"], e["raw"]) for e in entries if e["dir"] == "out"]


async def converse(trace: str) -> bytes:
    """Send the captured client's actions to the simulator at their captured moments; return what it sent back."""
    pbx = Pbx(LabDialplan(), scale=SCALE)
    pbx.queues["q12345"] = Queue(pbx, "q12345", strategy="ringall")
    for device in ("Local/1001@agents", "Local/1002@agents"):  # the lab's seats: ring 2 s, then answer
        pbx.endpoints[device] = Phone(device, ring_seconds=2)
    server = AmiServer(pbx, {"cti": AmiUser("cti-secret", write=EVERY_CLASS)})  # the captured client's: write=all
    port = await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = bytearray()

    async def read() -> None:
        while chunk := await reader.read(65536):
            data.extend(chunk)

    reading = asyncio.create_task(read())
    t0 = asyncio.get_running_loop().time()
    for t, raw in captured_actions(trace):
        await asyncio.sleep(max(0.0, t0 + t * SCALE - asyncio.get_running_loop().time()))
        writer.write(raw.encode())
    await asyncio.sleep(3 * SCALE + 0.2)
    reading.cancel()
    writer.close()
    await server.close()
    return bytes(data)


@pytest.mark.parametrize("trace", ["S9_bad_login", "S10_actions_errors", "S8_originate_callback"])
async def test_the_simulator_answers_actions_as_asterisk_does(trace: str) -> None:
    ids = {m.split("ActionID: ", 1)[1].split("\r\n", 1)[0] for _, m in captured_actions(trace) if "ActionID: " in m}
    real = answers((FIXTURES / f"{trace}.raw").read_bytes(), ids)
    simulated = answers(await converse(trace), ids)
    assert set(real) == set(simulated)
    for action_id in sorted(real):
        assert simulated[action_id] == real[action_id], action_id


LIST_FIELDS = ("channelstatedesc", "context", "exten", "application", "applicationdata", "strategy", "calls",
               "membership", "incall", "status", "paused", "eventlist")


def list_items(raw: bytes, action_ids: tuple[str, ...], fields: tuple[str, ...] = LIST_FIELDS) -> list[tuple]:
    """The list a resync gets, keyed by what identifies each item, without ids, times and counters."""
    items = []
    for message in Framer().feed(raw):
        if message.kind == "event" and message.action_id in action_ids:
            if message.get("channel").startswith(ARTEFACTS):
                continue
            who = message.get("channel").split("-")[0] or message.get("location") or message.get("queue")
            items.append((message.name, who, tuple(f"{k}={message.get(k)}" for k in fields if k in message),
                          tuple(message.fields)))
    return items


async def test_a_resync_mid_call_lists_channels_and_queue_members_as_asterisk_does() -> None:
    """R1b: the client reconnects while a citizen talks to agent 1001 and asks for the
    channels and the queue; the simulator's lists carry the same items in the same layout."""
    async with Lab() as lab:
        lab.pbx.inbound("12369", ("13800000045", "Citizen"))
        await lab.at(9.0)
        lab.action("CoreShowChannels", ActionID="coreshowchannels-2")
        lab.action("QueueStatus", ActionID="queuestatus-3")
        await lab.at(9.5)
    ids = ("coreshowchannels-2", "queuestatus-3")
    other_queue = ("q12345", "Local/1001@agents/n", "Local/2001@agents/n")  # the lab's second queue, not built here
    real = [item for item in list_items((FIXTURES / "R1b_ami_client_reconnect_midcall.raw").read_bytes(), ids)
            if item[1] not in other_queue]
    simulated = list_items(bytes(lab.data), ids)
    complete = [i for i in real if i[0].endswith("Complete")]
    assert len(real) == 7  # the citizen's and the agent's channels, the queue, its two members, two ends
    assert sorted(i for i in real if not i[0].endswith("Complete")) == sorted(
        i for i in simulated if not i[0].endswith("Complete"))
    assert [i[0] for i in complete] == [i[0] for i in simulated if i[0].endswith("Complete")]


# -- the shipped configuration, read by cti's own AMI user (R3, R4, X2, X3 and their b runs) ------------

CONF = Path(__file__).resolve().parent.parent / "asterisk-conf"
NO_AGI = "agi://127.0.0.1:9"  # the lab's cti was not listening (X2, X3): AGISTATUS FAILURE, the queue


class Hotline:
    """The lab's Asterisk running asterisk-conf/ (cti.sim.dialplans.ShippedDialplan, or FirstShippedDialplan
    for the captures made before the fixes): the q12345 queue of queues.conf, the phones of pjsip.conf
    (callerid "Seat 1001" <1001>…) answering as the lab's handsets did, 110 on the carrier trunk; and a
    session of cti's AMI user to it that sends what the capture's client sent, at its moments."""

    def __init__(self, dialplan: ShippedDialplan | None = None) -> None:
        self.pbx = Pbx(dialplan or ShippedDialplan(agi_url=NO_AGI), scale=SCALE)
        self.queue = self.pbx.queues["q12345"] = Queue(self.pbx, "q12345", strategy="rrmemory", timeout=15,
                                                       retry=1, wrapuptime=5)
        for number in ("1001", "1002"):
            device = f"PJSIP/agent{number}"
            self.pbx.endpoints[device] = Phone(device, caller_number=number, caller_name=f"Seat {number}",
                                               ring_seconds=1)
        for number, name in (("12315", "市市场监管局"), ("12369", "市生态环境局")):
            device = f"PJSIP/seat-{number}"
            self.pbx.endpoints[device] = Phone(device, caller_number=number, caller_name=name, ring_seconds=2)
        self.pbx.endpoints["PJSIP/110@carrier"] = Phone("PJSIP/110@carrier", context="from-carrier", ring_seconds=2)
        self.server = AmiServer(self.pbx, {"cti": AmiUser("lab-cti-secret")})
        self.data = bytearray()
        self.tasks: list[asyncio.Task[None]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.refused = 0

    async def __aenter__(self) -> Hotline:
        self.port = await self.server.start()
        self.t0 = asyncio.get_running_loop().time()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in self.writers:
            writer.close()
        await self.server.close()

    async def session(self, trace: str) -> bytearray:
        """cti's session: connect now (again every 0.2 s while refused, as the lab's client did), log in
        and send the capture's actions at their moments from the connection on; returns what it reads
        (``self.data`` too)."""
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                break
            except ConnectionRefusedError:
                self.refused += 1
                await asyncio.sleep(0.2 * SCALE)
        self.writers.append(writer)
        self.t0 = asyncio.get_running_loop().time()
        data = self.data = bytearray()

        async def read() -> None:
            while chunk := await reader.read(65536):
                data.extend(chunk)

        async def send(actions: list[tuple[float, str]]) -> None:
            for t, raw in actions:
                await self.at(t)
                writer.write(self.renamed(raw).encode())

        self.tasks.append(asyncio.create_task(read()))
        login, *actions = captured_actions(trace)
        writer.write(login[1].encode())
        while b"Message: Authentication" not in data:  # the lab's next step came after the answer
            await asyncio.sleep(0.001)
        self.tasks.append(asyncio.create_task(send(actions)))
        return data

    def renamed(self, raw: str) -> str:
        """The captured action with its channels named as the simulator named them (by device)."""
        def simulated(match: re.Match[str]) -> str:
            device = match.group(2).rsplit("-", 1)[0]
            return match.group(1) + next(c.name for c in self.pbx.channels.values() if c.device == device)
        return re.sub(r"^(Channel: )([^\r\n]+)", simulated, raw, flags=re.M)

    async def at(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, self.t0 + seconds * SCALE - asyncio.get_running_loop().time()))

    def channel(self, prefix: str) -> Channel:
        return next(c for c in self.pbx.channels.values() if c.name.startswith(prefix))

    def line_to_110(self) -> Channel:
        """The carrier leg Dial placed to 110 (the citizen's own leg came in on the carrier too)."""
        return next(c for c in self.pbx.channels.values() if c.device == "PJSIP/carrier" and c.dialler is not None)

    def member(self, number: str, name: str) -> Member:
        """An agent already in the queue when the capture began (QueueAdd: "Already there")."""
        member = Member(f"PJSIP/agent{number}", name)
        self.queue.members.append(member)
        return member

    def left_by_the_run_before(self, *agents: str, avail: str = "INUSE") -> None:
        """Device states cached from the capture before (no event when they are told again): the pause
        device of agents added and removed, the queue's availability."""
        for number in agents:
            self.pbx.device_states[f"Queue:q12345_pause_PJSIP/agent{number}"] = "NOT_INUSE"
        self.pbx.device_states["Queue:q12345_avail"] = avail


FEATURES = features.load(CONF / "features.conf")


async def x3b_feature_code_110(h: Hotline) -> None:
    """X3b: agent 1001 (logged in by the session) answers a citizen; at 4.8 s the agent's hard phone dials
    **110: BlindTransfer(110,emergency); 110 answers after 2 s and hangs up at 16.8 s."""
    h.left_by_the_run_before("1001")
    h.pbx.races.transferer_leaves_first = h.pbx.races.far_end_gone_first = True
    await h.session("X3b_featurecode_blindtransfer_110")
    await h.at(0.004)
    h.pbx.inbound("12345", ("13800000001", "市民张三"))
    await h.at(4.825)
    assert features.press(h.pbx, h.channel("PJSIP/agent1001"), "**110", FEATURES)
    await h.at(16.834)
    await h.pbx.hangup(h.line_to_110(), 16, request=True)
    await h.at(20.3)


async def x3_feature_code_110(h: Hotline) -> None:
    """X3: the same on the configuration before the fixes (no recording, Dial(…,60,o) to 110), with
    features.conf's entry corrected by hand to BlindTransfer(110,emergency)."""
    h.left_by_the_run_before("1001")
    h.pbx.races.dial_state_first = False
    h.pbx.races.far_end_gone_first = True
    await h.session("X3_featurecode_blindtransfer_110")
    await h.at(0.009)
    h.pbx.inbound("12345", ("13800000001", "市民张三"))
    await h.at(4.86)
    assert features.press(h.pbx, h.channel("PJSIP/agent1001"), "**110", FEATURES)
    await h.at(16.882)
    await h.pbx.hangup(h.line_to_110(), 16, request=True)
    await h.at(20.3)


async def x2b_attended_transfer_110(h: Hotline) -> None:
    """X2b: the desk's attended transfer to 110 (cti/desk/actions.py): agent 1001, in the queue from the run
    before, answers; the capture's client sets __CTI_TRANSFER_DIAL on both legs, Atxfer on the agent's,
    PlayDTMF * and 2 once 110 has answered; 110 hangs up at 17.4 s."""
    h.member("1001", "王芳")
    h.left_by_the_run_before("1001")
    await h.session("X2b_atxfer_110_citizen")
    await h.at(0.004)
    h.pbx.inbound("12345", ("13800000001", "市民张三"))
    await h.at(17.428)
    await h.pbx.hangup(h.line_to_110(), 16, request=True)
    await h.at(21.2)


async def x2_attended_transfer_110(h: Hotline) -> None:
    """X2: the same on the configuration before the fixes, five seconds after Asterisk started: the
    phones register during the capture (agent 1001 is added unavailable, then rung once it is back), and
    110 is shown the agent (DestConnectedLineNum 1001)."""
    h.pbx.offline |= {"PJSIP/agent1001", "PJSIP/agent1002", "PJSIP/seat-12369", "PJSIP/seat-12315"}
    h.pbx.device_states["Queue:q12345_avail"] = "INUSE"  # app_queue's "no member" at load
    h.pbx.races.member_state_first = h.pbx.races.far_end_gone_first = True
    await h.session("X2_atxfer_110_callerid")
    await h.at(0.010)
    h.pbx.inbound("12345", ("13800000001", "市民张三"))
    for t, device in ((0.901, "PJSIP/agent1001"), (1.064, "PJSIP/agent1002"), (6.564, "PJSIP/seat-12369"),
                      (17.998, "PJSIP/seat-12315")):
        await h.at(t)
        h.pbx.register(device)
    await h.at(18.421)
    await h.pbx.hangup(h.line_to_110(), 16, request=True)
    await h.at(22.2)


HOTLINE_SCENARIOS: dict[str, tuple[Callable[[], ShippedDialplan], Callable[[Hotline], Awaitable[None]]]] = {
    "X3b_featurecode_blindtransfer_110": (lambda: ShippedDialplan(agi_url=NO_AGI), x3b_feature_code_110),
    "X3_featurecode_blindtransfer_110": (lambda: FirstShippedDialplan(agi_url=NO_AGI), x3_feature_code_110),
    "X2b_atxfer_110_citizen": (lambda: ShippedDialplan(agi_url=NO_AGI), x2b_attended_transfer_110),
    "X2_atxfer_110_callerid": (lambda: FirstShippedDialplan(agi_url=NO_AGI), x2_attended_transfer_110),
}


async def test_the_comparison_tells_the_fixed_configuration_from_the_one_before() -> None:
    """X2 played on the shipped dialplan instead of the one it was captured on: 110's leg shows the
    citizen where the real one showed the agent, and the agent's leg records; the comparison says so."""
    async with Hotline(ShippedDialplan(agi_url=NO_AGI)) as h:
        await x2_attended_transfer_110(h)
    found = differences((FIXTURES / "X2_atxfer_110_callerid.raw").read_bytes(), bytes(h.data))
    assert any(d.startswith("only in the real trace: ('Newstate', ('carrier',), ('channelstatedesc=Ringing', "
                            "'context=from-carrier', 'exten=110', 'connectedlinenum=1001'") for d in found)
    assert any(d.startswith("only in the simulator: ('Newstate', ('carrier',), ('channelstatedesc=Ringing', "
                            "'context=from-carrier', 'exten=110', 'connectedlinenum=13800000001'") for d in found)
    assert any(d.startswith("only in the simulator: ('MixMonitorStart'") for d in found)


@pytest.mark.parametrize("trace", sorted(HOTLINE_SCENARIOS))
async def test_the_shipped_configuration_tells_the_same_story_as_asterisk(trace: str) -> None:
    dialplan, scenario = HOTLINE_SCENARIOS[trace]
    async with Hotline(dialplan()) as h:
        await scenario(h)
    real = (FIXTURES / f"{trace}.raw").read_bytes()
    assert len(keys(bytes(h.data))) > 30
    assert differences(real, bytes(h.data)) == []


def test_features_conf_maps_the_emergency_codes_to_blind_transfers() -> None:
    """features.conf's entries, read as features_config.c reads them: BlindTransfer(110,emergency) gives
    the application its exten and context."""
    assert FEATURES["emergency110"] == features.FeatureApp("emergency110", "**110", True, "BlindTransfer",
                                                           "110,emergency")
    assert {item.dtmf for item in FEATURES.values()} == {"**110", "**119", "**120", "**122", "**12122"}


async def test_the_old_feature_code_form_drops_the_citizen() -> None:
    """features.conf before fd15495 said ``BlindTransfer,110@emergency``: the old applicationmap syntax,
    whose fourth field is the application's data, so BlindTransfer gets "110@emergency" as its exten and,
    with no context, the transferer's own ([phones], apps/app_blind_transfer.c). The transfer succeeds;
    the citizen is sent to an extension [phones] does not have and, with no "i" there, hung up
    (main/pbx.c __ast_pbx_run: "sent to invalid extension but no invalid handler"). 110 is never rung."""
    old = features.applicationmap("[applicationmap]\nemergency110 => **110,self,BlindTransfer,110@emergency\n")
    assert old["emergency110"].app == "BlindTransfer" and old["emergency110"].data == "110@emergency"
    async with Hotline(FirstShippedDialplan(agi_url=NO_AGI)) as h:
        h.left_by_the_run_before("1001")
        await h.session("X3_featurecode_blindtransfer_110")
        await h.at(0.009)
        citizen = h.pbx.inbound("12345", ("13800000001", "市民张三"))
        await h.at(4.86)
        agent = h.channel("PJSIP/agent1001")
        assert features.press(h.pbx, agent, "**110", old)
        await h.at(8.0)
        assert not citizen.alive and not h.pbx.channels
    messages = [m for m in Framer().feed(bytes(h.data)) if m.kind == "event"]
    transfer = next(i for i, m in enumerate(messages) if m.name == "BlindTransfer")
    assert [messages[transfer].get(k) for k in ("result", "context", "extension", "transfererchannel")] == [
        "Success", "phones", "110@emergency", agent.name]
    after = [(m.name, m.get("cause"), m.get("context"), m.get("exten")) for m in messages[transfer:]
             if m.get("channel") == citizen.name]
    assert after == [("AgentComplete", "", "cti-next", "queue"), ("BridgeLeave", "", "phones", "110@emergency"),
                     ("SoftHangupRequest", "16", "phones", "110@emergency"),
                     ("Hangup", "16", "phones", "110@emergency")]
    assert not any(m.name in ("DialBegin", "Newchannel") for m in messages[transfer:])


class RouteStub:
    """The lab's cti as R3's calls met it over FastAGI: 12315 (a remote seat) rings the 12345 queue and the
    seat together for 30 s, anything else goes to the queue (what cti's router decides, trunk_map.yaml)."""

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return f"agi://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = {}
        while (line := (await reader.readline()).decode().strip()):
            key, _, value = line.partition(": ")
            env[key] = value
        if env.get("agi_arg_1") == "12315":
            answers = {"CTI_NEXT": "dial", "CTI_DIAL": "Local/q12345@cti-queue/n&PJSIP/seat-12315",
                       "CTI_DIAL_TIMEOUT": "30", "CTI_FALLBACK": "queue"}
        else:
            answers = {"CTI_NEXT": "queue"}
        for name, value in answers.items():
            writer.write(f'SET VARIABLE {name} "{value}"\n'.encode())
            await reader.readline()
        writer.close()


R3_FIELDS = LIST_FIELDS + ("calleridnum", "connectedlinenum", "position")


@pytest.mark.parametrize("trace", ["R3_cti_restart_channel_list", "R3b_cti_restart_recorded"])
async def test_a_new_session_lists_three_live_calls_as_asterisk_does(trace: str) -> None:
    """R3/R3b: while agent 1001 talks to one citizen, another waits in the queue and a third rings the queue
    and the 12315 seat in parallel, a new cti session asks for the channels and the queue: the citizen sits
    in [cti-next] (its Exten a step, not the number dialled), Queue's and Dial's arguments as the dialplan
    wrote them (R3b: with the recording gosub), the agent in a call, the two waiting callers in order."""
    async with RouteStub() as agi_url:
        dialplan = (FirstShippedDialplan if trace.startswith("R3_") else ShippedDialplan)(agi_url=agi_url)
        async with Hotline(dialplan) as h:
            before_the_session: list[str] = []
            h.pbx.sinks.append(lambda name, privilege, fields: before_the_session.append(name + fields[0][1]))
            h.member("1001", "王芳")
            h.pbx.endpoints["PJSIP/seat-12315"].answers = False
            h.pbx.inbound("12345", ("13850000001", "市民甲"))
            await h.at(3.0)
            h.pbx.inbound("12345", ("13850000002", "市民乙"))
            await h.at(4.0)
            h.pbx.inbound("12315", ("13850000003", "市民丙"))
            await h.at(10.0)
            await h.session(trace)
            await h.at(1.0)
    ids = ("r3-channels", "r3-queue")
    real = list_items((FIXTURES / f"{trace}.raw").read_bytes(), ids, R3_FIELDS)
    simulated = list_items(bytes(h.data), ids, R3_FIELDS)
    assert len(real) == 13  # 7 channels and the end, the queue, its member, 2 callers and the end
    assert sorted(i for i in real if not i[0].endswith("Complete")) == sorted(
        i for i in simulated if not i[0].endswith("Complete"))
    assert [i[0] for i in real if i[0].endswith("Complete")] == [i[0] for i in simulated if i[0].endswith("Complete")]
    recorded = [name.rsplit("-", 1)[0] for name in before_the_session if name.startswith("MixMonitorStart")]
    assert recorded == (["MixMonitorStartPJSIP/agent1001"] if trace.startswith("R3b") else [])  # the agent's leg


async def restart_with_a_call_up(h: Hotline, before: str, after: str) -> tuple[bytearray, bytearray]:
    """R4: the capture's client adds agents 1001 and 1002 and lists the queue; a citizen's call is answered
    by 1002; at 4.08 s the lab runs ``core restart now``; the client connects again every 0.2 s until
    Asterisk answers, logs in, asks for the queue and the channels at once, waits for FullyBooted, asks for
    the queue again. Returns what the two sessions read."""
    first = await h.session(before)
    await h.at(0.027)
    h.pbx.inbound("12345", ("13850000004", "市民重启"))
    await h.at(4.0797)
    # FullyBooted came 0.17 s after the new login (R4b); here a connection and a login take a few real
    # milliseconds, a tenth of a lab second and more at this scale: the boot is given 2 s
    restart = asyncio.create_task(h.pbx.restart(booting=2.0))
    while b"Event: Shutdown" not in first:
        await asyncio.sleep(0.001)
    second = await h.session(after)
    await h.at(6.5)
    await restart
    return first, second


R4_IDS = {"r4-queue-early", "r4-channels", "r4-queue-late"}


def session_story(data: bytes) -> list[str]:
    """What a session read, in order: answers by ActionID, and the FullyBooted event (R4b: not at login)."""
    return [m.action_id or m.name for m in Framer().feed(data)
            if m.kind == "response" or m.name == "FullyBooted" or (m.kind == "event" and m.action_id)]


async def test_an_asterisk_restart_with_a_call_up_goes_as_r4a_and_the_new_login_as_r4b() -> None:
    """R4a/R4b (persistentmembers = no): the call's channels are told SoftHangupRequest cause 4 and hang
    up, then Shutdown, and the session closes; connecting is refused for a moment; the new Asterisk accepts
    the login without FullyBooted, lists no channel, knows no QueueStatus until it is fully booted, then
    has the queue without a member."""
    async with Hotline(FirstShippedDialplan(agi_url=NO_AGI)) as h:  # captured before the fixes
        h.member("1001", "王芳")  # logged in at R3: "Already there"
        h.queue._last = 0  # rrmemory: 1001 took the last call, 1002 is next
        h.left_by_the_run_before(avail="INUSE")
        h.pbx.races.member_state_first = True
        first, second = await restart_with_a_call_up(h, "R4a_asterisk_restart_before", "R4b_asterisk_restart_relogin")
    before = (FIXTURES / "R4a_asterisk_restart_before.raw").read_bytes()
    assert differences(before, bytes(first)) == []
    assert h.refused >= 1
    after = (FIXTURES / "R4b_asterisk_restart_relogin.raw").read_bytes()
    assert answers(bytes(second), R4_IDS) == answers(after, R4_IDS)
    assert session_story(bytes(second)) == session_story(after) == [
        "login-1", "r4-queue-early", "r4-channels", "r4-channels", "FullyBooted", "r4-queue-late", "r4-queue-late",
        "r4-queue-late", "logoff-2"]


async def test_with_persistentmembers_the_agents_come_back_without_an_event_as_in_r4c() -> None:
    """R4c (persistentmembers = yes): the same restart six seconds after a boot (agent 1001's phone not yet
    registered when it is added); after it the queue has both agents again, unavailable until their phones
    register, and no event said so."""
    async with Hotline(FirstShippedDialplan(agi_url=NO_AGI)) as h:
        h.pbx.persistent_members = h.pbx.races.dialled_legs_end_first = True
        h.pbx.offline.add("PJSIP/agent1001")
        h.pbx.device_states["Queue:q12345_avail"] = "INUSE"  # app_queue's "no member" at load
        first, second = await restart_with_a_call_up(h, "R4c_persistentmembers_before",
                                                     "R4c_persistentmembers_relogin")
    before = (FIXTURES / "R4c_persistentmembers_before.raw").read_bytes()
    assert differences(before, bytes(first)) == []
    after = (FIXTURES / "R4c_persistentmembers_relogin.raw").read_bytes()
    assert answers(bytes(second), R4_IDS) == answers(after, R4_IDS)
    assert session_story(bytes(second)) == session_story(after)
    ids = ("r4-queue-late",)
    assert sorted(list_items(bytes(second), ids)) == sorted(list_items(after, ids))
    assert [i[1] for i in list_items(after, ids) if i[0] == "QueueMember"] == ["PJSIP/agent1001", "PJSIP/agent1002"]
    assert not [m.name for m in Framer().feed(bytes(second)) if m.get("privilege") == "agent,all"]


def test_the_simulated_dialplan_is_the_shipped_one() -> None:
    """ShippedDialplan runs what asterisk-conf/extensions.conf says: the applications' arguments the
    channel list shows (R3b), [cti-as-citizen] as Dial's b() with I on the lines and the seats, the
    connected line set (not the caller ID), the feature codes every leg inherits."""
    conf = (CONF / "extensions.conf").read_text(encoding="utf-8")
    shipped = ShippedDialplan(agi_url=NO_AGI)
    data, _ = shipped.line_options()
    assert conf.count(f",60,{data})") == 3  # [emergency] twice, [cti-seat]
    assert "Queue(${IF($[\"${CTI_QUEUE}\" = \"\"]?${HOTLINE_QUEUE}:${CTI_QUEUE})},tT,,,900,,cti-record)" in conf
    assert "exten => _q.,1,Queue(${EXTEN},tT,,,900,,cti-record)" in conf
    assert "Dial(${CTI_DIAL},${CTI_DIAL_TIMEOUT},tToU(cti-record))" in conf
    assert "Set(CONNECTEDLINE(num,i)=${CTI_CITIZEN_NUM})" in conf and "Set(CALLERID(num)" not in conf
    assert f"CTI_FEATURES={CTI_FEATURES}" in conf and "Set(__DYNAMIC_FEATURES=${CTI_FEATURES})" in conf
    assert "exten => 0,1,GotoIf" in conf and shipped("cti-seat", "0") and not shipped("cti-seat", "seat-12369")
    assert "[phones]\ninclude => emergency\nexten => 12345,1,Goto(from-carrier,12345,1)" in conf
    before = FirstShippedDialplan(agi_url=NO_AGI)  # 9b8de56: Dial(…,60,o), _seat-X.
    assert before.line_options() == ("o", "o") and before("cti-seat", "seat-12369") and not before.recording
