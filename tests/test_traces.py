"""Every captured Asterisk 22 transcript, replayed over TCP from a fake AMI
server into the client, the tracker and the store, checked field by field."""

from __future__ import annotations

import asyncio
from datetime import UTC
from pathlib import Path

import pytest

from cti.ami.client import AmiClient
from cti.ami.clock import StreamClock
from cti.calls.record import CallRecord
from cti.calls.tracker import CallTracker
from cti.pipeline import CallPipeline
from cti.replay import replay
from cti.settings import AmiSettings
from cti.store.calls import CallStore
from cti.store.writer import RecordWriter
from tests.fakeami import FIXTURES, FakeAmi, transcript, until

# What a person reading each transcript sees happen (fixtures/ami-traces/README.md):
# caller, dialled number, who answered, queue wait and talk time (app_queue's
# HoldTime/TalkTime), the times on the stream clock (UTC), transfers, the legs
# rung in parallel, the citizen's hangup cause and the recording.
EXPECTED: dict[tuple[str, ...], list[dict]] = {
    ("S1_retired_number",): [
        dict(linkedid="1795281168.14", direction="inbound", caller=("13800000001", "Citizen"), dialled="12315",
             queue="q12345", answered_by=("Local/1001@agents/n", "Seat 1001"), queue_wait=2.0, talk_time=6.0,
             times=("17:12:48.023", "17:12:52.000", "17:12:58.000"), transfers=[],
             legs=[("Local/2001@agents/n", "cancel"), ("Local/1001@agents/n", "answered")],
             cause=(16, "Normal Clearing"), recording="", estimated=False),
    ],
    ("S2_parallel_ring",): [
        dict(linkedid="1795281182.20", direction="inbound", caller=("13800000002", "Citizen"), dialled="12345",
             queue="q12345", answered_by=("Local/1001@agents/n", "Seat 1001"), queue_wait=2.0, talk_time=9.0,
             times=("17:13:02.165", "17:13:04.000", "17:13:13.000"), transfers=[],
             legs=[("Local/2001@agents/n", "cancel"), ("Local/1001@agents/n", "answered")],
             cause=(16, "Normal Clearing"), recording="", estimated=False),
    ],
    ("S3_blind_transfer_110",): [
        # the agent's bridged ;1 transfers: the citizen goes to 110
        dict(linkedid="1795281209.32", direction="inbound", caller=("13800000003", "Citizen"), dialled="12345",
             queue="q12345", answered_by=("Local/1001@agents/n", "Seat 1001"), queue_wait=2.0, talk_time=4.0,
             times=("17:13:29.455", "17:13:31.000", "17:13:40.000"), transfers=[("blind", "110", "answered")],
             legs=[("Local/2001@agents/n", "cancel"), ("Local/1001@agents/n", "answered")],
             cause=(16, "Normal Clearing"), recording="", estimated=False),
        # the citizen's channel given as transferer: Asterisk sends the agent to 110 and drops the citizen:
        # the record says the transfer failed
        dict(linkedid="1795281220.40", direction="inbound", caller=("13800000013", "Citizen"), dialled="12345",
             queue="q12345", answered_by=("Local/1001@agents/n", "Seat 1001"), queue_wait=2.0, talk_time=4.0,
             times=("17:13:40.000", "17:13:43.000", "17:13:47.000"), transfers=[("blind", "110", "failed")],
             legs=[("Local/2001@agents/n", "cancel"), ("Local/1001@agents/n", "answered")],
             cause=(16, "Normal Clearing"), recording="", estimated=False),
    ],
    ("S4_redirect",): [
        dict(linkedid="1795281236.48", direction="inbound", caller=("13800000004", "Citizen"), dialled="12345",
             queue="q12345", answered_by=("Local/1001@agents/n", "Seat 1001"), queue_wait=2.0, talk_time=8.0,
             times=("17:13:56.517", "17:13:59.000", "17:14:07.000"), transfers=[("redirect", "119", "answered")],
             legs=[("Local/2001@agents/n", "cancel"), ("Local/1001@agents/n", "answered")],
             cause=(16, "Normal Clearing"), recording="", estimated=False),
    ],
    ("S5_atxfer",): [
        dict(linkedid="1795281250.56", direction="inbound", caller=("13800000005", "Citizen"), dialled="12345",
             queue="q12345", answered_by=("Local/1001@agents/n", "Seat 1001"), queue_wait=2.0, talk_time=6.0,
             times=("17:14:10.249", "17:14:12.000", "17:14:22.000"), transfers=[("attended", "120", "answered")],
             legs=[("Local/2001@agents/n", "cancel"), ("Local/1001@agents/n", "answered")],
             cause=(16, "Normal Clearing"), recording="", estimated=False),
    ],
    ("S6_abandon",): [
        # A: hangs up one second into the notice, before any queue
        dict(linkedid="1795281266.66", direction="inbound", caller=("13800000006", "Citizen"), dialled="12315",
             queue="", answered_by=("", ""), queue_wait=None, talk_time=None,
             times=("17:14:26.629", None, "17:14:28.000"), transfers=[], legs=[],
             cause=(0, "Unknown"), recording="", estimated=False),
        # B: gives up after 5 s in the queue while both seats ring
        dict(linkedid="1795281270.68", direction="inbound", caller=("13800000016", "Citizen"), dialled="12345",
             queue="q12345", answered_by=("", ""), queue_wait=5.0, talk_time=None,
             times=("17:14:30.000", None, "17:14:35.000"), transfers=[],
             legs=[("Local/2001@agents/n", "cancel"), ("Local/1001@agents/n", "cancel")],
             cause=(0, "Unknown"), recording="", estimated=False),
    ],
    ("S7_mixmonitor",): [
        dict(linkedid="1795281278.74", direction="inbound", caller=("13800000007", "Citizen"), dialled="12345",
             queue="q12345", answered_by=("Local/1001@agents/n", "Seat 1001"), queue_wait=2.0, talk_time=7.0,
             times=("17:14:38.855", "17:14:40.000", "17:14:47.000"), transfers=[],
             legs=[("Local/2001@agents/n", "cancel"), ("Local/1001@agents/n", "answered")],
             cause=(16, "Normal Clearing"), recording="/var/spool/asterisk/monitor/x.wav", estimated=False),
    ],
    ("S8_originate_callback",): [
        # only the callback that reached the citizen is a call; the two failed originates never dialled
        dict(linkedid="1795281291.80", direction="outbound", caller=("12345", "Hotline 12345"),
             dialled="13800000008", queue="", answered_by=("Local/1001@agents", ""), queue_wait=None,
             talk_time=6.0, times=("17:14:53.000", "17:14:55.000", "17:15:01.000"), transfers=[], legs=[],
             cause=(16, "Normal Clearing"), recording="", estimated=False),
    ],
    ("S9_bad_login_observer",): [],
    ("S10_actions_errors",): [],
    ("S11_confbridge",): [],  # two originated parties in a room: no citizen call
    ("P1_pjsip_inbound_12315",): [
        dict(linkedid="1795281137.1", direction="inbound", caller=("13800000031", "Citizen"), dialled="12315",
             queue="q12345", answered_by=("Local/1001@agents/n", "Seat 1001"), queue_wait=2.0, talk_time=5.0,
             times=("17:12:17.261", "17:12:22.000", "17:12:27.000"), transfers=[],
             legs=[("Local/2001@agents/n", "cancel"), ("Local/1001@agents/n", "answered")],
             cause=(16, "Normal Clearing"), recording="/var/spool/asterisk/monitor/p1.wav", estimated=False),
    ],
    ("P5_sip_agent_blind_110",): [
        dict(linkedid="1795281884.19", direction="inbound", caller=("13800000043", "Citizen"), dialled="12369",
             queue="q12345sip", answered_by=("PJSIP/agent1001", "Seat 1001"), queue_wait=2.0, talk_time=3.0,
             times=("17:24:44.850", "17:24:47.000", "17:24:56.000"), transfers=[("blind", "110", "answered")],
             legs=[("PJSIP/seat2001", "cancel"), ("PJSIP/agent1001", "answered")],
             cause=(16, "Normal Clearing"), recording="", estimated=False),
    ],
    ("P6_sip_threeway_confbridge",): [
        # a dual Redirect into ConfBridge 800, then the department's seat joins: 三方通话
        dict(linkedid="1795281903.27", direction="inbound", caller=("13800000044", "Citizen"), dialled="12369",
             queue="q12345sip", answered_by=("PJSIP/agent1001", "Seat 1001"), queue_wait=2.0, talk_time=14.0,
             times=("17:25:03.841", "17:25:06.000", "17:25:20.000"),
             transfers=[("redirect", "800", "answered"), ("conference", "PJSIP/seat2001", "answered")],
             legs=[("PJSIP/seat2001", "cancel"), ("PJSIP/agent1001", "answered")],
             cause=(16, "Normal Clearing"), recording="", estimated=False),
    ],
    ("R1_ami_client_reconnect_midcall", "R1b_ami_client_reconnect_midcall"): [
        # the link drops mid-call; after the reconnect the call is still listed and ends normally
        dict(linkedid="1795281932.37", direction="inbound", caller=("13800000045", "Citizen"), dialled="12369",
             queue="q12345sip", answered_by=("PJSIP/agent1001", "Seat 1001"), queue_wait=2.0, talk_time=30.0,
             times=("17:25:32.120", "17:25:35.000", "17:26:05.000"), transfers=[],
             legs=[("PJSIP/seat2001", "cancel"), ("PJSIP/agent1001", "answered")],
             cause=(16, "Normal Clearing"), recording="", estimated=False),
    ],
    ("R2_asterisk_restart_midcall", "R2b_asterisk_restart_reconnect"): [
        # `core restart now`: SoftHangupRequest Cause 4 on the citizen's leg before its Hangup
        dict(linkedid="1795281997.1", direction="inbound", caller=("13800000046", "Citizen"), dialled="12369",
             queue="q12345sip", answered_by=("PJSIP/agent1001", "Seat 1001"), queue_wait=2.0, talk_time=3.0,
             times=("17:26:37.833", "17:26:40.000", "17:26:41.000"), transfers=[],
             legs=[("PJSIP/seat2001", "cancel"), ("PJSIP/agent1001", "answered")],
             cause=(16, "Normal Clearing (Asterisk shut down)"), recording="", estimated=False),
    ],
    ("R1_ami_client_reconnect_midcall", "R2b_asterisk_restart_reconnect"): [
        # the call ends while the link is down: the empty channel list after the reconnect finalises it
        dict(linkedid="1795281932.37", direction="inbound", caller=("13800000045", "Citizen"), dialled="12369",
             queue="q12345sip", answered_by=("PJSIP/agent1001", "Seat 1001"), queue_wait=2.0, talk_time=None,
             times=("17:25:32.120", "17:25:35.000", "17:26:45.443"), transfers=[],
             legs=[("PJSIP/seat2001", "cancel"), ("PJSIP/agent1001", "answered")],
             cause=(None, "ended while the AMI link was down"), recording="", estimated=True),
    ],
}


def summary(record: CallRecord) -> dict:
    d = record.to_json(UTC)
    clock = (lambda value: value and value[11:23])  # noqa: E731 - time of day, to the millisecond
    return dict(
        linkedid=d["linkedid"], direction=d["direction"], caller=(d["caller_number"], d["caller_name"]),
        dialled=d["dialled_number"], queue=d["queue"], answered_by=(d["answered_by"], d["answered_by_name"]),
        queue_wait=d["queue_wait"], talk_time=d["talk_time"],
        times=(clock(d["arrived_at"]), clock(d["answered_at"]), clock(d["ended_at"])),
        transfers=[(t["kind"], t["target"], t["outcome"]) for t in d["transfers"]],
        legs=[(leg["device"], leg["outcome"]) for leg in d["legs"]],
        cause=(d["hangup_cause"], d["hangup_cause_text"]), recording=d["recording"], estimated=d["estimated"],
    )


CASES = [pytest.param(names, id="+".join(names)) for names in EXPECTED]


async def resync(client: AmiClient) -> None:
    """What cti asks after every login (cti/resync.py): the channels, then the queues."""
    await client.collect({"Action": "CoreShowChannels"})
    await client.collect({"Action": "QueueStatus"})


@pytest.mark.parametrize("names", CASES)
async def test_transcript_over_tcp_into_the_store(names: tuple[str, ...], sqlite_store: CallStore) -> None:
    async with FakeAmi([transcript(name) for name in names]) as server:
        settings = AmiSettings(port=server.port, secret="cti-secret", reconnect_min=0.01, reconnect_max=0.02,
                               liveness_interval=30)
        writer = RecordWriter(sqlite_store, flush_interval=0.01)
        writer.start()
        tracker = CallTracker(settings.inbound_contexts, settings.outbound_contexts)
        clock = StreamClock(settings.pbx_timezone)
        pipeline = CallPipeline(tracker, clock, writer.put)
        losses = []
        client = AmiClient(settings, pipeline.on_message,
                           on_connected=lambda: resync(client),
                           on_lost=lambda: (losses.append(1), pipeline.on_link_lost(clock.now)))
        running = asyncio.create_task(client.run())
        await asyncio.wait_for(server.finished.wait(), 10)
        await until(lambda: len(losses) == len(names), what="the client to see every session end")
        await client.close()
        await running
        await writer.close()
    assert client.sessions == len(names)
    stored = await sqlite_store.calls(limit=100)
    assert sorted(map(summary, stored), key=lambda s: s["linkedid"]) == sorted(
        EXPECTED[names], key=lambda s: s["linkedid"])


@pytest.mark.parametrize("names", CASES)
def test_transcript_replayed_from_file(names: tuple[str, ...]) -> None:
    """The same records from the .raw files, without sockets (what ``cti replay`` does)."""
    result = replay([FIXTURES / f"{name}.raw" for name in names], AmiSettings())
    assert [summary(r) for r in result.records] == EXPECTED[names]
    assert result.open_calls == []


def test_a_transcript_cut_mid_call_leaves_the_call_open() -> None:
    result = replay([FIXTURES / "R1_ami_client_reconnect_midcall.raw"], AmiSettings())
    assert result.records == []
    assert result.open_calls == ["1795281932.37"]


def test_the_timeline_of_a_parallel_ring_call() -> None:
    """Offered, queued, both seats ring, the remote seat is cancelled when 1001 wins."""
    [record] = replay([FIXTURES / "S2_parallel_ring.raw"], AmiSettings()).records
    kinds = [(e.kind, getattr(e, "device", "") or getattr(e, "outcome", "")) for e in record.timeline]
    assert kinds == [
        ("offered", ""), ("queued", ""),
        ("ringing", "Local/2001@agents/n"), ("ringing", "Local/1001@agents/n"),
        ("leg_ended", "Local/1001@agents/n"), ("leg_ended", "Local/2001@agents/n"),
        ("answered", ""), ("ended", ""),
    ]
    ended = {e.device: e.outcome for e in record.timeline if e.kind == "leg_ended"}
    assert ended == {"Local/1001@agents/n": "answered", "Local/2001@agents/n": "cancel"}


def test_a_call_already_up_when_cti_starts_is_rebuilt_from_the_channel_list() -> None:
    """cti starts mid-call: the CoreShowChannels list carries Linkedid and BridgeId."""
    [record] = replay([FIXTURES / "R1b_ami_client_reconnect_midcall.raw"], AmiSettings()).records
    assert summary(record) | {"times": None} == dict(
        linkedid="1795281932.37", direction="inbound", caller=("13800000045", "Citizen"), dialled="12369",
        queue="", answered_by=("PJSIP/agent1001", ""), queue_wait=None, talk_time=30.0, times=None,
        transfers=[], legs=[], cause=(16, "Normal Clearing"), recording="", estimated=True)
    assert [e.kind for e in record.timeline] == ["offered", "answered", "ended"]
    # the list was taken at 17:25:40.060 (the login's EventTV); the citizen's leg was 7 s old then
    assert (summary(record)["times"]) == ("17:25:33.060", "17:25:40.060", "17:26:05.000")


@pytest.mark.parametrize(("trace", "kind", "shown"), [
    ("X2_atxfer_110_callerid", "attended", "1001"),  # asterisk-conf before [cti-as-citizen]: 110 saw the agent
    ("X2b_atxfer_110_citizen", "attended", "13800000001"),  # the shipped one: the citizen
    ("X3_featurecode_blindtransfer_110", "blind", "13800000001"),  # **110 with BlindTransfer(110,emergency)
    ("X3b_featurecode_blindtransfer_110", "blind", "13800000001"),
])
def test_a_transfer_to_110_records_the_number_110_was_shown(trace: str, kind: str, shown: str) -> None:
    """Real Asterisk 22.10.1 running asterisk-conf/, read as the cti user: the leg dialled to 110 carries
    the caller it presents in its connected line (PJSIP's From and P-Asserted-Identity)."""
    [record] = replay([FIXTURES / f"{trace}.raw"], AmiSettings()).records
    [transfer] = record.transfers
    assert (transfer.kind, transfer.target, transfer.outcome, transfer.reached, transfer.presented) == (
        kind, "110", "answered", "PJSIP/carrier", shown)


def test_an_abandon_told_after_the_hangup_keeps_the_queue_wait(tmp_path: Path) -> None:
    """S6's second caller gives up after 5 s in the queue (QueueCallerAbandon HoldTime 5). Asterisk tells
    the abandon before the channel's Hangup; told after it (as the simulator does), it finds the call
    written already: the record keeps the wait either way, from when the caller joined the queue."""
    blocks = (FIXTURES / "S6_abandon.raw").read_bytes().split(b"\r\n\r\n")
    abandon = next(i for i, b in enumerate(blocks) if b.startswith(b"Event: QueueCallerAbandon"))
    hangup = next(i for i, b in enumerate(blocks)
                  if b.startswith(b"Event: Hangup\r\n") and b"\r\nUniqueid: 1795281270.69\r\n" in b)
    assert abandon < hangup
    late = tmp_path / "S6_abandon_told_late.raw"
    late.write_bytes(b"\r\n\r\n".join(blocks[:abandon] + blocks[abandon + 1:hangup + 1] + [blocks[abandon]]
                                      + blocks[hangup + 1:]))
    for trace in (FIXTURES / "S6_abandon.raw", late):
        records = replay([trace], AmiSettings()).records
        assert [(r.linkedid, r.answered, r.queue_wait) for r in records] == [
            ("1795281266.66", False, None), ("1795281270.68", False, 5.0)], trace.name
