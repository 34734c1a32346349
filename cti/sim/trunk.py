"""The trunk between two simulated nodes of one centre.

On node sz1, a leg dialled to ``PJSIP/q12345@node-sz2`` is a SIP call to node sz2: there it arrives as a
new channel of its own call (sz2's Linkedid) from endpoint ``node-sz1`` in [from-node], carrying the
headers the leg's b() added (X-CTI-Linkedid). The leg is answered when that channel is (its queue's
member answers), and the two hang up together, as a SIP dialog's BYE would end both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cti.sim.pbx import Channel, Pbx
from cti.sim.phones import Phone
from cti.sim.snapshot import UP

FROM_NODE = "from-node"  # the context of the node-<name> endpoints (asterisk-conf/pjsip.conf)


class NodeTrunk:
    def __init__(self, near: Pbx, far: Pbx) -> None:
        self.near, self.far = near, far

    def phone(self, exten: str) -> FarNode:
        """What answers a leg dialled to ``exten`` on the far node."""
        return FarNode(f"PJSIP/node-{self.far.systemname}", context=FROM_NODE, trunk=self, exten=exten)


@dataclass
class FarNode(Phone):
    trunk: NodeTrunk | None = None
    exten: str = ""
    arrived: list[Channel] = field(default_factory=list)  # the far node's channels this made

    async def wait_answer(self, channel: str, sleep: Callable[[float], Awaitable[None]]) -> bool:
        assert self.trunk is not None
        near, far = self.trunk.near, self.trunk.far
        leg = near.channels[channel]
        arrived = far.inbound(self.exten, (leg.caller_number, leg.caller_name),
                              device=f"PJSIP/node-{near.systemname}", context=FROM_NODE, language=leg.language)
        arrived.headers.update(leg.headers)  # read by [from-node] once its dialplan runs (a task: after this)
        self.arrived.append(arrived)
        near.spawn(_together(near, leg, far, arrived))
        while arrived.alive and arrived.state != UP:
            await sleep(0.05)
        if not arrived.alive:
            await asyncio.Event().wait()  # gone unanswered: the leg rings on until its Dial gives up
        return True


async def _together(near: Pbx, leg: Channel, far: Pbx, arrived: Channel) -> None:
    """Whichever side hangs up first, the other hears the BYE."""
    ends = [asyncio.ensure_future(leg.gone.wait()), asyncio.ensure_future(arrived.gone.wait())]
    try:
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for end in ends:
            end.cancel()
    if leg.alive:
        await near.hangup(leg, arrived.hangup_cause, request=True)
    if arrived.alive:
        await far.hangup(arrived, leg.hangup_cause, request=True)


def link(one: Pbx, other: Pbx) -> None:
    """A trunk both ways between two named nodes: each reaches the other as node-<its systemname>."""
    one.peers[f"node-{other.systemname}"] = NodeTrunk(one, other)
    other.peers[f"node-{one.systemname}"] = NodeTrunk(other, one)
