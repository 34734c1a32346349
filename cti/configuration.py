"""Everything integrators edit, loaded and checked together: the trunk map,
agents/ (queues), ivr_flows/, the prompts and cases.yaml. ``cti check`` prints the
problems; ``cti serve`` refuses to start with any; a reload keeps the last good
configuration. Each problem names its file, line and key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cti.agents.directory import Directory, load_directory
from cti.cases.catalogue import Catalogue, load_catalogue
from cti.cases.workdays import WorkCalendar
from cti.ivr.flows import Flow, load_flows
from cti.routing.model import (
    GUIDANCE,
    NOT_ROUTED,
    NOTICE_THEN_QUEUE,
    PARALLEL_RING,
    QUEUE,
    RETIRED_NOTICE,
    TrunkMap,
)
from cti.routing.trunkmap import parse_trunk_map
from cti.settings import Settings
from cti.yamlconfig import ConfigError, KeyPath, Problem, YamlDoc, build

ACTIONS = (NOTICE_THEN_QUEUE, RETIRED_NOTICE, PARALLEL_RING, GUIDANCE, NOT_ROUTED, QUEUE)
REQUIRED_FLOWS = (*ACTIONS, "survey")
PROMPT_FORMATS = (".wav", ".sln16", ".sln", ".gsm", ".ulaw", ".alaw", ".g722")


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class QueueFile:
    queues: tuple[QueueSpec, ...]


@dataclass(frozen=True, slots=True)
class Configuration:
    trunk_map: TrunkMap
    flows: dict[str, Flow]
    queues: tuple[QueueSpec, ...]
    prompts: frozenset[str]
    directory: Directory
    catalogue: Catalogue

    def summary(self) -> str:
        return (f"{len(self.trunk_map.units)} units and {len(self.trunk_map.numbers)} numbers, "
                f"{len(self.queues)} queue(s), {len(self.directory.agents)} agents and "
                f"{len(self.directory.seats)} remote seats, {len(self.directory.supervisors)} supervisor phone(s), "
                f"{len(self.flows)} IVR flows, {len(self.prompts)} prompts, "
                f"{len(self.catalogue.units)} units cases go to")


def load_configuration(settings: Settings) -> Configuration:
    """Load and cross-check; raise ConfigError with every problem found."""
    problems: list[Problem] = []
    paths = settings.paths
    trunk_doc = _doc(settings.path(paths.trunk_map), problems)
    trunk_map = None
    if trunk_doc is not None:
        trunk_map, found = parse_trunk_map(trunk_doc)
        problems.extend(found)
    queues = _queues(settings.path(paths.agents) / "queues.yaml", problems)
    try:
        flows = load_flows(settings.path(paths.ivr_flows))
    except ConfigError as exc:
        problems.extend(exc.problems)
        flows = {}
    prompt_dir = settings.path(paths.prompts) / paths.prompt_language
    prompts = _prompts(prompt_dir)
    if not prompts:
        problems.append(Problem(str(prompt_dir), None, "", "no prompts here (name.wav, name.sln16…)"))
    if flows:
        _check_flows(flows, prompts, prompt_dir, problems)
    if trunk_map is not None and trunk_doc is not None and queues is not None:
        _check_references(trunk_doc, trunk_map, {q.name for q in queues}, prompts, prompt_dir, problems)
    directory = None
    if trunk_map is not None and queues is not None:
        try:
            directory = load_directory(settings.path(paths.agents) / "agents.yaml", {q.name for q in queues},
                                       set(trunk_map.units_by_id))
        except ConfigError as exc:
            problems.extend(exc.problems)
    catalogue = load_catalogue(settings.path(paths.cases), trunk_map, problems) if trunk_map is not None else None
    if problems or trunk_map is None or queues is None or directory is None or catalogue is None:
        raise ConfigError(problems)
    return Configuration(trunk_map, flows, queues, prompts, directory, catalogue)


def calendar_warning(configuration: Configuration, settings: Settings, today: date) -> str | None:
    """A warning when a case dispatched ``today`` could fall due in a year whose holidays are not known.

    chinese_calendar knows the years it was released for (the State Council
    publishes next year's schedule in November); past them deadlines count
    Monday-Friday until cases.yaml lists that year's holidays and make-up days."""
    catalogue = configuration.catalogue
    policy = catalogue.policy
    longest = max([*policy.deadlines.values(), *(d for own in policy.unit_deadlines.values() for d in own.values())])
    calendar = WorkCalendar(settings.zone, holidays=catalogue.calendar.holidays,
                            workdays=catalogue.calendar.workdays)
    year = calendar.first_unknown(today, calendar.add(today, longest, warn=False))
    if year is None:
        return None
    return (f"{settings.path(settings.paths.cases)}: warning: deadlines set today ({today}) run up to {longest} "
            f"working days, into {year}, a year chinese_calendar does not know (it knows up to {year - 1}): "
            f"there they count Monday-Friday; add {year}'s holidays and make-up days (调休) to cases.yaml "
            f"(calendar: {{holidays: [...], workdays: [...]}})")


def _doc(path: Path, problems: list[Problem]) -> YamlDoc | None:
    try:
        return YamlDoc.load(path)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def _queues(path: Path, problems: list[Problem]) -> tuple[QueueSpec, ...] | None:
    doc = _doc(path, problems)
    if doc is None:
        return None
    built: QueueFile | None = build(QueueFile, doc.data, doc, (), problems)
    if built is None:
        return None
    if not built.queues:
        problems.append(doc.problem(("queues",), "define at least the hotline's queue"))
    return built.queues


def _prompts(directory: Path) -> frozenset[str]:
    if not directory.is_dir():
        return frozenset()
    return frozenset(p.stem for p in directory.iterdir() if p.suffix in PROMPT_FORMATS)


def _check_flows(flows: dict[str, Flow], prompts: frozenset[str], prompt_dir: Path,
                 problems: list[Problem]) -> None:
    any_flow = next(iter(flows.values()))
    folder = str(Path(any_flow.source).parent)
    for name in REQUIRED_FLOWS:
        if name not in flows:
            problems.append(Problem(folder, None, "", f"missing flow {name}.yaml (the {name} action needs it)"))
    for flow in flows.values():
        doc = YamlDoc.load(flow.source)
        for index, prompt in flow.prompts():
            if "{" not in prompt and prompt not in prompts:
                problems.append(doc.problem(("steps", index), f"unknown prompt {prompt!r} (not in {prompt_dir})"))


def _check_references(doc: YamlDoc, trunk_map: TrunkMap, queues: set[str], prompts: frozenset[str],
                      prompt_dir: Path, problems: list[Problem]) -> None:
    if trunk_map.hotline.queue not in queues:
        problems.append(doc.problem(("hotline", "queue"),
                                    f"unknown queue {trunk_map.hotline.queue!r} (agents/queues.yaml defines "
                                    f"{', '.join(sorted(queues)) or 'none'})"))
    references: list[tuple[KeyPath, str]] = [
        (("prompts", "moved"), trunk_map.prompts.moved), (("prompts", "retired"), trunk_map.prompts.retired),
        (("prompts", "parallel_ring"), trunk_map.prompts.parallel_ring)]
    units = doc.data.get("units", []) if isinstance(doc.data, dict) else []
    for i, raw in enumerate(units):
        if not isinstance(raw, dict):
            continue
        references.append((("units", i, "prompt"), str(raw.get("prompt") or "")))
        for j, number in enumerate(raw.get("numbers") or []):
            if isinstance(number, dict):
                references.append((("units", i, "numbers", j, "prompt"), str(number.get("prompt") or "")))
    for path, prompt in references:
        if prompt and prompt not in prompts:
            problems.append(doc.problem(path, f"unknown prompt {prompt!r} (not in {prompt_dir})"))
