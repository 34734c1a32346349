"""A call's parts on two nodes become one record (cti.calls.crossings), whichever part ends first."""

from __future__ import annotations

import dataclasses

from cti.agi.protocol import parse_reply
from cti.calls.channels import LINKEDID, is_node_trunk
from cti.calls.crossings import Crossings, join
from cti.calls.events import CallEnded, CallFromNode, CallOffered
from cti.calls.record import CallRecord, Leg
from cti.ivr.engine import FlowRun
from cti.ivr.flows import Dial, Flow

NEAR, FAR = "sz1-1764806400.7", "sz2-1764806400.3"


def near(**changes: object) -> CallRecord:
    """sz1's part: 12369 dialled, answered only by the trunk to sz2 at 103 s."""
    record = CallRecord(
        linkedid=NEAR, direction="inbound", caller_number="13700001111", caller_name="", dialled_number="12369",
        arrived_at=100.0, ended_at=160.0, unit="市生态环境局", unit_id="ecology-environment", treatment="remote_seat",
        answered_at=103.0, talk_time=57.0, answered_by="PJSIP/node-sz2", answered_channel="PJSIP/node-sz2-00000004",
        legs=(Leg("PJSIP/node-sz2", "", "PJSIP/node-sz2-00000004", 100.5, "answered", 160.0),),
        recording="/rec/sz1.wav", hangup_cause=16,
        timeline=(CallOffered(NEAR, 100.0, "inbound", "13700001111", "", "12369", "PJSIP/carrier-00000003"),
                  CallEnded(NEAR, 160.0, 16, "Normal Clearing", True, False)))
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def far(**changes: object) -> CallRecord:
    """sz2's part: arrived from sz1 at 100.6 s, queued, agent 1002 answered at 110 s."""
    record = CallRecord(
        linkedid=FAR, direction="inbound", caller_number="13700001111", caller_name="", dialled_number="12369",
        arrived_at=100.6, ended_at=160.1, unit="市生态环境局", unit_id="ecology-environment", treatment="remote_seat",
        queue="q12345", queued_at=100.8, queue_wait=9.2, answered_at=110.0, talk_time=50.0,
        answered_by="PJSIP/agent1002", answered_by_name="李明", answered_channel="PJSIP/agent1002-00000009",
        legs=(Leg("PJSIP/agent1002", "李明", "PJSIP/agent1002-00000009", 101.0, "answered", 160.1),),
        origin=NEAR,
        timeline=(CallFromNode(FAR, 100.7, NEAR, "12369", "市生态环境局", "ecology-environment", "remote_seat"),))
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def test_the_near_part_answered_by_the_trunk_takes_the_far_nodes_queue_answer_and_talk() -> None:
    record = join(near(), [far()])
    assert record.linkedid == NEAR and record.dialled_number == "12369" and record.hangup_cause == 16
    assert (record.queue, record.queued_at, record.queue_wait) == ("q12345", 100.8, 9.2)
    assert (record.answered_at, record.talk_time, record.answered_by, record.answered_by_name) == (
        110.0, 50.0, "PJSIP/agent1002", "李明")
    assert [leg.device for leg in record.legs] == ["PJSIP/node-sz2", "PJSIP/agent1002"]
    assert record.recording == "/rec/sz1.wav"  # the near node's [cti-record] on the trunk leg heard it all
    assert [(e.kind, e.linkedid) for e in record.timeline] == [
        ("offered", NEAR), ("from_node", NEAR), ("ended", NEAR)]  # one timeline, in time order, one id


def test_a_person_who_answered_on_the_near_node_stays_the_answer() -> None:
    """An agent on sz1 answered and sent the citizen on to sz2's queue: the record is the agent's call."""
    by_agent = near(answered_by="PJSIP/agent1001", answered_by_name="王芳", answered_at=104.0, talk_time=56.0)
    record = join(by_agent, [far()])
    assert (record.answered_by, record.answered_at, record.talk_time) == ("PJSIP/agent1001", 104.0, 56.0)
    assert "PJSIP/agent1002" in {leg.device for leg in record.legs}


def test_no_one_answering_on_the_far_node_leaves_the_call_unanswered() -> None:
    record = join(near(), [far(answered_at=None, talk_time=None, answered_by="", answered_by_name="",
                               answered_channel="", queue_wait=None)])
    assert record.answered_at is None and record.talk_time is None and record.queue == "q12345"


def test_whichever_part_ends_first_waits_for_the_other() -> None:
    crossings = Crossings(hold=30)
    crossings.on_events([far().timeline[0]])  # sz2's part began, from sz1's
    assert crossings.finished(near(), 160.0) == []  # sz1's part waits for sz2's
    assert crossings.waiting == 1
    [record] = crossings.finished(far(), 160.1)
    assert record.linkedid == NEAR and record.answered_by == "PJSIP/agent1002"
    assert crossings.waiting == 0 and crossings.joined == 1

    crossings = Crossings(hold=30)
    assert crossings.finished(far(), 160.1) == []  # sz2's part ended first (or its origin was never announced)
    [record] = crossings.finished(near(), 160.3)
    assert record.answered_by == "PJSIP/agent1002"


def test_a_call_on_one_node_is_written_at_once_and_a_lone_part_after_the_hold() -> None:
    crossings = Crossings(hold=30)
    alone = near(linkedid="sz1-1764806400.9", answered_by="PJSIP/agent1001")
    assert crossings.finished(alone, 10.0) == [alone]
    crossings.on_events([far().timeline[0]])
    assert crossings.finished(near(), 160.0) == []
    assert crossings.expired(189.0) == []
    [let_go] = crossings.expired(190.0)  # sz2's part never ended here (its link down): sz1's part as it is
    assert let_go == near()
    assert crossings.finished(far(), 200.0) == []
    assert crossings.expired(230.0) == [far()]  # and sz2's, on its own, when it comes too late
    assert crossings.waiting == 0


def test_two_far_parts_join_once_both_ended() -> None:
    crossings = Crossings()
    second = far(linkedid="sz3-1764806400.1", arrived_at=120.0, legs=(), timeline=(
        CallFromNode("sz3-1764806400.1", 120.0, NEAR),))
    crossings.on_events([far().timeline[0], second.timeline[0]])
    assert crossings.finished(far(), 150.0) == []
    assert crossings.finished(near(), 160.0) == []
    [record] = crossings.finished(second, 161.0)
    assert record.linkedid == NEAR and len(record.timeline) == 4


def test_what_names_a_node_trunk_and_a_linkedid() -> None:
    assert is_node_trunk("PJSIP/node-sz2") and is_node_trunk("Local/q12345@cti-queue/n&PJSIP/q12345@node-sz2")
    assert not is_node_trunk("PJSIP/seat-12369") and not is_node_trunk("PJSIP/110@carrier")
    assert LINKEDID.fullmatch(NEAR) and LINKEDID.fullmatch("1764806400.7")
    assert not LINKEDID.fullmatch("sz1-1764806400.7\r\nAction: Originate") and not LINKEDID.fullmatch("")


def test_a_flow_dialling_another_node_hands_over_to_cti_next_node() -> None:
    flow = Flow("parallel_ring", "", (Dial("{dial}", "30", "queue"),))
    for targets, step in (("Local/q12345@cti-queue/n&PJSIP/q12345@node-sz2", "node"),
                          ("Local/q12345@cti-queue/n&PJSIP/seat-12369", "dial")):
        run = FlowRun(flow, {"dial": targets})
        command = run.start()
        sent = []
        while command is not None:
            sent.append(command)
            command = run.reply(parse_reply("200 result=1"))
        assert run.outcome.next == step and f'SET VARIABLE CTI_NEXT "{step}"' in sent
