"""A route decision from FastAGI joins the call's timeline, whichever socket is first."""

from __future__ import annotations

import pytest

from cti.ami.clock import StreamClock
from cti.ami.framing import Framer
from cti.calls.events import RouteDecided
from cti.calls.record import CallRecord
from cti.calls.tracker import CallTracker
from cti.pipeline import CallPipeline
from tests.fakeami import FIXTURES

CITIZEN = "1795281168.15"  # Local/12315@from-carrier-00000005;2, the leg that runs the inbound dialplan


def run_s1(note_after: str | None) -> CallRecord:
    """Replay S1 and send the note after the first message named ``note_after`` (None: before any)."""
    records: list[CallRecord] = []
    pipeline = CallPipeline(CallTracker(), StreamClock(), records.append)

    def note() -> None:
        pipeline.note(CITIZEN, "1795281168.14", lambda linkedid: RouteDecided(
            linkedid, 1795281168.5, "12315", "市市场监管局", "market-regulation", "remote_seat", "parallel_ring"))

    if note_after is None:
        note()
    noted = note_after is None
    for message in Framer().feed((FIXTURES / "S1_retired_number.raw").read_bytes()):
        pipeline.on_message(message)
        if not noted and message.name == note_after and message.get("uniqueid") == CITIZEN:
            note()
            noted = True
    [record] = records
    return record


def test_decision_after_the_channel_is_known() -> None:
    record = run_s1(note_after="Newexten")
    assert (record.unit, record.treatment) == ("市市场监管局", "remote_seat")
    kinds = [e.kind for e in record.timeline]
    assert kinds[:2] == ["offered", "routed"]


def test_decision_before_ami_reports_the_channel() -> None:
    record = run_s1(note_after=None)
    assert (record.unit, record.treatment) == ("市市场监管局", "remote_seat")
    assert [e.kind for e in record.timeline][:2] == ["offered", "routed"]
    routed = record.timeline[1]
    assert isinstance(routed, RouteDecided) and routed.linkedid == "1795281168.14"


def test_several_notes_before_the_channel_all_arrive() -> None:
    """The route decision and then the IVR outcome, both before AMI reports the channel."""
    from cti.calls.events import IvrFinished

    records: list[CallRecord] = []
    pipeline = CallPipeline(CallTracker(), StreamClock(), records.append)
    pipeline.note(CITIZEN, "", lambda linkedid: RouteDecided(linkedid, 1.0, "12315", "u", "u-id", "merged",
                                                             "notice_then_queue"))
    pipeline.note(CITIZEN, "", lambda linkedid: IvrFinished(linkedid, 2.0, "notice_then_queue", "queue", {}, False))
    for message in Framer().feed((FIXTURES / "S1_retired_number.raw").read_bytes()):
        pipeline.on_message(message)
    [record] = records
    assert [e.kind for e in record.timeline][:3] == ["offered", "routed", "ivr"]
    assert record.unit_id == "u-id"


def test_notes_for_channels_never_seen_are_bounded() -> None:
    tracker = CallTracker()
    tracker.listing_requested()  # the link is up: a note waits only for its channel's Newchannel
    for i in range(5000):
        tracker.note(f"x.{i}", "", lambda linkedid: RouteDecided(linkedid, 0, "1", "", "", "unknown", "queue"))
    assert len(tracker._pending_notes) == 1024 and tracker.dropped_notes == 0


def test_notes_taken_while_the_link_is_down_are_bounded_too_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    import cti.calls.tracker

    monkeypatch.setattr(cti.calls.tracker, "UNSEEN_NOTES", 3000)
    tracker = CallTracker()  # blind until its first channel list
    for i in range(5000):
        tracker.note(f"x.{i}", "", lambda linkedid: RouteDecided(linkedid, 0, "1", "", "", "unknown", "queue"))
    assert (len(tracker._unseen_notes), tracker.dropped_notes) == (3000, 2000)
