"""Compare the simulated PBX's AMI stream with a real Asterisk's, ignoring ids and times.

Both streams are framed by cti's own framer. Each event becomes a key: its name,
the entities it touches (channels by their device, e.g. ``agent1001``; bridges
numbered in order of appearance; device states and queue members apart), the
fields whose values carry meaning (states, causes, queues, dial strings…) and
its header layout. Two streams are the same when they hold the same multiset of
keys and every entity sees its own events in the same order: Asterisk's threads
interleave unrelated channels differently from run to run, but never one
channel's own story.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from cti.ami.framing import Framer
from cti.ami.message import AmiMessage

# What cti's manager.conf user reads (read=system,call,agent); CEL is not read.
READ = {"system,all", "call,all", "agent,all"}
# Channels the capture harness itself made (its SIP UA's registration legs).
ARTEFACTS = ("PJSIP/sim-",)
MEANING = ("channelstatedesc", "dialstatus", "cause", "cause-txt", "queue", "membername", "reason", "result",
           "context", "exten", "connectedlinenum", "calleridnum", "dialstring", "class", "bridgenumchannels",
           "bridgetype", "bridgetechnology", "conference", "response", "state", "status", "paused", "incall")
CHANNELS = ("channel", "destchannel", "transfererchannel", "transfereechannel", "transfertargetchannel",
            "origtransfererchannel", "secondtransfererchannel")

Key = tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def events(raw: bytes) -> Iterator[AmiMessage]:
    """The events cti's AMI user would see in a raw stream."""
    for message in Framer().feed(raw):
        if message.kind != "event" or message.get("privilege") not in READ or message.name in ("CEL", "FullyBooted"):
            continue
        named = [message.get(k) for k in (*CHANNELS, "device", "interface")]
        if any(value.startswith(ARTEFACTS) for value in named):
            continue
        yield message


def keys(raw: bytes) -> list[Key]:
    roles: dict[str, str] = {}
    bridges: dict[str, str] = {}

    def role(channel: str) -> str:
        return roles.setdefault(channel, channel.split("/", 1)[1].rsplit("-", 1)[0] if "/" in channel else channel)

    out = []
    for message in events(raw):
        entities = {role(message.get(k)) for k in CHANNELS if message.get(k)}
        if message.get("device"):
            entities.add("dev:" + message.get("device"))
        if message.get("interface"):
            entities.add("member:" + message.get("interface"))
        if message.get("bridgeuniqueid"):
            entities.add(bridges.setdefault(message.get("bridgeuniqueid"), f"bridge{len(bridges)}"))
        meaning = tuple(f"{k}={message.get(k)}" for k in MEANING if k in message)
        layout = tuple(k for k in message.fields if k != "timestamp")
        out.append((message.name, tuple(sorted(entities)), meaning, layout))
    return out


def differences(real: bytes, simulated: bytes) -> list[str]:
    """What differs between two streams, empty when they tell the same story."""
    a, b = keys(real), keys(simulated)
    found = [f"only in the real trace: {k[:3]}" for k in (Counter(a) - Counter(b)).elements()]
    found += [f"only in the simulator: {k[:3]}" for k in (Counter(b) - Counter(a)).elements()]
    for entity in sorted({e for key in a + b for e in key[1]}):
        ours = [k for k in a if entity in k[1]]
        theirs = [k for k in b if entity in k[1]]
        if ours != theirs:
            pairs = enumerate(zip(ours, theirs, strict=False))
            at = next((i for i, (x, y) in pairs if x != y), min(len(ours), len(theirs)))
            found.append(f"{entity}: order differs at its event {at}")
    return found
