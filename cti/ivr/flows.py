"""IVR flows: short YAML scripts of steps, one file per flow in ivr_flows/.

A flow does the talking (answer, play a notice, read a digit) and ends by
handing the call back to the dialplan with what to do next: ``queue``,
``dial`` (parallel ringing, or an emergency line) or ``hangup``. The main 12345
line has no menu (GB/T 33358): menus are only for the satisfaction survey.

Values may name the route decision's variables in braces: ``{prompt}``,
``{queue}``, ``{dial}``, ``{dial_timeout}``, ``{number}``, ``{unit}``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cti.yamlconfig import ConfigError, KeyPath, Problem, YamlDoc, unknown_key

VARIABLES = ("prompt", "queue", "dial", "dial_timeout", "number", "unit", "treatment", "fallback")


@dataclass(frozen=True, slots=True)
class Answer:
    pass


@dataclass(frozen=True, slots=True)
class Play:
    prompt: str


@dataclass(frozen=True, slots=True)
class Read:
    """Ask for digits (GET DATA); retry on invalid input; store the answer."""

    prompt: str
    store: str
    digits: int = 1
    timeout: float = 5.0
    valid: tuple[str, ...] = ()
    retries: int = 2
    invalid: str = ""  # prompt played before a retry


@dataclass(frozen=True, slots=True)
class Set:
    variables: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Queue:
    queue: str


@dataclass(frozen=True, slots=True)
class Dial:
    targets: str
    timeout: str = "{dial_timeout}"
    fallback: str = "hangup"  # what the dialplan does when nobody answers: queue | hangup


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


Step = Answer | Play | Read | Set | Queue | Dial | Hangup
HANDOVERS = (Queue, Dial, Hangup)


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    description: str
    steps: tuple[Step, ...]
    source: str = ""

    def prompts(self) -> list[tuple[int, str]]:
        """(step index, prompt) for every prompt the flow names literally or through {prompt}."""
        found = []
        for i, step in enumerate(self.steps):
            if isinstance(step, Play):
                found.append((i, step.prompt))
            elif isinstance(step, Read):
                found.extend((i, p) for p in (step.prompt, step.invalid) if p)
        return found


_READ_KEYS = ("prompt", "store", "digits", "timeout", "valid", "retries", "invalid")
_DIAL_KEYS = ("targets", "timeout", "fallback")
_STEP_NAMES = ("answer", "play", "read", "set", "queue", "dial", "hangup")


def load_flows(directory: str | Path) -> dict[str, Flow]:
    """Every ``*.yaml`` flow in ``directory``, by file stem; ConfigError lists all problems."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError([Problem(str(directory), None, "", "no such directory of IVR flows")])
    flows: dict[str, Flow] = {}
    problems: list[Problem] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            doc = YamlDoc.load(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        flow = parse_flow(doc, path.stem, problems)
        if flow is not None:
            flows[flow.name] = flow
    if problems:
        raise ConfigError(problems)
    return flows


def parse_flow(doc: YamlDoc, name: str, problems: list[Problem]) -> Flow | None:
    before = len(problems)
    data = doc.data if isinstance(doc.data, dict) else {}
    if not isinstance(doc.data, dict):
        problems.append(doc.problem((), "expected a mapping with description and steps"))
    for key in data:
        if key not in ("description", "steps"):
            problems.append(unknown_key(doc, (key,), ("description", "steps")))
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append(doc.problem(("steps",), "expected a list of steps"))
        raw_steps = []
    steps = [s for i, raw in enumerate(raw_steps) if (s := _step(doc, ("steps", i), raw, problems)) is not None]
    if len(steps) == len(raw_steps):  # with a broken step, the order checks would only echo it
        for i, step in enumerate(steps[:-1]):
            if isinstance(step, HANDOVERS):
                problems.append(doc.problem(("steps", i),
                                            "a queue, dial or hangup step ends the flow: nothing may follow"))
        if steps and not isinstance(steps[-1], HANDOVERS):
            problems.append(doc.problem(("steps", len(raw_steps) - 1),
                                        "a flow must end by handing the call back: queue, dial or hangup"))
    for i, step in enumerate(steps):
        for value in _values(step):
            for field_name in _placeholders(value):
                if field_name not in VARIABLES:
                    problems.append(doc.problem(("steps", i), f"unknown variable {{{field_name}}}; known: "
                                                              f"{', '.join(VARIABLES)}"))
    if len(problems) > before:
        return None
    return Flow(name=name, description=str(data.get("description", "")), steps=tuple(steps), source=doc.name)


def _step(doc: YamlDoc, path: KeyPath, raw: Any, problems: list[Problem]) -> Step | None:
    if isinstance(raw, str):
        kind, value = raw, None
    elif isinstance(raw, dict) and len(raw) == 1:
        kind, value = next(iter(raw.items()))
    else:
        problems.append(doc.problem(path, "a step is a name (answer) or one name with its value (play: notice)"))
        return None
    if kind not in _STEP_NAMES:
        problems.append(unknown_key(doc, path + (kind,), _STEP_NAMES))
        return None
    if kind in ("answer", "hangup"):
        if value is not None:
            problems.append(doc.problem(path + (kind,), f"{kind} takes no value"))
        return Answer() if kind == "answer" else Hangup()
    if kind in ("play", "queue"):
        if not isinstance(value, str) or not value:
            problems.append(doc.problem(path + (kind,), f"{kind} needs a {'prompt' if kind == 'play' else 'queue'}"))
            return None
        return Play(value) if kind == "play" else Queue(value)
    if kind == "set":
        if not isinstance(value, dict) or not value:
            problems.append(doc.problem(path + (kind,), "set needs a mapping of channel variables"))
            return None
        return Set(tuple((str(k), str(v)) for k, v in value.items()))
    options = value if isinstance(value, dict) else None
    keys = _READ_KEYS if kind == "read" else _DIAL_KEYS
    if options is None:
        if kind == "dial" and isinstance(value, str):
            return Dial(value)
        problems.append(doc.problem(path + (kind,), f"{kind} needs a mapping with {', '.join(keys)}"))
        return None
    bad = [k for k in options if k not in keys]
    for k in bad:
        problems.append(unknown_key(doc, path + (kind, k), keys))
    if bad:
        return None
    try:
        if kind == "dial":
            step: Dial = Dial(targets=str(options["targets"]), timeout=str(options.get("timeout", "{dial_timeout}")),
                              fallback=str(options.get("fallback", "hangup")))
            if step.fallback not in ("queue", "hangup") and step.fallback != "{fallback}":
                problems.append(doc.problem(path + (kind, "fallback"), "fallback is queue, hangup or {fallback}"))
                return None
            return step
        return Read(prompt=str(options["prompt"]), store=str(options["store"]), digits=int(options.get("digits", 1)),
                    timeout=float(options.get("timeout", 5)), valid=tuple(str(v) for v in options.get("valid", ())),
                    retries=int(options.get("retries", 2)), invalid=str(options.get("invalid", "")))
    except KeyError as missing:
        problems.append(doc.problem(path + (kind,), f"{kind} needs {missing.args[0]}"))
    except (TypeError, ValueError) as exc:
        problems.append(doc.problem(path + (kind,), f"bad value: {exc}"))
    return None


def _values(step: Step) -> list[str]:
    if isinstance(step, Play):
        return [step.prompt]
    if isinstance(step, Read):
        return [step.prompt, step.invalid]
    if isinstance(step, Set):
        return [v for _, v in step.variables]
    if isinstance(step, Queue):
        return [step.queue]
    if isinstance(step, Dial):
        return [step.targets, step.timeout, step.fallback]
    return []


def _placeholders(value: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(value) if name]
