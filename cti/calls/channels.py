"""What a channel name says about the phone behind it."""

from __future__ import annotations

import re

# PJSIP/agent1001-00000011 -> PJSIP/agent1001 ; Local/1001@agents-00000007;1 -> Local/1001@agents
_SUFFIX = re.compile(r"-[0-9a-f]{8}(;[12])?$")


def device_of(channel: str) -> str:
    """The device (endpoint) a channel belongs to, without Asterisk's per-call suffix."""
    return _SUFFIX.sub("", channel)


def is_local_outward_half(channel: str) -> bool:
    """The ``;1`` half of a Local channel pair: the side that was dialled, not the
    side (``;2``) that runs the dialplan at exten@context. It is never the leg
    that arrives in a context, so it cannot be the citizen's inbound leg."""
    return channel.startswith("Local/") and channel.endswith(";1")


# The trunk between two nodes of a centre: on each node the endpoint for node X is named node-X
# (asterisk-conf/pjsip.conf), dialled as PJSIP/<queue>@node-X.
NODE_ENDPOINT = "node-"
# A Linkedid as Asterisk makes it: "[<systemname>-]<seconds>.<n>" (what a peer node may claim as a call's origin).
LINKEDID = re.compile(r"(?:[A-Za-z0-9_.-]{1,32}-)?[0-9]{1,12}\.[0-9]{1,9}")


def is_node_trunk(device: str) -> bool:
    """Whether a device (PJSIP/node-sz2) or dial string (PJSIP/q12345@node-sz2) is the trunk to another node."""
    return device.startswith(f"PJSIP/{NODE_ENDPOINT}") or f"@{NODE_ENDPOINT}" in device


UNKNOWN_CALLER = ("", "<unknown>")
# A number cti may dial (a callback) or name in an AMI header: digits, a leading + at most.
DIALABLE = re.compile(r"\+?[0-9]{1,32}")
NAME_LIMIT = 128  # the calls table's caller_name column
NUMBER_LIMIT = 64  # and its caller_number


def printable(value: str, limit: int = NAME_LIMIT) -> str:
    """Text the PBX (or the carrier behind it) gave, fit to be shown on a page or put into an AMI
    action: control characters (a lone CR, a NUL, a tab) dropped, at most ``limit`` characters.
    Every caller number and name the tracker keeps has been through here."""
    return "".join(ch for ch in value if ch.isprintable())[:limit]


# A dial string of the integrators' files (a seat, an emergency line's trunk, an agent's phone): TECH/resource
# and nothing Dial() would read as more: a comma starts Dial's timeout and options (a 1 s timeout, no o or b()
# that show 110 the citizen), & another device, ( ) ^ | ; $ { } an option's argument or the dialplan's syntax.
DIAL_STRING = re.compile(r"[A-Za-z][A-Za-z0-9_]*/[A-Za-z0-9_.@+:/*#=-]+")


def dial_string_problem(text: str) -> str | None:
    """What is wrong with ``text`` as one device's dial string, or None."""
    if DIAL_STRING.fullmatch(text):
        return None
    bad = next((ch for ch in text if ch in ",&()^|;${}[]" or not ch.isprintable() or ch.isspace()), None)
    if bad is not None and "/" in text:
        return f"{text!r} holds {bad!r}: one device, TECH/resource, with no Dial() options or separators"
    return f"{text!r} is not a dial string (TECH/resource, e.g. PJSIP/12369@dept)"
