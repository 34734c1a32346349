"""Several Asterisk nodes (``ami.nodes``): one AMI link each, with its own call tracker and resync.

A province's seats sit behind a SIP proxy dispatching to N Asterisk nodes. Each node
is read on its own link and followed by its own tracker: a node's link dropping, its
channel list after a reconnect or its restart concern its calls only. Call ids stay
apart because every node names itself (asterisk.conf ``systemname``), which Asterisk
puts before each Uniqueid and Linkedid ("<systemname>-<seconds>.<n>"); the login
checks the name (cti.ami.client), and the name is how an id finds its node: the
desk's actions go to the node that holds the call, an agent's queue actions to the
node whose queues the agent joins (agents.yaml ``node``, else the first).

With one node and no name (the plain ``ami.host``) there is one node, called "".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cti.agents.directory import Agent
from cti.ami.client import AmiClient
from cti.calls.record import LiveCall
from cti.calls.tracker import CallTracker
from cti.pipeline import CallPipeline


def node_of(callid: str, names: Sequence[str]) -> str | None:
    """The node whose systemname begins ``callid`` (a Uniqueid or Linkedid), or None."""
    for name in names:
        if name and callid.startswith(name + "-"):
            return name  # settings refuse a name that is another's start plus "-": one can match
    return None


@dataclass(slots=True)
class Node:
    name: str  # its systemname ("" for a single unnamed node)
    ami: AmiClient
    tracker: CallTracker
    pipeline: CallPipeline


class Nodes:
    """The nodes, in the order of ami.nodes; the first is the home of ids and agents naming none."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        assert nodes, "at least one node"
        self._nodes = list(nodes)
        self._by_name = {node.name: node for node in nodes}
        self.first = self._nodes[0]

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def names(self) -> list[str]:
        return [node.name for node in self._nodes]

    def of(self, callid: str) -> Node:
        """The node a Uniqueid or Linkedid belongs to (the first when no name matches)."""
        return self._by_name.get(node_of(callid, self.names) or "", self.first)

    def named(self, name: str) -> Node | None:
        return self._by_name.get(name)

    def live(self, linkedid: str) -> LiveCall | None:
        return self.of(linkedid).tracker.live(linkedid)

    def live_calls(self) -> list[LiveCall]:
        return [call for node in self._nodes for call in node.tracker.live_calls()]

    @property
    def calls(self) -> int:
        """Calls followed now, on every node."""
        return sum(len(node.tracker.calls) for node in self._nodes)

    @property
    def messages(self) -> int:
        return sum(node.pipeline.messages for node in self._nodes)

    def up(self) -> bool:
        """Every node's link is up (the desk's and the wallboard's "PBX link")."""
        return all(node.ami.connected.is_set() for node in self._nodes)

    def links(self) -> dict[str, bool]:
        """Each node's link, up or not, by name."""
        return {node.name: node.ami.connected.is_set() for node in self._nodes}

    # -- where an action goes (cti.desk.actions.Links) -------------------------------

    def for_call(self, linkedid: str) -> AmiClient:
        return self.of(linkedid).ami

    def for_agent(self, agent: Agent) -> AmiClient:
        node = self._by_name.get(agent.node) if agent.node else None
        return (node or self.first).ami

    def for_originate(self) -> AmiClient:
        """Where a call cti makes itself (a callback to a citizen) starts: the first node whose link is
        up (any node reaches the carrier), else the first."""
        return next((node.ami for node in self._nodes if node.ami.connected.is_set()), self.first.ami)
