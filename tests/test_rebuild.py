"""Calls rebuilt after cti (re)starts or its AMI link comes back: every call live at that moment,
and every call that came and went while the link was down, gets exactly one record.

Ground truth: R3, a new cti session's channel list with three calls under the shipped dialplan
(one talking, one queued, one parallel-ringing a remote seat), read by the `cti` AMI user."""

from __future__ import annotations

from pathlib import Path

import pytest

from cti.ami.clock import StreamClock
from cti.ami.framing import Framer
from cti.ami.message import AmiMessage
from cti.calls.events import RouteDecided
from cti.calls.record import CallRecord, LiveCall
from cti.calls.state import ENDED_AWAY
from cti.calls.tracker import ENDED_UNSEEN, CallTracker
from cti.pipeline import CallPipeline
from tests.fakeami import FIXTURES

R3 = FIXTURES / "R3_cti_restart_channel_list.raw"
NAMES = {"PJSIP/agent1001": "王芳", "PJSIP/seat-12315": "市市场监管局 远端座席"}


def feed(tracker: CallTracker, path: Path, until: str | None = None) -> list[CallRecord]:
    """Feed a transcript; stop after the first message named ``until``."""
    records: list[CallRecord] = []
    pipeline = CallPipeline(tracker, StreamClock(), records.append)
    for message in Framer(source=path.name).feed(path.read_bytes()):
        pipeline.on_message(message)
        if message.name == until:
            break
    return records


def by_caller(records: list[CallRecord]) -> dict[str, CallRecord]:
    return {r.caller_number: r for r in records}


@pytest.mark.parametrize("trace", [R3, FIXTURES / "R3b_cti_restart_recorded.raw"])  # R3b: the dialplan records
def test_every_live_call_of_the_channel_list_is_rebuilt_once(trace: Path) -> None:
    tracker = CallTracker(names=lambda device: NAMES.get(device, ""))
    records = by_caller(feed(tracker, trace))
    assert sorted(records) == ["13850000001", "13850000002", "13850000003"]  # the lab's handsets are not calls
    assert all(r.estimated and r.direction == "inbound" for r in records.values())

    talking = records["13850000001"]  # A: bridged with 1001 when listed; the citizen hangs up later
    assert (talking.answered_by, talking.answered_by_name) == ("PJSIP/agent1001", "王芳")
    assert talking.talk_time == 40.0  # app_queue's AgentComplete TalkTime
    assert (talking.hangup_cause, talking.hangup_cause_text) == (16, "Normal Clearing")

    queued = records["13850000002"]  # B: waiting in q12345 (QueueEntry, Wait 7), gives up
    assert queued.answered_at is None and queued.queue == "q12345" and queued.queue_wait == 32.0
    assert queued.hangup_cause == 19

    ringing = records["13850000003"]  # C: Dial(Local/q12345@cti-queue/n&PJSIP/seat-12315) ringing
    assert ringing.answered_at is None and ringing.queue == "q12345"
    assert {(leg.device, leg.name, leg.outcome) for leg in ringing.legs} == {
        ("PJSIP/seat-12315", "市市场监管局 远端座席", "cancel"), ("Local/q12345@cti-queue", "", "cancel")}
    assert tracker.calls == {}


def test_a_rebuilt_call_knows_when_it_arrived_and_waits_for_its_dialled_number() -> None:
    """The list gives each leg's age (Duration); under the shipped dialplan the citizen's Exten is now a
    step (queue, dial), not the number dialled: the call is listed as unrouted until told."""
    tracker = CallTracker()
    feed(tracker, R3, until="CoreShowChannelsComplete")
    assert sorted(tracker.unrouted) == ["1796282518.1", "1796282533.5", "1796282534.7"]
    ages = {c.caller_number: c.arrived_at for c in tracker.calls.values()}
    assert ages["13850000001"] < ages["13850000002"] < ages["13850000003"]
    tracker.note("1796282534.7", "1796282534.7", lambda linkedid: RouteDecided(
        linkedid, 0.0, "12315", "市市场监管局", "market-regulation", "remote_seat", "recovered"))
    assert tracker.calls["1796282534.7"].dialled_number == "12315"
    assert sorted(tracker.unrouted) == ["1796282518.1", "1796282533.5"]


def test_a_second_channel_list_rebuilds_nothing_twice() -> None:
    tracker = CallTracker()
    data = R3.read_bytes()
    listing_end = data.index(b"Event: QueueStatusComplete")
    messages = Framer().feed(data)
    listing = [m for m in messages if m.name == "CoreShowChannel"]
    pipeline = CallPipeline(tracker, StreamClock(), lambda record: None)
    for message in Framer().feed(data[:listing_end]):
        pipeline.on_message(message)
    before = {k: (c.arrived_at, c.estimated) for k, c in tracker.calls.items()}
    tracker.reconcile(listing, 1.0)
    assert {k: (c.arrived_at, c.estimated) for k, c in tracker.calls.items()} == before
    assert tracker.finished == []


def _route(linkedid: str, at: float, number: str = "12315", caller: str = "13900000009") -> RouteDecided:
    return RouteDecided(linkedid, at, number, "市市场监管局", "market-regulation", "remote_seat", "parallel_ring",
                        caller, "市民丁")


def test_a_call_that_came_and_went_while_the_link_was_down_is_recorded_from_its_route() -> None:
    tracker = CallTracker()
    tracker.link_lost(100.0)
    tracker.note("1796300000.9", "1796300000.9", lambda linkedid: _route(linkedid, 101.0))
    tracker.listing_requested()
    tracker.reconcile([], 105.0)
    [record] = tracker.take_finished()
    assert (record.linkedid, record.caller_number, record.caller_name, record.dialled_number) == (
        "1796300000.9", "13900000009", "市民丁", "12315")
    assert (record.unit_id, record.treatment, record.arrived_at, record.ended_at) == (
        "market-regulation", "remote_seat", 101.0, 105.0)
    assert record.estimated and record.answered_at is None and record.hangup_cause_text == ENDED_UNSEEN
    tracker.reconcile([], 106.0)  # once only
    assert tracker.take_finished() == []


def test_a_route_decided_during_the_outage_joins_the_call_still_listed() -> None:
    tracker = CallTracker()
    tracker.link_lost(0.0)
    tracker.note("1796282534.7", "1796282534.7", lambda linkedid: _route(linkedid, 1.0))
    feed(tracker, R3, until="CoreShowChannelsComplete")
    call = tracker.calls["1796282534.7"]
    assert (call.dialled_number, call.unit_id) == ("12315", "market-regulation")
    assert "1796282534.7" not in tracker.unrouted
    assert tracker.take_finished() == []


def test_a_decision_after_the_list_was_asked_for_is_not_taken_for_an_unseen_call() -> None:
    """Its channel is newer than the list: its Newchannel is still to come in the stream."""
    tracker = CallTracker()
    tracker.link_lost(0.0)
    tracker.listing_requested()
    tracker.note("1796300001.1", "1796300001.1", lambda linkedid: _route(linkedid, 2.0))
    tracker.reconcile([], 2.5)
    assert tracker.take_finished() == []


def test_a_survey_note_is_never_taken_for_a_citizen_call() -> None:
    from cti.calls.events import IvrFinished

    tracker = CallTracker()
    tracker.link_lost(0.0)
    tracker.note("1796300002.4", "1796300002.4",
                 lambda linkedid: IvrFinished(linkedid, 1.0, "survey", "hangup", {"satisfaction": "1"}, False))
    tracker.reconcile([], 3.0)
    assert tracker.take_finished() == []


def _event(name: str, **headers: str) -> AmiMessage:
    return AmiMessage.event(name, **headers)


def test_a_member_rung_again_and_again_is_one_leg_with_its_attempts() -> None:
    """app_queue rings a member again after every ring timeout: 120 retries are one leg, not 120."""
    tracker = CallTracker()
    tracker.feed(_event("Newchannel", Channel="PJSIP/carrier-00000001", Uniqueid="1.1", Linkedid="1.1",
                        Context="from-carrier", Exten="12345", CallerIDNum="13800000001", ChannelState="4"), 0.0)
    for attempt in range(1, 121):
        leg, at = f"PJSIP/agent1001-{attempt:08x}", attempt * 20.0
        uniqueid = f"1.{attempt + 1}"
        tracker.feed(_event("Newchannel", Channel=leg, Uniqueid=uniqueid, Linkedid="1.1", Context="phones",
                            Exten="queue", ChannelState="0"), at)
        tracker.feed(_event("AgentCalled", Linkedid="1.1", DestUniqueid=uniqueid, DestChannel=leg,
                            Interface="PJSIP/agent1001", MemberName="王芳"), at)
        tracker.feed(_event("DialEnd", Linkedid="1.1", Uniqueid="1.1", DestUniqueid=uniqueid, DestChannel=leg,
                            DialStatus="NOANSWER"), at + 15)
        tracker.feed(_event("Hangup", Channel=leg, Uniqueid=uniqueid, Linkedid="1.1", Cause="19"), at + 15)
    tracker.feed(_event("Hangup", Channel="PJSIP/carrier-00000001", Uniqueid="1.1", Linkedid="1.1", Cause="16"),
                 2500.0)
    [record] = tracker.take_finished()
    [leg] = record.legs
    assert (leg.device, leg.name, leg.outcome, leg.attempts) == ("PJSIP/agent1001", "王芳", "noanswer", 120)
    assert (leg.rang_at, leg.ended_at) == (20.0, 2415.0)


def _journalled(linkedid: str, arrived: float, answered: float | None = None) -> LiveCall:
    """A call as the journal of the cti before this one has it (cti.store.journal)."""
    return LiveCall(linkedid=linkedid, direction="inbound", caller_number="13900000011", caller_name="市民戊",
                    dialled_number="12315", unit="市市场监管局", unit_id="market-regulation", treatment="remote_seat",
                    arrived_at=arrived, queue="q12345", answered_at=answered,
                    answered_by="PJSIP/agent1001" if answered else "", citizen_channel="PJSIP/carrier-00000003",
                    agent_channel="PJSIP/agent1001-00000004" if answered else "",
                    recording=f"/rec/{linkedid}.wav")


def test_a_call_that_ended_while_cti_was_not_running_is_recorded_from_its_journal() -> None:
    """Killed with calls live, cti learns nothing of one whose citizen hung up meanwhile: no channel
    list shows it. The journal does, and the call is recorded from it at the first list."""
    tracker = CallTracker(names=lambda device: NAMES.get(device, ""))
    tracker.remember([_journalled("1796300003.2", 90.0, answered=95.0), _journalled("1796300003.5", 99.0)])
    tracker.listing_requested()
    tracker.reconcile([], 130.0)
    talked, waited = sorted(tracker.take_finished(), key=lambda r: r.arrived_at)
    assert (talked.caller_number, talked.caller_name, talked.dialled_number, talked.unit_id, talked.treatment) == (
        "13900000011", "市民戊", "12315", "market-regulation", "remote_seat")
    assert (talked.arrived_at, talked.answered_at, talked.ended_at) == (90.0, 95.0, 130.0)
    assert (talked.answered_by, talked.answered_by_name, talked.recording) == (
        "PJSIP/agent1001", "王芳", "/rec/1796300003.2.wav")
    assert talked.talk_time is None  # its end is not known
    assert (waited.answered_at, waited.recording, waited.queue) == (None, "", "q12345")  # never answered: no file
    assert all(r.estimated and r.hangup_cause is None and r.hangup_cause_text == ENDED_AWAY for r in (talked, waited))
    assert [e.kind for e in talked.timeline] == ["offered", "ended"]
    tracker.reconcile([], 131.0)  # once only
    assert tracker.take_finished() == []


def test_a_journalled_call_still_listed_is_rebuilt_with_what_the_journal_knew() -> None:
    """R3's ringing call (C, to 12315): the journal gives its arrival to the millisecond and what was
    dialled; the route's action is still read back from the dialplan's variables."""
    tracker = CallTracker()
    tracker.remember([_journalled("1796282534.7", 1796282534.25)])
    feed(tracker, R3, until="CoreShowChannelsComplete")
    call = tracker.calls["1796282534.7"]
    assert (call.arrived_at, call.dialled_number, call.unit_id, call.treatment) == (
        1796282534.25, "12315", "market-regulation", "remote_seat")
    assert sorted(tracker.unrouted) == ["1796282518.1", "1796282533.5", "1796282534.7"]
    assert tracker.take_finished() == []


def test_every_call_that_came_and_went_during_a_long_outage_is_recorded() -> None:
    """Review: past 1,024 route decisions during an outage the oldest were dropped silently (76 of 1,100 calls
    lost). Notes taken while the link is down are kept until the next list (up to UNSEEN_NOTES)."""
    tracker = CallTracker()
    tracker.link_lost(0.0)
    for n in range(1100):
        linkedid = f"1796300100.{n}"
        tracker.note(linkedid, linkedid, lambda linkedid, n=n: _route(linkedid, 1.0 + n))
    tracker.listing_requested()
    tracker.reconcile([], 2000.0)
    records = tracker.take_finished()
    assert len(records) == 1100 and len({r.linkedid for r in records}) == 1100
    assert tracker.dropped_notes == 0
