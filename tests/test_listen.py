"""Listen, whisper, barge (issue 13, point 4): a supervisor's own phone originated into [cti-spy], where
ChanSpy runs on the agent's leg. On the simulated PBX end to end (the supervisor's phone rings and answers,
ChanSpyStart and ChanSpyStop as app_chanspy.c publishes them, the call's timeline), the desk action's
refusals, and the tracker's reading of Asterisk's ChanSpy events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cti.agents.directory import Supervisor
from cti.ami.message import AmiMessage
from cti.calls.events import ListenEnded, ListenStarted, SupervisorListening
from cti.calls.record import LiveCall
from cti.calls.tracker import CallTracker
from cti.configuration import load_configuration
from cti.desk.actions import Desk, DeskError
from cti.settings import Settings
from cti.sim.dialplans import Spy
from tests.conftest import REPO
from tests.desk_harness import running_desk
from tests.fakeami import until
from tests.test_demo import citizen, desk_of_1001, records, running
from tests.test_desk import AGENT_CHANNEL, CALL, p5_with_pause

SUPERVISOR = Supervisor("9001", "张敏", "PJSIP/supervisor9001")
SNAPSHOT = ("Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
            "ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority", "Uniqueid", "Linkedid")


async def spy_of(demo: Any, count: int = 1) -> Spy:
    for _ in range(400):
        if len(demo.world.pbx.spies) == count:
            return next(reversed(demo.world.pbx.spies.values()))  # type: ignore[no-any-return]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no ChanSpy session: {demo.world.pbx.spies}")


async def test_listen_whisper_and_barge_on_the_simulated_pbx(tmp_path: Path) -> None:
    """The supervisor's phone rings, answers and runs [cti-spy]: ChanSpy on the agent's leg, hearing both sides;
    whisper reaches the agent only, barge the agent and the citizen. Each session's end: ChanSpyStop when the
    supervisor hangs up; none when the agent's leg goes first (the spy leaves, E). The timeline tells all."""
    async with running(tmp_path) as demo, aiohttp.ClientSession() as http:
        assert demo.service is not None
        events: list[tuple[str, dict[str, str]]] = []
        demo.world.pbx.sinks.append(lambda name, _, fields: events.append((name, dict(fields))))
        async with desk_of_1001(demo, http) as desk:
            demo.world.call("12345", citizen("13900000051", talk=400))
            linkedid = (await desk.pops.next("ringing", timeout=10))["linkedid"]
            await desk.answer(http, linkedid)
            live = demo.service.tracker.live(linkedid)
            assert live is not None and live.agent_channel.startswith("PJSIP/agent1001-")
            agent = demo.world.pbx.find(live.agent_channel)
            assert agent is not None and agent.bridge is not None
            citizen_leg = demo.world.pbx.find(live.citizen_channel)
            for mode, hears in (("listen", []), ("whisper", [agent]), ("barge", [agent, citizen_leg])):
                sent = await demo.service.desk.listen(linkedid, mode, SUPERVISOR, "9001")
                assert sent == {"sent": [{
                    "Action": "Originate", "Channel": "PJSIP/supervisor9001", "Context": "cti-spy", "Exten": mode,
                    "Priority": "1", "CallerID": f'"{ {"listen": "监听", "whisper": "耳语", "barge": "强插"}[mode]} '
                    f'王芳 1001" <1001>', "Variable": f"CTI_SPY={live.agent_channel}", "Async": "true",
                    "Timeout": "30000"}]}
                spy = await spy_of(demo)
                assert (spy.mode, spy.spyee, spy.heard_by()) == (mode, agent, hears)
                assert spy.spyer.device == "PJSIP/supervisor9001" and spy.spyer.app_data.startswith(
                    f"{live.agent_channel},qESu")
                assert agent.bridge is not None and spy.spyer not in agent.bridge.channels  # an audiohook, no member
                if mode != "barge":  # the supervisor hangs up
                    await demo.world.pbx.hangup(spy.spyer, 16, request=True)
                    for _ in range(100):
                        if not demo.world.pbx.spies:
                            break
                        await asyncio.sleep(0.01)
            await desk.pops.next("ended", timeout=20)  # the citizen hangs up with the barge still on
        await records(demo, 1)
        stored = await demo.service.database.calls.timeline(linkedid)
        for _ in range(100):
            if not any(c.device == "PJSIP/supervisor9001" for c in demo.world.pbx.channels.values()):
                break
            await asyncio.sleep(0.01)
        assert not demo.world.pbx.spies
        assert not any(c.device == "PJSIP/supervisor9001" for c in demo.world.pbx.channels.values()), \
            "the spy did not leave with the agent's leg (E)"
    starts = [f for name, f in events if name == "ChanSpyStart"]
    stops = [f for name, f in events if name == "ChanSpyStop"]
    assert len(starts) == 3 and len(stops) == 2
    for fields in starts + stops:
        assert list(fields) == [f"Spyer{h}" for h in SNAPSHOT] + [f"Spyee{h}" for h in SNAPSHOT]
        assert fields["SpyeeChannel"] == live.agent_channel and fields["SpyeeLinkedid"] == linkedid
        assert fields["SpyerChannel"].startswith("PJSIP/supervisor9001-") and fields["SpyerContext"] == "cti-spy"
        assert fields["SpyerChannelStateDesc"] == "Up" and fields["SpyerLinkedid"] != linkedid
    assert [f["SpyerExten"] for f in starts] == ["listen", "whisper", "barge"]
    answered = [f for name, f in events if name == "OriginateResponse" and f.get("ActionID", "").startswith(
        f"cti-spy-{linkedid}-9001")]
    assert [(f["Response"], f["Reason"], f["Exten"]) for f in answered] == [
        ("Success", "4", "listen"), ("Success", "4", "whisper"), ("Success", "4", "barge")]
    timeline = [e for e in stored if isinstance(e, SupervisorListening | ListenStarted | ListenEnded)]
    assert [e.kind for e in timeline] == ["listen", "listen_started", "listen_ended"] * 3
    asked = [e for e in timeline if isinstance(e, SupervisorListening)]
    assert [(e.mode, e.supervisor, e.name, e.device, e.agent_channel) for e in asked] == [
        (mode, "9001", "张敏", "PJSIP/supervisor9001", live.agent_channel) for mode in ("listen", "whisper", "barge")]
    started = [e for e in timeline if isinstance(e, ListenStarted)]
    assert {(e.device, e.agent_channel) for e in started} == {("PJSIP/supervisor9001", live.agent_channel)}
    assert [e.kind for e in stored].index("listen") > [e.kind for e in stored].index("answered")


def live_call(agent_channel: str) -> LiveCall:
    return LiveCall(linkedid="1.1", direction="inbound", caller_number="13800000001", caller_name="市民",
                    dialled_number="12345", unit="", unit_id="", treatment="hotline", arrived_at=0.0, queue="q12345",
                    answered_at=1.0 if agent_channel else None, answered_by="PJSIP/agent1001" if agent_channel else "",
                    citizen_channel="PJSIP/carrier-00000001", agent_channel=agent_channel)


class Refusing:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, fields: dict[str, Any], timeout: float | None = None) -> Any:
        self.sent.append(fields)

    def for_call(self, linkedid: str) -> Refusing:  # cti.desk.actions.Links: one node
        return self

    def for_agent(self, agent: Any) -> Refusing:
        return self


@pytest.mark.parametrize(("calls", "mode", "status", "code"), [
    ({}, "listen", 404, "no_such_call"),
    ({"1.1": ""}, "listen", 409, "not_answered"),  # still ringing: no agent leg to spy on
    ({"1.1": "PJSIP/agent1001-00000002,B"}, "listen", 409, "not_answered"),  # never an option through CTI_SPY
    ({"1.1": "PJSIP/agent1001-00000002"}, "sideways", 422, "invalid"),
])
async def test_the_desk_sends_nothing_it_cannot_stand_behind(calls: dict[str, str], mode: str, status: int,
                                                             code: str) -> None:
    configuration = load_configuration(Settings(source=str(REPO / "cti.yaml")))
    ami = Refusing()
    noted: list[Any] = []
    desk = Desk(ami, lambda linkedid: live_call(calls[linkedid]) if linkedid in calls else None,
                lambda: configuration, note=noted.append)
    with pytest.raises(DeskError) as refused:
        await desk.listen("1.1", mode, SUPERVISOR, "9001")
    assert (refused.value.status, refused.value.code) == (status, code)
    assert ami.sent == [] and noted == []


def test_a_spy_on_a_channel_of_no_hotline_call_is_no_ones_timeline() -> None:
    """ChanSpy on a channel the tracker follows silently (not a citizen's call): nothing to record; its stop
    and its hang-up neither."""
    tracker = CallTracker()
    snapshot = {"Channel": "PJSIP/agent1001-00000009", "Uniqueid": "5.9", "Linkedid": "5.9",
                "Context": "phones", "Exten": "1002"}
    assert tracker.feed(AmiMessage.event("Newchannel", **snapshot, ChannelState="6"), 1.0) == []
    spy = {"SpyerChannel": "PJSIP/supervisor9001-0000000a", "SpyerUniqueid": "5.10",
           **{f"Spyee{k}": v for k, v in snapshot.items()}}
    assert tracker.feed(AmiMessage.event("ChanSpyStart", **spy), 2.0) == []
    assert tracker.feed(AmiMessage.event("ChanSpyStop", **spy), 3.0) == []
    assert tracker.feed(AmiMessage.event("Hangup", Channel="PJSIP/supervisor9001-0000000a", Uniqueid="5.10",
                                         Cause="16"), 4.0) == []


async def test_listen_is_an_originate_of_the_supervisors_phone_for_supervisors_only(tmp_path: Path) -> None:
    """POST /api/calls/{linkedid}/listen on a fake Asterisk (P5, agent1001 talking): the Originate's bytes on
    the wire for each mode, every header through the one AMI guard; agents, integrators and admins refused
    (403), a supervisor with no phone 409, a call not in progress 404; the timeline names who listened how."""
    session, start, talk = p5_with_pause()
    async with running_desk(tmp_path, [session]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        others = [await desk.user("crm", "integrator"), await desk.user("root", "admin")]
        phoneless = await desk.user("sup", "supervisor")
        supervisor = await desk.user("9001", "supervisor")
        path = f"/api/calls/{CALL}/listen"
        async with desk.socket(agent) as mine:
            await desk.route("12369", CALL)
            early = await desk.request("POST", path, supervisor, expect=404, json={"mode": "listen"})
            assert early["error"]["code"] == "no_such_call"
            start.set()
            await mine.next("answered")
            for token in [agent, *others]:
                refused = await desk.request("POST", path, token, expect=403, json={"mode": "listen"})
                assert refused["error"]["code"] == "forbidden"
            no_phone = await desk.request("POST", path, phoneless, expect=409, json={"mode": "listen"})
            assert no_phone["error"]["code"] == "no_phone"
            bad = await desk.request("POST", path, supervisor, expect=422, json={"mode": "shout"})
            assert bad["error"]["details"] == {"fields": {"mode": "one of listen, whisper, barge"}}
            assert desk.server.actions("Originate") == []
            for mode, label in (("listen", "监听"), ("whisper", "耳语"), ("barge", "强插")):
                sent = await desk.request("POST", path, supervisor, json={"mode": mode})
                assert sent == {"sent": [{
                    "Action": "Originate", "Channel": "PJSIP/supervisor9001", "Context": "cti-spy", "Exten": mode,
                    "Priority": "1", "CallerID": f'"{label} 王芳 1001" <1001>',
                    "Variable": f"CTI_SPY={AGENT_CHANNEL}", "Async": "true", "Timeout": "30000"}]}
                wire = (f"Action: Originate\r\nChannel: PJSIP/supervisor9001\r\nContext: cti-spy\r\nExten: {mode}\r\n"
                        f'Priority: 1\r\nCallerID: "{label} 王芳 1001" <1001>\r\nVariable: CTI_SPY={AGENT_CHANNEL}\r\n'
                        f"Async: true\r\nTimeout: 30000\r\nActionID: cti-spy-{CALL}-9001\r\n\r\n").encode()
                await until(lambda wire=wire: wire in desk.server.bytes_received,  # type: ignore[misc]
                            what=f"the {mode} Originate on the wire")
            talk.set()
            await mine.next("ended")
        await until(lambda: desk.service.writer.written == 1, what="the record")
        record = await desk.request("GET", f"/api/calls/{CALL}", supervisor)
    asked = [e for e in record["timeline"] if e["kind"] == "listen"]
    assert [{k: v for k, v in e.items() if k != "at"} for e in asked] == [
        {"kind": "listen", "mode": mode, "supervisor": "9001", "name": "张敏", "device": "PJSIP/supervisor9001",
         "agent_channel": AGENT_CHANNEL} for mode in ("listen", "whisper", "barge")]
    assert all(e["at"].endswith("+08:00") for e in asked)
