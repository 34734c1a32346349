"""Agent state from AMI, pure: which queues each agent is logged into, paused or
ready (with the reason), and what their phone is doing.

Fed in stream order with app_queue's events (QueueMemberAdded, ...Removed,
...Pause, ...Status) and, after every reconnect, with a QueueStatus list
(QueueMember items, then QueueStatusComplete), which replaces what the board
believed: events lost while the link was down cannot leave an agent shown
logged in or paused when they are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cti.agents.directory import Agent, Directory
from cti.ami.message import AmiMessage

# app_queue's member Status: the ast_device_state of the member's phone
DEVICE_STATES = {"0": "unknown", "1": "idle", "2": "in_use", "3": "busy", "4": "invalid", "5": "unavailable",
                 "6": "ringing", "7": "ringing", "8": "on_hold"}


@dataclass(frozen=True, slots=True)
class AgentStatus:
    agent_id: str
    name: str
    device: str
    queues: tuple[str, ...]  # queues the agent is logged into
    paused: bool
    reason: str
    phone: str  # idle | in_use | busy | ringing | on_hold | unavailable | unknown …
    since: float  # when the agent last changed state

    @property
    def logged_in(self) -> bool:
        return bool(self.queues)

    @property
    def state(self) -> str:
        """What a supervisor reads on the wallboard."""
        if not self.queues:
            return "logged_out"
        if self.paused:
            return "paused"
        return "ready" if self.phone in ("idle", "unknown") else self.phone

    def to_json(self) -> dict[str, object]:
        return {"agent_id": self.agent_id, "name": self.name, "device": self.device, "queues": list(self.queues),
                "state": self.state, "paused": self.paused, "reason": self.reason, "phone": self.phone,
                "since": self.since}


@dataclass(slots=True)
class _Member:
    queues: set[str] = field(default_factory=set)
    paused: bool = False
    reason: str = ""
    phone: str = "unknown"
    since: float = 0.0


class AgentBoard:
    def __init__(self, directory: Directory, home: str = "") -> None:
        self.directory = directory
        self.home = home  # the node of agents who name none (the first of ami.nodes)
        self._members: dict[str, _Member] = {a.id: _Member() for a in directory.agents}
        self._listings: dict[str, dict[str, _Member]] = {}  # a QueueStatus answer being read, by node
        self._handlers = {
            "QueueMemberAdded": self._added, "QueueMemberRemoved": self._removed,
            "QueueMemberPause": self._member_event, "QueueMemberStatus": self._member_event,
            "QueueMember": self._listed, "QueueStatusComplete": self._listing_complete,
        }

    def use_directory(self, directory: Directory) -> None:
        """After a reload: keep what is known of agents still defined."""
        self.directory = directory
        self._members = {a.id: self._members.get(a.id, _Member()) for a in directory.agents}

    def feed(self, message: AmiMessage, at: float, node: str = "") -> list[AgentStatus]:
        """Apply one AMI message from ``node``; return the agents whose state changed."""
        handler = self._handlers.get(message.name) if message.kind == "event" else None
        return handler(message, at, node) if handler is not None else []

    def node_of(self, agent: Agent) -> str:
        return agent.node or self.home

    def status(self, agent_id: str) -> AgentStatus | None:
        agent = self.directory.get(agent_id)
        return self._status(agent) if isinstance(agent, Agent) else None

    def all(self) -> list[AgentStatus]:
        return [self._status(a) for a in self.directory.agents]

    def _agent(self, message: AmiMessage) -> Agent | None:
        interface = message.fields.get("interface") or message.fields.get("location", "")
        person = self.directory.by_phone(interface)
        return person if isinstance(person, Agent) else None

    def _status(self, agent: Agent) -> AgentStatus:
        m = self._members[agent.id]
        return AgentStatus(agent.id, agent.name, agent.device, tuple(sorted(m.queues)), m.paused, m.reason,
                           m.phone, m.since)

    def _changed(self, agent: Agent, member: _Member, at: float,
                 before: tuple[frozenset[str], bool, str, str]) -> list[AgentStatus]:
        if before == (frozenset(member.queues), member.paused, member.reason, member.phone):
            return []
        member.since = at
        return [self._status(agent)]

    def _apply(self, message: AmiMessage, at: float, join: bool | None) -> list[AgentStatus]:
        agent = self._agent(message)
        if agent is None:
            return []
        member = self._members[agent.id]
        before = (frozenset(member.queues), member.paused, member.reason, member.phone)
        f = message.fields
        queue = f.get("queue", "")
        if join is True and queue:
            member.queues.add(queue)
        elif join is False:
            member.queues.discard(queue)
        if join is not False:
            member.paused = f.get("paused", "0") == "1"
            member.reason = f.get("pausedreason", "") if member.paused else ""
            member.phone = DEVICE_STATES.get(f.get("status", ""), member.phone)
        return self._changed(agent, member, at, before)

    def _added(self, message: AmiMessage, at: float, node: str) -> list[AgentStatus]:
        return self._apply(message, at, join=True)

    def _removed(self, message: AmiMessage, at: float, node: str) -> list[AgentStatus]:
        return self._apply(message, at, join=False)

    def _member_event(self, message: AmiMessage, at: float, node: str) -> list[AgentStatus]:
        """Pause or phone state of a member: it is in that queue, whatever we missed."""
        return self._apply(message, at, join=True)

    def _listed(self, message: AmiMessage, at: float, node: str) -> list[AgentStatus]:
        agent = self._agent(message)
        if agent is None:
            return []
        member = self._listings.setdefault(node, {}).setdefault(agent.id, _Member())
        f = message.fields
        member.queues.add(f.get("queue", ""))
        member.paused = f.get("paused", "0") == "1"
        member.reason = f.get("pausedreason", "") if member.paused else ""
        member.phone = DEVICE_STATES.get(f.get("status", ""), "unknown")
        return []

    def _listing_complete(self, message: AmiMessage, at: float, node: str) -> list[AgentStatus]:
        """A node's list replaces what is known of its agents (an unnamed single node's: of every agent)."""
        listing = self._listings.pop(node, {})
        changed = []
        for agent in self.directory.agents:
            if node and self.node_of(agent) != node:
                continue
            member = self._members[agent.id]
            before = (frozenset(member.queues), member.paused, member.reason, member.phone)
            fresh = listing.get(agent.id, _Member())
            member.queues, member.paused, member.reason = set(fresh.queues), fresh.paused, fresh.reason
            member.phone = fresh.phone if agent.id in listing else member.phone
            changed += self._changed(agent, member, at, before)
        return changed
