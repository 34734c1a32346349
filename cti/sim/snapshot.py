"""How Asterisk 22 writes channels and bridges into AMI events, pure.

Every layout here is the one the captured transcripts show (tests compare
them): a channel snapshot is the same fourteen headers, optionally prefixed
(``Dest``, ``Transferer``…); a bridge snapshot seven. Events start with
``Event``, ``Privilege`` and, with ``timestampevents = yes``, ``Timestamp``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

Fields = list[tuple[str, str]]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
DOWN, RING, RINGING, UP = 0, 4, 5, 6
UNKNOWN = "<unknown>"
CAUSE_TEXT = {0: "Unknown", 16: "Normal Clearing", 17: "User busy", 19: "No user responding",
              21: "Call Rejected", 26: "Answered elsewhere", 34: "Circuit/channel congestion"}


@dataclass
class ChannelState:
    """What a snapshot shows of a channel."""

    name: str
    uniqueid: str
    linkedid: str
    state: int = DOWN
    caller_number: str = UNKNOWN
    caller_name: str = UNKNOWN
    connected_number: str = UNKNOWN
    connected_name: str = UNKNOWN
    language: str = "en"
    accountcode: str = ""
    context: str = ""
    exten: str = ""
    priority: int = 1
    variables: dict[str, str] = field(default_factory=dict)

    def fields(self, prefix: str = "") -> Fields:
        return [
            (prefix + "Channel", self.name), (prefix + "ChannelState", str(self.state)),
            (prefix + "ChannelStateDesc", STATE_DESC[self.state]),
            (prefix + "CallerIDNum", self.caller_number), (prefix + "CallerIDName", self.caller_name),
            (prefix + "ConnectedLineNum", self.connected_number),
            (prefix + "ConnectedLineName", self.connected_name),
            (prefix + "Language", self.language), (prefix + "AccountCode", self.accountcode),
            (prefix + "Context", self.context), (prefix + "Exten", self.exten),
            (prefix + "Priority", str(self.priority)), (prefix + "Uniqueid", self.uniqueid),
            (prefix + "Linkedid", self.linkedid),
        ]


@dataclass
class BridgeState:
    uniqueid: str
    type: str = "basic"  # basic (two parties) | base (ConfBridge)
    technology: str = "simple_bridge"  # simple_bridge | softmix
    members: list[str] = field(default_factory=list)  # channel names
    hidden: int = 0  # members not shown as channels (ConfBridge's announcer)
    creator: str = UNKNOWN  # "ConfBridge" for a conference room
    label: str = UNKNOWN  # the room's name
    native_after: float | None = None  # monotonic time from which media flows natively (native_rtp)

    def fields(self, prefix: str = "") -> Fields:
        technology = self.technology
        if self.native_after is not None and time.monotonic() >= self.native_after:
            technology = "native_rtp"
        return [
            (prefix + "BridgeUniqueid", self.uniqueid), (prefix + "BridgeType", self.type),
            (prefix + "BridgeTechnology", technology), (prefix + "BridgeCreator", self.creator),
            (prefix + "BridgeName", self.label), (prefix + "BridgeNumChannels", str(len(self.members) + self.hidden)),
            (prefix + "BridgeVideoSourceMode", "none"),
        ]


def event_text(name: str, privilege: str, fields: Fields, timestamp: float | None = None,
               systemname: str = "") -> bytes:
    """The bytes of one event as Asterisk's manager sends it (manager.c: Timestamp when timestampevents is
    on, then SystemName when asterisk.conf names the system)."""
    lines = [f"Event: {name}", f"Privilege: {privilege},all"]
    if timestamp is not None:
        lines.append(f"Timestamp: {timestamp:.6f}")
    if systemname:
        lines.append(f"SystemName: {systemname}")
    lines += [f"{key}: {value}" for key, value in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def response_text(status: str, action_id: str, message: str | None = None,
                  fields: Sequence[tuple[str, str]] = ()) -> bytes:
    """A response, headers in Asterisk's order: Response, ActionID, then the rest."""
    lines = [f"Response: {status}"]
    if action_id:
        lines.append(f"ActionID: {action_id}")
    if message is not None:
        lines.append(f"Message: {message}")
    lines += [f"{key}: {value}" for key, value in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def list_item_text(name: str, fields: Fields) -> bytes:
    """An item of a list action's answer (no Privilege header, ActionID where Asterisk puts it)."""
    lines = [f"Event: {name}"] + [f"{key}: {value}" for key, value in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
