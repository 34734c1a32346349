"""Who is who: agents, remote seats and supervisors' phones from agents/agents.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cti.calls.channels import dial_string_problem
from cti.yamlconfig import ConfigError, KeyPath, Problem, YamlDoc, build

PAUSE_REASON_BYTES = 79  # app_queue keeps a member's pause reason in 80 bytes (reason_paused[80])


@dataclass(frozen=True, slots=True)
class Agent:
    """A 12345 agent. ``device`` is the phone; ``interface`` the queue member
    interface (the device unless the PBX uses Local members)."""

    id: str
    name: str
    device: str
    queues: tuple[str, ...] = ()
    interface: str = ""
    node: str = ""  # with several Asterisk nodes (ami.nodes): the one whose queues the agent joins; "": the first

    @property
    def member(self) -> str:
        return self.interface or self.device


@dataclass(frozen=True, slots=True)
class Seat:
    """A remote seat at a department, ringing for its unit's lines."""

    id: str
    name: str
    device: str
    unit: str


@dataclass(frozen=True, slots=True)
class Supervisor:
    """A supervisor (班长) and their phone: what cti rings to listen to, whisper to or barge into an
    agent's call. A supervisor user listens through the entry whose id is their user id."""

    id: str
    name: str
    device: str


@dataclass(frozen=True, slots=True)
class AgentFile:
    agents: tuple[Agent, ...] = ()
    seats: tuple[Seat, ...] = ()
    supervisors: tuple[Supervisor, ...] = ()
    pause_reasons: tuple[str, ...] = ()  # the reasons an agent may pause with; empty: any short text


@dataclass(frozen=True, slots=True)
class Directory:
    agents: tuple[Agent, ...]
    seats: tuple[Seat, ...]
    source: str = ""
    pause_reasons: tuple[str, ...] = ()
    supervisors: tuple[Supervisor, ...] = ()
    _by_phone: dict[str, Agent | Seat | Supervisor] = field(default_factory=dict, compare=False)
    _by_id: dict[str, Agent | Seat] = field(default_factory=dict, compare=False)
    _supervisors: dict[str, Supervisor] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for supervisor in self.supervisors:
            self._supervisors[supervisor.id] = supervisor
            self._by_phone[supervisor.device] = supervisor
        people: tuple[Agent | Seat, ...] = (*self.agents, *self.seats)
        for person in people:
            self._by_id[person.id] = person
            self._by_phone[person.device] = person
            if isinstance(person, Agent) and person.interface:
                self._by_phone[person.interface] = person

    def by_phone(self, device_or_interface: str) -> Agent | Seat | Supervisor | None:
        """The agent, seat or supervisor whose phone rang: a queue member interface or a dialled device."""
        return self._by_phone.get(device_or_interface)

    def get(self, person_id: str) -> Agent | Seat | None:
        return self._by_id.get(person_id)

    def supervisor(self, user_id: str) -> Supervisor | None:
        """The supervisor entry of a supervisor user (the same id): their phone."""
        return self._supervisors.get(user_id)


def load_directory(path: str | Path, queues: set[str], units: set[str]) -> Directory:
    """Read agents.yaml; every problem (unknown queue or unit, a device used twice) with its location."""
    doc = YamlDoc.load(path)
    problems: list[Problem] = []
    built = build(AgentFile, doc.data, doc, (), problems)
    if built is not None:
        phones: dict[str, KeyPath] = {}
        ids: dict[str, KeyPath] = {}
        people_by_kind: tuple[tuple[str, tuple[Agent | Seat | Supervisor, ...]], ...] = (
            ("agents", built.agents), ("seats", built.seats), ("supervisors", built.supervisors))
        for kind, people in people_by_kind:
            for i, person in enumerate(people):
                where = (kind, i)
                if person.id in ids:
                    problems.append(doc.problem(where + ("id",), f"duplicate id {person.id!r} "
                                                                 f"(also at line {doc.line(ids[person.id])})"))
                ids.setdefault(person.id, where)
                if not person.name.isprintable():
                    problems.append(doc.problem(where + ("name",), f"{person.name!r}: one line of printable text"))
                for phone in {person.device, getattr(person, "interface", "")} - {""}:
                    if problem := dial_string_problem(phone):
                        problems.append(doc.problem(where + ("device",), problem))
                    elif phone in phones and phones[phone] != where:
                        problems.append(doc.problem(where + ("device",), f"{phone} is already "
                                                                         f"at line {doc.line(phones[phone])}"))
                    phones.setdefault(phone, where)
                for j, queue in enumerate(getattr(person, "queues", ())):
                    if queue not in queues:
                        problems.append(doc.problem(where + ("queues", j), f"unknown queue {queue!r}"))
                if isinstance(person, Seat) and person.unit not in units:
                    problems.append(doc.problem(where + ("unit",), f"unknown unit {person.unit!r} "
                                                                   "(not an id in the trunk map)"))
        for i, reason in enumerate(built.pause_reasons):
            if not reason.isprintable() or not 0 < len(reason.encode()) <= PAUSE_REASON_BYTES:
                problems.append(doc.problem(("pause_reasons", i), f"{reason!r}: one line of at most "
                                                                  f"{PAUSE_REASON_BYTES} bytes (app_queue's limit)"))
    if problems or built is None:
        raise ConfigError(problems)
    return Directory(built.agents, built.seats, doc.name, built.pause_reasons, built.supervisors)
