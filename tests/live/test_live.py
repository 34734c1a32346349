"""The shipped configuration on a real Asterisk 22, with real SIP calls, and a real cti beside it.

Each test places citizens' calls through the carrier trunk and reads what cti recorded: every
treatment of the trunk map, each transfer kind with the number 110 was shown, a three-way call
with a department's seat, the callback with its survey, cti killed mid-call, Asterisk restarted
mid-call, and a burst of calls with every record counted. Skipped without a live PBX
(tests/live/conftest.py, README.md)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from cti.routing.model import Decision
from cti.routing.router import decide
from cti.routing.trunkmap import load_trunk_map
from tests.live.conftest import Cti, Lab, wait_for, wait_for_async


def number_for(cti: Cti, action: str) -> tuple[str, Decision] | None:
    """A number of cti's trunk map the router treats with ``action`` today, and its decision."""
    trunk_map = load_trunk_map(cti.workdir / "trunk_map.yaml")
    now = datetime.now(trunk_map.zone)
    numbers = [trunk_map.hotline.number] + [n.number for u in trunk_map.units for n in u.numbers]
    return next(((n, d) for n in numbers if (d := decide(trunk_map, n, now)).action == action), None)


async def answered_call(cti: Cti, lab: Lab, caller: str, talk: float = 40) -> dict[str, Any]:
    """A citizen calls 12345 and agent 1001 answers; the live call as the API lists it."""
    await lab.call("12345", caller, "市民", talk)
    found: list[dict[str, Any]] = []

    async def answered() -> bool:
        found[:] = [c for c in await cti.api("GET", "/api/live") if c["caller_number"] == caller]
        return bool(found) and found[0]["answered_at"] is not None

    await wait_for_async(answered, 30, f"{caller}'s call to be answered")
    await asyncio.sleep(1)
    return found[0]


@pytest.mark.parametrize("action", ["queue", "notice_then_queue", "retired_notice", "parallel_ring", "guidance"])
async def test_every_treatment_of_the_trunk_map(cti: Cti, lab: Lab, action: str) -> None:
    found = number_for(cti, action)
    if found is None:
        pytest.skip(f"no number of the trunk map is treated {action} today")
    number, decision = found
    caller = f"1390000{abs(hash(action)) % 10000:04d}"
    await lab.call(number, caller, "市民", 15)  # from the answer: the notice's, or the agent's
    record = await cti.record(caller)
    assert (record["dialled_number"], record["treatment"], record["unit"]) == (
        number, decision.treatment, decision.unit or "")
    assert not record["estimated"]
    if action in ("queue", "notice_then_queue", "parallel_ring"):  # a person answers: 1001, or the unit's seat
        assert record["answered_by"] == "PJSIP/agent1001" or record["answered_by"] in decision.targets
        assert record["answered_by_name"]
        assert record["recording"].endswith(f"/{record['linkedid']}.wav")
    else:  # the notice is all: nobody is rung
        assert record["answered_by"] == "" and record["legs"] == []


@pytest.mark.parametrize("kind", ["blind", "attended", "conference"])
async def test_110_is_shown_the_citizen_in_every_transfer_kind(cti: Cti, lab: Lab, kind: str) -> None:
    caller = {"blind": "13800000011", "attended": "13800000012", "conference": "13800000013"}[kind]
    call = await answered_call(cti, lab, caller)
    reply = await cti.api("POST", f"/api/calls/{call['linkedid']}/transfer", "1001",
                          {"target": "110", "kind": kind})
    if kind == "attended":
        await asyncio.sleep(4)  # 110 answers after 2 s; the agent talks to it, then completes
        await cti.api("POST", f"/api/calls/{call['linkedid']}/transfer/complete", "1001")
    if kind == "conference":  # the third party is originated into the room with the citizen's caller ID
        assert reply["sent"][1]["CallerID"] == f'"市民" <{caller}>'
    record = await cti.record(caller)
    transfers = {t["kind"]: t for t in record["transfers"]}
    if kind == "conference":
        assert transfers["redirect"]["outcome"] == "answered"  # both legs into the room
        assert transfers["conference"]["outcome"] == "answered"  # and 110 with them
    else:
        assert (transfers[kind]["target"], transfers[kind]["outcome"], transfers[kind]["presented"]) == (
            "110", "answered", caller)


async def test_a_three_way_call_with_the_departments_seat(cti: Cti, lab: Lab) -> None:
    caller = "13800000021"
    call = await answered_call(cti, lab, caller)
    await cti.api("POST", f"/api/calls/{call['linkedid']}/transfer", "1001",
                  {"target": "seat-12315", "kind": "conference"})
    record = await cti.record(caller)
    assert [(t["kind"], t["target"], t["outcome"]) for t in record["transfers"]] == [
        ("redirect", f"cti-{record['linkedid']}", "answered"), ("conference", "PJSIP/seat-12315", "answered")]


@pytest.mark.parametrize("kind", ["blind", "attended"])
async def test_a_transfer_to_a_departments_seat(cti: Cti, lab: Lab, kind: str) -> None:
    caller = {"blind": "13800000031", "attended": "13800000032"}[kind]
    call = await answered_call(cti, lab, caller)
    await cti.api("POST", f"/api/calls/{call['linkedid']}/transfer", "1001", {"target": "seat-12315", "kind": kind})
    if kind == "attended":
        await asyncio.sleep(4)
        await cti.api("POST", f"/api/calls/{call['linkedid']}/transfer/complete", "1001")
    record = await cti.record(caller)
    [transfer] = record["transfers"]
    assert (transfer["kind"], transfer["outcome"], transfer["reached"]) == (kind, "answered", "PJSIP/seat-12315")


async def test_the_callback_asks_the_survey_and_closes_the_case(cti: Cti, lab: Lab) -> None:
    caller = "13800000041"
    call = await answered_call(cti, lab, caller, talk=4)
    case = await cti.api("POST", "/api/cases", "1001", {"linkedid": call["linkedid"], "category": "consultation",
                                                       "content": "问公积金提取"})
    await cti.api("POST", f"/api/cases/{case['id']}/actions/answer", "1001", {"reply": "已答复提取条件"})

    async def closed() -> bool:
        now = await cti.api("GET", f"/api/cases/{case['id']}")
        return bool(now["state"] == "closed")

    await wait_for_async(closed, 120, "the callback's survey to close the case")
    now = await cti.api("GET", f"/api/cases/{case['id']}")
    assert now["satisfaction"] == "1"  # the called-back citizen pressed 1 (满意)


async def test_a_cti_killed_mid_call_records_the_call_once_after_its_restart(cti: Cti, lab: Lab) -> None:
    caller = "13800000051"
    await answered_call(cti, lab, caller, talk=25)
    cti.kill()  # kill -9
    await asyncio.sleep(5)
    await cti.start()  # a new process: its first AMI session finds the call in [cti-next]
    record = await cti.record(caller)
    assert (record["dialled_number"], record["treatment"], record["answered_by_name"]) == ("12345", "hotline", "王芳")
    assert record["estimated"]
    assert record["recording"].endswith(f"/{record['linkedid']}.wav")


async def test_an_asterisk_restart_mid_call_ends_the_call_and_puts_the_agent_back(cti: Cti, lab: Lab) -> None:
    caller = "13800000061"
    await answered_call(cti, lab, caller, talk=60)
    await cti.api("POST", "/api/agents/1001/pause", "1001", {"reason": "培训"})
    try:
        await lab.cli("core restart now")
    except Exception:  # the link closes under the command
        pass
    record = await cti.record(caller, timeout=60)
    assert record["hangup_cause_text"].endswith("(Asterisk shut down)")
    await wait_for(lambda: lab.client.connected.is_set(), 60, "the lab's AMI back")

    async def restored() -> bool:  # as Asterisk itself has it: the restart had emptied the queue
        queue = await lab.cli("queue show q12345")
        return "PJSIP/agent1001" in queue and "paused" in queue.lower()

    await wait_for_async(restored, 60, "1001 back in the queue, paused")
    status = await cti.api("GET", "/api/agents/1001", "1001")
    assert (status["queues"], status["paused"], status["reason"]) == (["q12345"], True, "培训")
    # the restart reset the dialplan's globals: point the PBX at this cti again for the tests after
    await lab.globals(CTI_AGI=f"agi://127.0.0.1:{cti.agi_port}", CTI_RECORDINGS=cti.workdir / "recordings",
                      SIM_RING_agent1001=1, SIM_TALK_110=8, SIM_RING_110=2)


async def test_a_burst_of_calls_is_recorded_call_by_call(cti: Cti, lab: Lab) -> None:
    await cti.api("POST", "/api/agents/1002/login", "1002")
    callers = [f"1370000{i:04d}" for i in range(30)]
    for caller in callers:
        await lab.call("12345", caller, "市民", 3)
        await asyncio.sleep(0.3)

    async def all_written() -> bool:
        return len(await cti.api("GET", "/api/calls?limit=500")) >= len(callers)

    await wait_for_async(all_written, 300, "every call's record")
    records = [r for r in await cti.api("GET", "/api/calls?limit=500") if r["caller_number"] in callers]
    assert sorted(r["caller_number"] for r in records) == callers  # each once


async def test_a_supervisor_listens_whispers_and_barges_from_their_phone(cti: Cti, lab: Lab) -> None:
    """Supervisor 9001 (agents.yaml) listens to, whispers to, then barges into agent 1001's call: cti
    originates PJSIP/supervisor9001 into [cti-spy] as the cti user (write = call,originate,agent,reporting),
    the handset answers, ChanSpy runs on the agent's leg (ChanSpyStart names it). Listen and whisper end when
    the supervisor hangs up (ChanSpyStop), barge when the citizen does; the record's timeline tells it all.
    Needs the lab's handset for the supervisor's phone (tests/live/README.md)."""
    if "Contact:  supervisor9001/" not in await lab.cli("pjsip show aor supervisor9001"):  # not the header's
        pytest.skip("the lab has no handset for PJSIP/supervisor9001 (tests/live/README.md)")
    await lab.globals(SIM_RING_supervisor9001=1, SIM_TALK_supervisor9001=120)
    cti.command("user", "add", "9001", "--role", "supervisor", "--password-stdin", stdin="live test password\n")
    await cti.sign_in("9001")
    caller = "13800000071"
    call = await answered_call(cti, lab, caller, talk=40)
    linkedid = call["linkedid"]
    await cti.api("POST", f"/api/calls/{linkedid}/listen", "1001", {"mode": "listen"}, expect=403)
    await cti.api("POST", f"/api/calls/{linkedid}/listen", "supervisor", {"mode": "listen"}, expect=409)
    agent_channel = ""
    for mode in ("listen", "whisper", "barge"):
        seen = len([e for e in lab.events if e.name == "ChanSpyStart"])
        sent = (await cti.api("POST", f"/api/calls/{linkedid}/listen", "9001", {"mode": mode}))["sent"]
        agent_channel = sent[0]["Variable"].removeprefix("CTI_SPY=")
        assert agent_channel.startswith("PJSIP/agent1001-")
        await wait_for(lambda seen=seen: len([e for e in lab.events if e.name == "ChanSpyStart"]) > seen, 15,
                       f"ChanSpy ({mode}) on the agent's leg")
        start = [e for e in lab.events if e.name == "ChanSpyStart"][-1]
        assert (start.get("spyeechannel"), start.get("spyerexten"), start.get("spyercontext")) == (
            agent_channel, mode, "cti-spy")
        assert start.get("spyerchannel").startswith("PJSIP/supervisor9001-")
        if mode != "barge":
            await asyncio.sleep(2)
            await lab.cli(f"channel request hangup {start.get('spyerchannel')}")
            await wait_for(lambda s=start: any(e.name == "ChanSpyStop" and e.get("spyerchannel") == s.get(
                "spyerchannel") for e in lab.events), 10, f"the end of the {mode} session")
    record = await cti.record(caller)
    detail = await cti.api("GET", f"/api/calls/{record['linkedid']}", "9001")
    kinds = [e["kind"] for e in detail["timeline"] if e["kind"].startswith("listen")]
    assert kinds == ["listen", "listen_started", "listen_ended"] * 3
    asked = [e for e in detail["timeline"] if e["kind"] == "listen"]
    assert [(e["mode"], e["supervisor"], e["device"], e["agent_channel"]) for e in asked] == [
        (mode, "9001", "PJSIP/supervisor9001", agent_channel) for mode in ("listen", "whisper", "barge")]
    await wait_for_async(lambda: _gone(lab, "supervisor9001"), 20, "the supervisor's leg to end with the call (E)")


async def _gone(lab: Lab, device: str) -> bool:
    return not any(device in channel for channel in await lab.channels())
