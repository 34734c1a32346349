"""The agent desk against a running service and a fake Asterisk: roles, agent
state, screen-pops to the right desk at ring, transfers' AMI actions, recording,
and stale pops after a reconnect."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from cti.calls.record import CallRecord
from cti.web.api import routes
from tests.desk_harness import running_desk
from tests.fakeami import Scripted, Session, first_index, transcript, until

CALL = "1795281884.19"  # P5: 13800000043 dials 12369, agent1001 answers, then a blind transfer to 110
AGENT_CHANNEL = "PJSIP/agent1001-00000011"
CITIZEN_CHANNEL = "PJSIP/carrier-0000000f"


def member_event(name: str, paused: str = "0", reason: str = "", status: str = "1") -> bytes:
    """A queue-member event with the fields app_queue's queue_member_blob_create sends."""
    return (f"Event: {name}\r\nPrivilege: agent,all\r\nQueue: q12345\r\nMemberName: 王芳\r\n"
            f"Interface: PJSIP/agent1001\r\nStateInterface: PJSIP/agent1001\r\nMembership: dynamic\r\nPenalty: 0\r\n"
            f"CallsTaken: 0\r\nLastCall: 0\r\nLastPause: 0\r\nLoginTime: 1795281824\r\nInCall: 0\r\n"
            f"Status: {status}\r\nPaused: {paused}\r\nPausedReason: {reason}\r\nRinginuse: 0\r\nWrapuptime: 0\r\n\r\n"
            ).encode()


async def test_every_route_checks_its_roles(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        integrator = await desk.user("crm", "integrator")
        for route in routes.table:
            if not route.roles:
                continue
            path = (route.path.replace("{agent_id}", "1001").replace("{linkedid}", "1.1").replace("{number}", "12315")
                    .replace("{article_id}", "1").replace("{case_id}", "1").replace("{action}", "dispatch")
                    .replace("{message_id}", "1"))
            reply = await desk.request(route.method, path, expect=401)
            assert reply["error"]["code"] == "unauthorized", route.path
            wrong = next((t for role, t in (("agent", agent), ("integrator", integrator))
                          if role not in route.roles), None)
            if wrong is not None:
                reply = await desk.request(route.method, path, wrong, expect=403, json={})
                assert reply["error"]["code"] == "forbidden", route.path
        # an agent acts only for themselves
        reply = await desk.request("POST", "/api/agents/1002/pause", agent, expect=403, json={"reason": "x"})
        assert reply == {"error": {"code": "forbidden", "message": "an agent acts only for themselves",
                                   "details": {}}}
        # bad input, unknown routes, wrong tokens: the same JSON shape
        bad = await desk.request("POST", "/api/calls/1.1/transfer", agent, expect=422,
                                 json={"target": "110", "kind": "sideways", "extra": 1})
        assert bad["error"]["details"] == {"fields": {"extra": "unknown field",
                                                      "kind": "one of blind, attended, conference"}}
        assert (await desk.request("POST", "/api/session", expect=400, data=b"{nope"))["error"]["code"] == \
            "bad_request"
        assert (await desk.request("GET", "/api/nowhere", agent, expect=404))["error"]["code"] == "not_found"
        assert (await desk.request("GET", "/api/me", "cti_forged", expect=401))["error"]["message"] == \
            "the token is unknown, expired or revoked"
        spec = await desk.request("GET", "/api/openapi.json")
        assert {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops} == {
            (r.method, r.path) for r in routes.table}
        assert spec["paths"]["/api/agents"]["get"]["x-roles"] == ["supervisor", "admin"]


async def test_sign_out_revokes_the_token(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        token = await desk.user("sup", "supervisor")
        assert (await desk.request("GET", "/api/me", token))["user"]["role"] == "supervisor"
        await desk.request("DELETE", "/api/session", token)
        await desk.request("GET", "/api/me", token, expect=401)
        await desk.request("POST", "/api/session", expect=401, json={"user": "sup", "password": "wrong one"})


async def test_agent_state_goes_through_ami_and_reaches_supervisors(tmp_path: Path) -> None:
    session = Session(close_at_end=False, on_action={
        "QueueAdd": "reply:Added interface to queue", "QueuePause": "reply:Interface paused successfully",
        "QueueRemove": "reply:Removed interface from queue"})
    async with running_desk(tmp_path, [session]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        supervisor = await desk.user("sup", "supervisor")
        async with desk.socket(supervisor) as wallboard:
            await desk.request("POST", "/api/agents/1001/login", agent)
            await desk.request("POST", "/api/agents/1001/pause", agent, json={"reason": "培训"})
            await desk.request("POST", "/api/agents/1001/ready", agent)
            await desk.request("POST", "/api/agents/1001/logout", agent)
            sent = [{k: v for k, v in a.items() if k != "ActionID"} for a in desk.server.received[0]
                    if a["Action"].startswith("Queue") and a["Action"] != "QueueStatus"]
            assert sent == [
                {"Action": "QueueAdd", "Queue": "q12345", "Interface": "PJSIP/agent1001", "MemberName": "王芳",
                 "StateInterface": "PJSIP/agent1001", "Paused": "false"},
                {"Action": "QueuePause", "Interface": "PJSIP/agent1001", "Paused": "true", "Reason": "培训"},
                {"Action": "QueuePause", "Interface": "PJSIP/agent1001", "Paused": "false"},
                {"Action": "QueueRemove", "Queue": "q12345", "Interface": "PJSIP/agent1001"},
            ]
            # Asterisk reports the member's changes; the board follows and tells the supervisor
            writer = desk.server._writers[0]
            writer.write(member_event("QueueMemberAdded") + member_event("QueueMemberPause", "1", "培训"))
            update = await wallboard.next("agent")
            assert (update["status"]["agent_id"], update["status"]["state"]) == ("1001", "ready")
            update = await wallboard.next("agent")
            assert (update["status"]["state"], update["status"]["reason"]) == ("paused", "培训")
            board = await desk.request("GET", "/api/agents", supervisor)
            assert [(a["agent_id"], a["state"], a["queues"]) for a in board] == [
                ("1001", "paused", ["q12345"]), ("1002", "logged_out", [])]
            mine = await desk.request("GET", "/api/me", agent)
            assert mine["agent"]["state"] == "paused" and mine["pbx"] == "up"


# What Asterisk sends when the dialplan's [cti-record] starts MixMonitor on the leg that answered
# (the layout of trace S7's MixMonitorStart, on agent1001's leg of P5).
MIXMONITOR_START = Scripted((
    "Event: MixMonitorStart\r\nPrivilege: call,all\r\nChannel: PJSIP/agent1001-00000011\r\nChannelState: 6\r\n"
    "ChannelStateDesc: Up\r\nCallerIDNum: 12369\r\nCallerIDName: <unknown>\r\n"
    "ConnectedLineNum: 13800000043\r\nConnectedLineName: Citizen\r\nLanguage: zh\r\nAccountCode: \r\n"
    "Context: phones\r\nExten: 12369\r\nPriority: 1\r\nUniqueid: 1795281885.21\r\n"
    f"Linkedid: {CALL}\r\n\r\n").encode())


def p5_with_pause() -> tuple[Session, asyncio.Event, asyncio.Event]:
    """P5 held twice: before anything (desks connect) and while the agent talks (before the
    captured BlindTransfer), so the test can act on a live, answered call; the dialplan's
    recording starts on the agent's leg as it answers."""
    start, talk = asyncio.Event(), asyncio.Event()
    session = dataclasses.replace(transcript("P5_sip_agent_blind_110"), gate=start, close_at_end=False)
    session.script.insert(first_index(session, b"Event: AgentConnect") + 1, MIXMONITOR_START)
    session.pauses[first_index(session, b"Message: Transfer succeeded")] = talk
    return session, start, talk


def recording_of(tmp_path: Path) -> str:
    """The file the dialplan names in [from-carrier] (CTI_RECORDINGS/yyyy/mm/dd/linkedid.wav)."""
    return str(tmp_path / "monitor" / "2026" / "11" / "22" / f"{CALL}.wav")


async def test_pop_at_ring_to_its_own_agent_then_transfers(tmp_path: Path) -> None:
    session, start, talk = p5_with_pause()
    async with running_desk(tmp_path, [session]) as desk:
        await desk.database.calls.save([CallRecord(
            linkedid="1795200000.1", direction="inbound", caller_number="13800000043", caller_name="Citizen",
            dialled_number="12315", arrived_at=1795200000.0, ended_at=1795200100.0, unit="市市场监管局",
            treatment="remote_seat", answered_at=1795200010.0, answered_by="PJSIP/agent1002",
            answered_by_name="Seat 1002")])
        agent = await desk.user("1001", "agent", "1001")
        other = await desk.user("1002", "agent", "1002")
        async with desk.socket(agent) as mine, desk.socket(other) as theirs:
            await desk.route("12369", CALL, recording_of(tmp_path))
            start.set()
            ringing = await mine.next("ringing")
            assert ringing["linkedid"] == CALL and ringing["device"] == "PJSIP/agent1001"
            assert {k: ringing["call"][k] for k in ("caller_number", "caller_name", "dialled_number")} == {
                "caller_number": "13800000043", "caller_name": "Citizen", "dialled_number": "12369"}
            assert ringing["call"]["answered_at"] is None  # at ring, not at answer
            history = await mine.next("history")
            assert [(c["dialled_number"], c["unit"], c["answered_by"]) for c in history["calls"]] == [
                ("12315", "市市场监管局", "Seat 1002")]
            answered = await mine.next("answered")
            assert answered["call"]["answered_by"] == "PJSIP/agent1001"
            assert (await mine.next("recording"))["file"] == recording_of(tmp_path)

            # the other agent's desk heard nothing of it
            assert await theirs.drain() == ["hello"]

            # one-key transfers: the forms Asterisk accepted in S3, S5 and P6
            await desk.request("POST", f"/api/calls/{CALL}/transfer", agent, json={"target": "110", "kind": "blind"})
            await desk.request("POST", f"/api/calls/{CALL}/transfer", agent,
                               json={"target": "120", "kind": "attended"})
            await desk.request("POST", f"/api/calls/{CALL}/transfer/complete", agent)
            await desk.request("POST", f"/api/calls/{CALL}/transfer", agent,
                               json={"target": "seat-12369", "kind": "conference"})
            refused = await desk.request("POST", f"/api/calls/{CALL}/transfer", other, expect=403,
                                         json={"target": "110", "kind": "blind"})
            assert refused["error"]["code"] == "not_your_call"
            unknown = await desk.request("POST", f"/api/calls/{CALL}/transfer", agent, expect=404,
                                         json={"target": "999", "kind": "blind"})
            assert unknown["error"]["code"] == "unknown_target"
            talk.set()
            ended = await mine.next("ended")
            assert ended["linkedid"] == CALL
        kinds = [m["type"] for m in mine.seen]
        assert kinds.index("ringing") < kinds.index("answered") < kinds.index("transferred") < kinds.index("ended")
        await until(lambda: desk.service.writer.written == 1, what="the record")

    strip = [{k: v for k, v in a.items() if k != "ActionID"} for a in desk.server.received[0]
             if a["Action"] in ("BlindTransfer", "Atxfer", "PlayDTMF", "Redirect", "Originate", "MixMonitor",
                                "Setvar")]
    assert strip == [  # no MixMonitor: the dialplan records; cti's AMI user may not (write class system)
        {"Action": "Setvar", "Channel": CITIZEN_CHANNEL, "Variable": "__CTI_TRANSFER_DIAL",
         "Value": "PJSIP/110@carrier"},
        {"Action": "Setvar", "Channel": AGENT_CHANNEL, "Variable": "__CTI_TRANSFER_DIAL",
         "Value": "PJSIP/110@carrier"},
        {"Action": "BlindTransfer", "Channel": AGENT_CHANNEL, "Context": "emergency", "Exten": "110"},
        {"Action": "Setvar", "Channel": CITIZEN_CHANNEL, "Variable": "__CTI_TRANSFER_DIAL",
         "Value": "PJSIP/120@carrier"},
        {"Action": "Setvar", "Channel": AGENT_CHANNEL, "Variable": "__CTI_TRANSFER_DIAL",
         "Value": "PJSIP/120@carrier"},
        {"Action": "Atxfer", "Channel": AGENT_CHANNEL, "Context": "emergency", "Exten": "120"},
        {"Action": "PlayDTMF", "Channel": AGENT_CHANNEL, "Digit": "*", "Receive": "true", "Duration": "100"},
        {"Action": "PlayDTMF", "Channel": AGENT_CHANNEL, "Digit": "2", "Receive": "true", "Duration": "100"},
        {"Action": "Redirect", "Channel": CITIZEN_CHANNEL, "ExtraChannel": AGENT_CHANNEL, "Context": "conference",
         "Exten": f"cti-{CALL}", "Priority": "1", "ExtraContext": "conference", "ExtraExten": f"cti-{CALL}",
         "ExtraPriority": "1"},
        {"Action": "Originate", "Channel": "PJSIP/seat-12369", "Context": "conference", "Exten": f"cti-{CALL}",
         "Priority": "1", "CallerID": '"Citizen" <13800000043>', "Async": "true", "Timeout": "30000"},
    ]
    [record] = await desk.database.calls.calls(linkedids=[CALL])
    assert record.recording == recording_of(tmp_path)


async def test_hang_up_sends_hangup_on_the_agents_leg(tmp_path: Path) -> None:
    """POST /api/calls/{linkedid}/hangup: AMI Hangup of the agent's bridged leg (write class call), for the agent
    who answered and for supervisors; the pop's times are the service's (Asia/Shanghai)."""
    session, start, talk = p5_with_pause()
    async with running_desk(tmp_path, [session]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        other = await desk.user("1002", "agent", "1002")
        supervisor = await desk.user("sup", "supervisor")
        async with desk.socket(agent) as mine:
            await desk.route("12369", CALL)
            start.set()
            ringing = await mine.next("ringing")
            assert ringing["call"]["arrived_at"].endswith("+08:00")
            await mine.next("answered")
            refused = await desk.request("POST", f"/api/calls/{CALL}/hangup", other, expect=403)
            assert refused["error"]["code"] == "not_your_call"
            gone = await desk.request("POST", "/api/calls/1.1/hangup", agent, expect=404)
            assert gone["error"]["code"] == "no_such_call"
            hangup = {"Action": "Hangup", "Channel": AGENT_CHANNEL, "Cause": "16"}
            assert await desk.request("POST", f"/api/calls/{CALL}/hangup", agent) == {"sent": [hangup]}
            assert await desk.request("POST", f"/api/calls/{CALL}/hangup", supervisor) == {"sent": [hangup]}
            await until(lambda: len(desk.server.actions("Hangup")) == 2, what="the Hangup actions on the wire")
            assert [{k: v for k, v in a.items() if k != "ActionID"} for a in desk.server.actions("Hangup")] == [
                hangup, hangup]
            talk.set()
            await mine.next("ended")
        # the call ended without a case: cti opened one, and the agent's form completes it, the caller's name too
        await until(lambda: desk.service.writer.written == 1, what="the record")
        for _ in range(100):
            if (opened := await desk.database.cases.case_of_call(CALL)) is not None:
                break
            await asyncio.sleep(0.05)
        assert opened is not None, "cti opened no case for the call"
        case = await desk.request("POST", "/api/cases", agent, json={
            "linkedid": CALL, "caller_name": "张先生", "category": "request", "content": "路灯不亮"})
        assert case["id"] == opened  # cti's own case, completed
        assert (case["caller_name"], case["category_name"], case["auto"]) == ("张先生", "求助", False)


async def test_me_names_the_service_zone_and_the_pause_reasons(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        mine = await desk.request("GET", "/api/me", agent)
        assert mine["timezone"] == "Asia/Shanghai"
        assert mine["pause_reasons"] == list(desk.service.configuration.directory.pause_reasons) == [
            "小休", "用餐", "培训", "会议", "整理工单"]
        refused = await desk.request("POST", "/api/agents/1001/pause", agent, expect=422, json={"reason": "打游戏"})
        assert refused["error"]["details"]["fields"]["reason"].startswith("one of 小休")


async def test_recording_is_played_only_to_whom_may_hear_it(tmp_path: Path) -> None:
    session, start, talk = p5_with_pause()
    async with running_desk(tmp_path, [session]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        other = await desk.user("1002", "agent", "1002")
        supervisor = await desk.user("sup", "supervisor")
        await desk.route("12369", CALL, recording_of(tmp_path))
        start.set()
        await until(lambda: CALL in desk.service.tracker.calls and desk.service.tracker.calls[CALL].recording,
                    what="the recording to start")
        talk.set()
        await until(lambda: desk.service.writer.written == 1, what="the record")
        [record] = await desk.database.calls.calls()
        assert record.recording.startswith(str(tmp_path / "monitor"))
        await desk.request("GET", f"/api/calls/{CALL}/recording", agent, expect=404)  # not written yet
        Path(record.recording).parent.mkdir(parents=True)
        Path(record.recording).write_bytes(b"RIFF....WAVEfmt fake audio")
        audio = await desk.request("GET", f"/api/calls/{CALL}/recording", agent)
        assert audio == b"RIFF....WAVEfmt fake audio"
        assert await desk.request("GET", f"/api/calls/{CALL}/recording", supervisor) == audio
        await desk.request("GET", f"/api/calls/{CALL}/recording", other, expect=403)
        detail = await desk.request("GET", f"/api/calls/{CALL}", agent)
        assert [e["kind"] for e in detail["timeline"]][:4] == ["offered", "routed", "ivr", "queued"]
        assert "recording" in [e["kind"] for e in detail["timeline"]]
        assert all(e["at"].endswith("+08:00") for e in detail["timeline"])  # the service's zone, as every time


def ringing_then_lost() -> Session:
    """P5 cut while agent1001's phone rings; the link drops when the session's gate opens."""
    ringing = transcript("P5_sip_agent_blind_110")
    answer = first_index(ringing, b"Event: DialEnd", b"DialStatus: ANSWER", b"DestChannel: PJSIP/agent1001")
    ringing.script = ringing.script[:answer]
    ringing.gate = asyncio.Event()
    return ringing


async def test_a_stale_pop_is_cleared_after_a_reconnect(tmp_path: Path) -> None:
    """The link drops while agent1001's phone rings; after the reconnect the call is gone."""
    ringing = ringing_then_lost()
    assert ringing.gate is not None
    async with running_desk(tmp_path, [ringing, Session(close_at_end=False)]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        async with desk.socket(agent) as mine:
            ringing.gate.set()
            await mine.next("ringing")
            assert (await mine.next("link"))["state"] == "down"
            cleared = await mine.next("cleared")
            assert (cleared["linkedid"], cleared["outcome"]) == (CALL, "gone")
            assert (await mine.next("link"))["state"] == "up"
            kinds = await mine.drain()
        # the pop is gone from the desk; the call's end (estimated) concerns it no more
        assert kinds.index("ringing") < kinds.index("link") < kinds.index("cleared")
        assert "ended" not in kinds
        await until(lambda: desk.service.writer.written == 1, what="the record")
        [record] = await desk.database.calls.calls()
        assert record.estimated and record.legs[-1].outcome == "gone"


@pytest.mark.parametrize("token", ["", "cti_wrong"])
async def test_a_socket_without_a_valid_token_is_closed(tmp_path: Path, token: str) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        async with desk.http.ws_connect(desk.base.replace("http", "ws") + "/api/ws") as ws:
            await ws.send_json({"type": "auth", "token": token})
            first = await ws.receive_json(timeout=5)
            assert first["error"]["code"] == "unauthorized"
            await ws.receive(timeout=5)
            assert ws.closed and ws.close_code == 4401


def test_raw_session_helper_is_scripted() -> None:
    assert Session(script=[Scripted(b"x")]).script[0].raw == b"x"
