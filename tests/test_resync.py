"""What cti does when its AMI link opens again: wait for Asterisk to boot, list what is live,
read back what rebuilt calls dialled, and put the agents back after an Asterisk restart.

Ground truth: R4b/R4c (a real Asterisk 22.10.1 restarted with `core restart now`, then logged
into again: QueueStatus is an unknown command until FullyBooted; with persistentmembers = no the
queue is empty, with yes its members come back and no event says so) and R3 (cti killed and
started again with three calls live)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cti.calls.record import LiveCall
from cti.calls.state import ENDED_AWAY
from cti.store.database import Database
from tests.desk_harness import running_desk
from tests.fakeami import FIXTURES, FakeAmi, Scripted, Session, first_index, transcript, until

RESTART = b"Event: Shutdown\r\nPrivilege: system,all\r\nTimestamp: 1796282591.903497\r\nShutdown: Cleanly\r\n" \
          b"Restart: True\r\n\r\n"  # R4a, the old connection's last event


def captured(name: str) -> list[tuple[str, bytes]]:
    """(the ActionID it answers or "", the message) for everything Asterisk sent in a capture, login aside."""
    out = []
    with (FIXTURES / f"{name}.jsonl").open(encoding="utf-8") as lines:
        entries = [json.loads(line) for line in lines]
    for entry in entries:
        raw = entry["raw"]
        if entry["dir"] != "in" or raw.startswith("Asterisk Call Manager/") or "ActionID: login-" in raw:
            continue
        action_id = raw.split("ActionID: ", 1)[1].split("\r\n", 1)[0] if "ActionID: " in raw else ""
        out.append((action_id, raw.encode()))
    return out


def answers(name: str, action_id: str, action: str) -> list[Scripted]:
    """What a capture answered to one of its client's actions, going out when our client asks ``action``."""
    return [Scripted(raw, action, action_id.encode()) for answered, raw in captured(name) if answered == action_id]


def events(name: str, event: str) -> list[Scripted]:
    return [Scripted(raw) for _, raw in captured(name) if raw.startswith(f"Event: {event}\r\n".encode())]


def members(*rows: tuple[str, str, str, bool, str]) -> bytes:
    """A QueueStatus answer as R3 lays it out: QueueParams, then a QueueMember per (queue, name, interface,
    paused, reason)."""
    out = [b"Response: Success\r\nActionID: q\r\nEventList: start\r\nMessage: Queue status will follow\r\n\r\n",
           b"Event: QueueParams\r\nQueue: q12345\r\nMax: 0\r\nStrategy: rrmemory\r\nCalls: 0\r\nHoldtime: 0\r\n"
           b"TalkTime: 0\r\nCompleted: 0\r\nAbandoned: 0\r\nServiceLevel: 0\r\nServicelevelPerf: 0.0\r\n"
           b"ServicelevelPerf2: 0.0\r\nWeight: 0\r\nActionID: q\r\n\r\n"]
    for queue, name, interface, paused, reason in rows:
        out.append(f"Event: QueueMember\r\nQueue: {queue}\r\nName: {name}\r\nLocation: {interface}\r\n"
                   f"StateInterface: {interface}\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 0\r\n"
                   f"LastCall: 0\r\nLastPause: 0\r\nLoginTime: 1796282518\r\nInCall: 0\r\nStatus: 1\r\n"
                   f"Paused: {int(paused)}\r\nPausedReason: {reason}\r\nWrapuptime: 0\r\nActionID: q\r\n\r\n"
                   .encode())
    out.append(f"Event: QueueStatusComplete\r\nActionID: q\r\nEventList: Complete\r\nListItems: {len(out) - 1}"
               "\r\n\r\n".encode())
    return b"".join(out)


def working(then: bytes = RESTART) -> tuple[Session, asyncio.Event]:
    """A running Asterisk with 王芳 ready and 李强 paused (培训) in q12345; when the gate opens, ``then``
    (its shutdown) and the connection closes."""
    gate = asyncio.Event()
    listed = members(("q12345", "王芳", "PJSIP/agent1001", False, ""),
                     ("q12345", "李强", "PJSIP/agent1002", True, "培训"))
    return Session(script=[Scripted(listed, "QueueStatus", b"q"), Scripted(then)], pauses={1: gate}), gate


def restarted(persistent: bool) -> Session:
    """R4b (persistentmembers = no) or R4c (yes): the login answered before app_queue is loaded; its
    FullyBooted (Uptime 0 or 1) comes later. Our client asks for the channels first (the capture's
    client asked for the queue first): the captured answers go out in the order ours asks."""
    name = "R4c_persistentmembers_relogin" if persistent else "R4b_asterisk_restart_relogin"
    script = (answers(name, "r4-channels", "CoreShowChannels") + answers(name, "r4-queue-early", "QueueStatus")
              + events(name, "FullyBooted") + answers(name, "r4-queue-late", "QueueStatus"))
    return Session(script=script, answer_resync=False, booted=None, close_at_end=False)


def added(server: FakeAmi) -> list[tuple[str, str, str, str]]:
    return [(a["Interface"], a["MemberName"], a["Paused"], a.get("Reason", "")) for a in server.actions("QueueAdd")]


async def test_after_an_asterisk_restart_every_agent_is_back_in_the_queue_as_they_were(tmp_path: Path) -> None:
    first, down = working()
    async with running_desk(tmp_path, [first, restarted(persistent=False)], boot_timeout=0.3) as desk:
        service = desk.service
        await until(lambda: service.board.status("1002").paused, what="the board to know 李强 is paused")
        down.set()
        await until(lambda: desk.server.connections == 2 and len(desk.server.actions("QueueStatus")) >= 3,
                    what="the resync after the restart", timeout=10)
        await until(lambda: len(added(desk.server)) == 2, what="the agents put back")
        statuses = {a: service.board.status(a) for a in ("1001", "1002")}
    assert added(desk.server) == [("PJSIP/agent1001", "王芳", "false", ""),
                                  ("PJSIP/agent1002", "李强", "true", "培训")]
    # QueueStatus before app_queue had loaded got "Invalid/unknown command" and was asked again
    assert len(desk.server.actions("QueueStatus")) == 3
    assert service.resync.restored == 2
    assert all(status is not None for status in statuses.values())


async def test_with_persistent_members_asterisk_restores_them_and_cti_adds_nobody(tmp_path: Path) -> None:
    first, down = working()
    async with running_desk(tmp_path, [first, restarted(persistent=True)], boot_timeout=0.3) as desk:
        await until(lambda: desk.service.board.status("1002").paused, what="the board")
        down.set()
        await until(lambda: len(desk.server.actions("QueueStatus")) >= 3, what="the resync", timeout=10)
        await until(lambda: desk.service.board.status("1002").queues == ("q12345",), what="the list read")
        await asyncio.sleep(0.3)
    # R4c lists both back (Status 5, unavailable until qualified): the pause state differs, so cti pauses
    # 李强 again; nobody is added
    assert added(desk.server) == []
    assert [(a["Interface"], a["Paused"], a.get("Reason")) for a in desk.server.actions("QueuePause")] == [
        ("PJSIP/agent1002", "true", "培训")]


async def test_a_link_drop_without_a_restart_takes_the_pbx_at_its_word(tmp_path: Path) -> None:
    """Asterisk kept running (same boot time): what its list says is so, even if cti believed otherwise
    (someone removed 李强 on the PBX while the link was down)."""
    first, down = working(then=b"")
    second = Session(script=[Scripted(members(("q12345", "王芳", "PJSIP/agent1001", False, "")), "QueueStatus",
                                      b"q")], close_at_end=False)
    async with running_desk(tmp_path, [first, second], boot_timeout=0.3) as desk:
        await until(lambda: desk.service.board.status("1002").paused, what="the board")
        down.set()
        await until(lambda: desk.server.connections == 2 and desk.service.board.status("1002").queues == (),
                    what="the second list", timeout=10)
        await asyncio.sleep(0.3)
    assert added(desk.server) == [] and desk.server.actions("QueuePause") == []
    assert desk.service.resync.restored == 0


GETVAR = {  # what the shipped dialplan set on each citizen's leg of R3 in [from-carrier]
    "PJSIP/carrier-00000001": {"CTI_DIALLED": "12345", "CTI_NEXT": "queue",
                               "CTI_RECORDING": "/rec/2026/12/03/1796282518.1.wav"},
    "PJSIP/carrier-00000005": {"CTI_DIALLED": "12345", "CTI_NEXT": "", "CTI_RECORDING": ""},
    "PJSIP/carrier-00000007": {"CTI_DIALLED": "12315", "CTI_NEXT": "dial",
                               "CTI_RECORDING": "/rec/2026/12/03/1796282534.7.wav"},
}


def getvar(action: dict[str, str]) -> bytes:
    value = GETVAR.get(action["Channel"], {}).get(action["Variable"], "")
    return (f"Response: Success\r\nActionID: {action['ActionID']}\r\nVariable: {action['Variable']}\r\n"
            f"Value: {value}\r\n\r\n").encode()


async def test_a_restarted_cti_records_every_call_live_at_its_start_once(tmp_path: Path) -> None:
    """R3: cti killed with three calls live; the new one reads the channel list, asks the dialplan's
    variables, and each call ends with one record: unit and treatment from what was dialled, the
    answering agent named, a call cti never routed marked as the dialplan's fallback."""
    session = transcript("R3_cti_restart_channel_list")
    session.respond["Getvar"] = getvar
    read_back = asyncio.Event()  # the calls went on for 18 to 31 s after the list: time enough to ask
    session.pauses[first_index(session, b"Event: QueueStatusComplete") + 1] = read_back
    async with running_desk(tmp_path, [session]) as desk:
        await until(lambda: len(desk.server.actions("Getvar")) == 9 and not desk.service.tracker.unrouted,
                    what="the dialled numbers read back")
        read_back.set()
        await until(lambda: desk.service.writer.written == 3, what="three records", timeout=40)
        records = {r.caller_number: r for r in await desk.database.calls.calls()}
        timeline = {r.caller_number: await desk.database.calls.timeline(r.linkedid) for r in records.values()}
        # every call meant for a person: the unanswered two go on the missed-call list, the answered one a case
        await until(lambda: desk.service.cases.backlog == 0, what="the ended calls taken")
        for _ in range(100):  # and written
            missed = {m.caller_number for m in await desk.database.cases.missed()}
            if len(missed) == 2:
                break
            await asyncio.sleep(0.05)
        cases = await desk.database.cases.find(caller_number="13850000001")
    assert missed == {"13850000002", "13850000003"}
    assert [c.auto for c in cases] == [True]
    assert sorted(records) == ["13850000001", "13850000002", "13850000003"]
    talking, queued, ringing = records["13850000001"], records["13850000002"], records["13850000003"]
    assert (talking.dialled_number, talking.treatment, talking.answered_by_name) == ("12345", "hotline", "王芳")
    assert talking.recording == "/rec/2026/12/03/1796282518.1.wav"  # answered before cti started: assumed
    assert (queued.dialled_number, queued.recording) == ("12345", "")
    assert (ringing.dialled_number, ringing.unit_id, ringing.treatment) == ("12315", "market-regulation",
                                                                             "remote_seat")
    assert ringing.recording == ""  # never answered
    actions = {n: [e.action for e in t if e.kind == "routed"] for n, t in timeline.items()}
    assert actions == {"13850000001": ["queue"], "13850000002": ["fallback"], "13850000003": ["parallel_ring"]}
    assert all(r.estimated for r in records.values())


@pytest.mark.parametrize("variable", ["CTI_DIALLED", "CTI_NEXT", "CTI_RECORDING"])
def test_the_variables_cti_reads_back_are_set_by_the_shipped_dialplan(variable: str) -> None:
    from tests.test_asterisk_conf import sections
    assert f"{variable}=" in "\n".join(sections("extensions.conf")["from-carrier"])


async def test_a_call_that_came_and_went_while_the_link_was_down_gets_its_record_and_callback(
        tmp_path: Path) -> None:
    """FastAGI still works while AMI is down: the route request is all cti hears of a citizen who gives
    up before the link is back. The call is recorded from it (estimated) and goes on the missed list."""
    first, down = working(then=b"")
    back = asyncio.Event()
    async with running_desk(tmp_path, [first, Session(close_at_end=False, hold=back)], boot_timeout=0.3) as desk:
        await until(lambda: desk.service.board.status("1001").queues, what="the first session")
        down.set()
        await until(lambda: not desk.service.ami.connected.is_set(), what="the link to drop")
        commands = await desk.route("12369", "1796300000.9")  # the citizen dials and gives up meanwhile
        assert 'SET VARIABLE CTI_NEXT "dial"' in commands
        back.set()
        await until(lambda: desk.service.writer.written == 1, what="the record", timeout=10)
        [record] = await desk.database.calls.calls()
        for _ in range(100):
            missed = await desk.database.cases.missed()
            if missed:
                break
            await asyncio.sleep(0.05)
    assert (record.linkedid, record.caller_number, record.caller_name, record.dialled_number) == (
        "1796300000.9", "13800000043", "市民张三", "12369")
    assert record.estimated and record.answered_at is None and record.treatment == "remote_seat"
    assert [m.linkedid for m in missed] == ["1796300000.9"]


async def journal_rows(database: Database) -> set[str]:
    return {call.linkedid for call in await database.calls.in_progress()}


async def test_a_call_that_ended_while_cti_was_dead_is_recorded_from_the_journal(tmp_path: Path) -> None:
    """cti killed with four calls live; one citizen (13900000011, waiting for 12315) hangs up before the
    new cti starts: R3's list shows the other three. The journal the killed cti kept is read at start:
    the missing call gets its record and a place on the missed-call list, the listed three are written
    to the journal while they last, and every row goes with its call's record."""
    database = await Database.open(f"sqlite:///{tmp_path / 'journal.db'}")
    gone = LiveCall(linkedid="1796282520.3", direction="inbound", caller_number="13900000011", caller_name="市民戊",
                    dialled_number="12315", unit="市市场监管局", unit_id="market-regulation", treatment="remote_seat",
                    arrived_at=1796282520.5, queue="q12345", answered_at=None, answered_by="",
                    citizen_channel="PJSIP/carrier-00000003", agent_channel="")
    await database.calls.keep_in_progress([gone])
    session = transcript("R3_cti_restart_channel_list")
    session.respond["Getvar"] = getvar
    read_back = asyncio.Event()
    session.pauses[first_index(session, b"Event: QueueStatusComplete") + 1] = read_back
    try:
        async with running_desk(tmp_path, [session], database) as desk:
            await until(lambda: desk.service.writer.written == 1, what="the journalled call's record")
            await until(lambda: not desk.service.tracker.unrouted, what="the dialled numbers read back")
            for _ in range(100):
                journal = await journal_rows(database)
                if len(journal) == 3:
                    break
                await asyncio.sleep(0.05)
            read_back.set()
            await until(lambda: desk.service.writer.written == 4, what="four records", timeout=40)
            await until(lambda: desk.service.cases.backlog == 0, what="the ended calls taken")
            for _ in range(100):
                missed = {m.caller_number for m in await desk.database.cases.missed()}
                if len(missed) == 3:
                    break
                await asyncio.sleep(0.05)
        assert journal == {"1796282518.1", "1796282533.5", "1796282534.7"}  # R3's three, while they lasted
        records = {r.caller_number: r for r in await database.calls.calls()}
        left = await journal_rows(database)
    finally:
        await database.close()
    assert sorted(records) == ["13850000001", "13850000002", "13850000003", "13900000011"]
    away = records["13900000011"]
    assert (away.linkedid, away.dialled_number, away.treatment, away.arrived_at) == (
        "1796282520.3", "12315", "remote_seat", 1796282520.5)
    assert away.estimated and away.answered_at is None and away.hangup_cause_text == ENDED_AWAY
    assert missed == {"13850000002", "13850000003", "13900000011"}
    assert left == set()
