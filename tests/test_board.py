"""The agent board from app_queue's events and QueueStatus lists (traces R1, R1b, R2b)."""

from __future__ import annotations

from cti.agents.board import AgentBoard
from cti.agents.directory import Agent, Directory
from cti.ami.framing import Framer
from cti.ami.message import AmiMessage
from tests.fakeami import FIXTURES

# the SIP traces' queue q12345sip has PJSIP members agent1001 and seat2001
LAB = Directory((Agent("1001", "Seat 1001", "PJSIP/agent1001", ("q12345sip",)),
                 Agent("2001", "Remote seat 2001", "PJSIP/seat2001", ("q12345sip",))), ())


def feed(board: AgentBoard, *names: str) -> list[tuple[str, str, str]]:
    changes = []
    for name in names:
        for message in Framer().feed((FIXTURES / f"{name}.raw").read_bytes()):
            changes += [(message.name, s.agent_id, s.state) for s in board.feed(message, 1.0)]
    return changes


def test_phone_states_follow_the_call() -> None:
    board = AgentBoard(LAB)
    assert feed(board, "R1_ami_client_reconnect_midcall") == [
        ("QueueMemberStatus", "1001", "ringing"), ("QueueMemberStatus", "2001", "ringing"),
        ("QueueMemberStatus", "1001", "in_use"), ("QueueMemberStatus", "2001", "ready")]


def test_a_queue_status_list_replaces_what_the_board_believed() -> None:
    board = AgentBoard(LAB)
    paused = AmiMessage.event("QueueMemberPause", Queue="q12345sip", Interface="PJSIP/seat2001", Paused="1",
                              PausedReason="用餐", Status="1")
    assert [s.state for s in board.feed(paused, 0.5)] == ["paused"]
    # the link drops; meanwhile seat2001 is unpaused and 1001's call ends; R2b's list says so
    changes = feed(board, "R2b_asterisk_restart_reconnect")
    assert changes == [("QueueStatusComplete", "1001", "ready"), ("QueueStatusComplete", "2001", "ready")]
    assert [(s.agent_id, s.state, s.queues) for s in board.all()] == [
        ("1001", "ready", ("q12345sip",)), ("2001", "ready", ("q12345sip",))]


def test_members_not_listed_are_logged_out() -> None:
    board = AgentBoard(Directory((*LAB.agents, Agent("1002", "Seat 1002", "PJSIP/agent1002", ("q12345sip",))), ()))
    board.feed(AmiMessage.event("QueueMemberAdded", Queue="q12345sip", Interface="PJSIP/agent1002", Paused="0",
                                Status="1"), 0.0)
    assert board.status("1002").state == "ready"
    changes = feed(board, "R1b_ami_client_reconnect_midcall")  # its list has no agent1002
    assert board.status("1002").state == "logged_out"
    # the list shows 1001 talking (Status 2); the call ends later in R1b
    assert changes == [("QueueStatusComplete", "1001", "in_use"), ("QueueStatusComplete", "2001", "ready"),
                       ("QueueStatusComplete", "1002", "logged_out"), ("QueueMemberStatus", "1001", "ready")]
