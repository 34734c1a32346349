"""cases.yaml: the dispatch catalogue (the units cases go to) and the case rules.

Every unit of trunk_map.yaml that handles cases (all but the emergency and
excluded lines) is in the catalogue under its trunk-map id and name; cases.yaml
adds units that have no hotline of their own (district governments…), gives a
unit its own deadlines or a webhook for notices, and sets the deadlines,
callback and calendar rules. A missing cases.yaml means the defaults.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path

from cti.calls.channels import dial_string_problem
from cti.cases.model import CATEGORIES, Policy
from cti.hotspots.detect import BurstRules, RepeatRules, SpikeRules
from cti.routing.model import TrunkMap
from cti.yamlconfig import ConfigError, Problem, YamlDoc, build

NOT_HANDLING = ("emergency", "excluded")
_HOUR = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True, slots=True)
class Deadlines:
    consultation: int | None = None
    request: int | None = None
    complaint: int | None = None
    report: int | None = None
    suggestion: int | None = None

    def given(self) -> dict[str, int]:
        return {c: getattr(self, c) for c in CATEGORIES if getattr(self, c) is not None}


@dataclass(frozen=True, slots=True)
class UnitEntry:
    id: str
    name: str = ""
    webhook: str = ""  # where the unit's system receives reminders, overdue notices and escalations
    deadlines: Deadlines = field(default_factory=Deadlines)


@dataclass(frozen=True, slots=True)
class CallbackRules:
    mode: str = "auto"  # auto: cti calls and asks the survey; agent: every callback is an agent's task
    dial: str = "PJSIP/{number}@carrier"  # the citizen's number on the carrier trunk
    caller_id: str = '"12345" <12345>'
    attempts: int = 3  # automated attempts before the callback becomes an agent's task
    retry_minutes: int = 60
    hours: tuple[str, ...] = ("09:00", "20:00")  # no callbacks outside these hours (local time)
    # the callback of a case that came by SMS: call (as a call's) or survey (an SMS the citizen answers 1, 2 or 3,
    # waited for sms_reply_hours, then sent again; after ``attempts`` unanswered, an agent's task as for calls)
    sms: str = "call"
    sms_reply_hours: float = 24.0

    @property
    def window(self) -> tuple[time, time]:
        return time.fromisoformat(self.hours[0]), time.fromisoformat(self.hours[1])


@dataclass(frozen=True, slots=True)
class CalendarOverrides:
    holidays: tuple[date, ...] = ()
    workdays: tuple[date, ...] = ()  # 调休 make-up working days


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Hotspots and risk alerts (cti.hotspots): the detectors' thresholds, and where alerts go."""

    webhook: str = ""  # an http(s) URL the alerts are POSTed to (alert.raised, alert.cleared); empty: none
    sweep_seconds: float = 60.0  # how often the detectors run
    clear_after_minutes: float = 10.0  # an alert no longer found this long is cleared (no flapping at a threshold)
    spike: SpikeRules = field(default_factory=SpikeRules)
    burst: BurstRules = field(default_factory=BurstRules)
    repeat: RepeatRules = field(default_factory=RepeatRules)


@dataclass(frozen=True, slots=True)
class CaseFile:
    deadlines: Deadlines = field(default_factory=Deadlines)
    return_within: int = 2
    remind_before: int = 1
    overdue_every: int = 2
    escalate_after: int = 5
    max_extension: int = 10
    archive_after_days: int = 7  # closed cases are archived this many days later
    sweep_seconds: float = 60.0  # how often deadlines and callbacks are looked at
    units: tuple[UnitEntry, ...] = ()
    callback: CallbackRules = field(default_factory=CallbackRules)
    calendar: CalendarOverrides = field(default_factory=CalendarOverrides)
    alerts: AlertRules = field(default_factory=AlertRules)


@dataclass(frozen=True, slots=True)
class HandlingUnit:
    id: str
    name: str
    webhook: str = ""


@dataclass(frozen=True, slots=True)
class Catalogue:
    units: dict[str, HandlingUnit]
    policy: Policy
    callback: CallbackRules
    calendar: CalendarOverrides
    archive_after_days: int
    sweep_seconds: float
    source: str = ""
    alerts: AlertRules = field(default_factory=AlertRules)


def default_catalogue(trunk_map: TrunkMap) -> Catalogue:
    return _catalogue(CaseFile(), trunk_map, "")


def load_catalogue(path: Path, trunk_map: TrunkMap, problems: list[Problem]) -> Catalogue | None:
    """cases.yaml checked against the trunk map; None (and problems) when it is wrong."""
    if not path.exists():
        return default_catalogue(trunk_map)
    try:
        doc = YamlDoc.load(path)
    except ConfigError as exc:  # unreadable, or YAML syntax (with its line)
        problems.extend(exc.problems)
        return None
    before = len(problems)
    file = build(CaseFile, doc.data, doc, (), problems)
    if file is None:
        return None
    _check(file, doc, trunk_map, problems)
    return _catalogue(file, trunk_map, str(path)) if len(problems) == before else None


def _check(file: CaseFile, doc: YamlDoc, trunk_map: TrunkMap, problems: list[Problem]) -> None:
    for name, value in (("return_within", file.return_within), ("remind_before", file.remind_before),
                        ("overdue_every", file.overdue_every), ("escalate_after", file.escalate_after)):
        if value < 0:
            problems.append(doc.problem((name,), "must not be negative"))
    for category, days in file.deadlines.given().items():
        if days <= 0:
            problems.append(doc.problem(("deadlines", category), "a deadline is a positive number of working days"))
    if file.callback.mode not in ("auto", "agent"):
        problems.append(doc.problem(("callback", "mode"), f"must be auto or agent, not {file.callback.mode!r}"))
    if file.callback.sms not in ("call", "survey"):
        problems.append(doc.problem(("callback", "sms"), f"must be call or survey, not {file.callback.sms!r}"))
    if not file.callback.sms_reply_hours > 0:
        problems.append(doc.problem(("callback", "sms_reply_hours"), "must be positive"))
    if problem := callback_dial_problem(file.callback.dial):
        problems.append(doc.problem(("callback", "dial"), problem))
    if len(file.callback.hours) != 2 or not all(_HOUR.match(h) for h in file.callback.hours):
        problems.append(doc.problem(("callback", "hours"), 'two times of day, e.g. ["09:00", "20:00"]'))
    _check_alerts(file.alerts, doc, problems)
    seen: dict[str, int] = {}
    for index, unit in enumerate(file.units):
        path = ("units", index)
        if unit.id in seen:
            problems.append(doc.problem(path + ("id",), f"duplicate unit {unit.id!r} (also units[{seen[unit.id]}])"))
        seen.setdefault(unit.id, index)
        mapped = trunk_map.units_by_id.get(unit.id)
        if mapped is None and not unit.name:
            problems.append(doc.problem(path + ("id",), f"unit {unit.id!r} is not in the trunk map: give it a name"))
        if mapped is not None and mapped.treatment in NOT_HANDLING:
            problems.append(doc.problem(path + ("id",), f"unit {unit.id!r} is an {mapped.treatment} line, "
                                        "not a handling unit"))
        if unit.webhook and not unit.webhook.startswith(("http://", "https://")):
            problems.append(doc.problem(path + ("webhook",), "a webhook is an http:// or https:// URL"))
        for category, days in unit.deadlines.given().items():
            if days <= 0:
                problems.append(doc.problem(path + ("deadlines", category), "a deadline is a positive number"))


def _check_alerts(alerts: AlertRules, doc: YamlDoc, problems: list[Problem]) -> None:
    if alerts.webhook and not alerts.webhook.startswith(("http://", "https://")):
        problems.append(doc.problem(("alerts", "webhook"), "a webhook is an http:// or https:// URL"))
    positive = [(("sweep_seconds",), alerts.sweep_seconds), (("spike", "window_hours"), alerts.spike.window_hours),
                (("spike", "weeks"), alerts.spike.weeks), (("spike", "min_count"), alerts.spike.min_count),
                (("spike", "call_window_minutes"), alerts.spike.call_window_minutes),
                (("burst", "minutes"), alerts.burst.minutes), (("burst", "callers"), alerts.burst.callers),
                (("repeat", "hours"), alerts.repeat.hours), (("repeat", "calls"), alerts.repeat.calls)]
    for path, value in positive:
        if value <= 0:
            problems.append(doc.problem(("alerts", *path), "must be positive"))
    if alerts.clear_after_minutes < 0:
        problems.append(doc.problem(("alerts", "clear_after_minutes"), "must not be negative"))
    if not 0 < alerts.spike.p_value < 1:
        problems.append(doc.problem(("alerts", "spike", "p_value"), "a probability between 0 and 1"))


def _catalogue(file: CaseFile, trunk_map: TrunkMap, source: str) -> Catalogue:
    units = {u.id: HandlingUnit(u.id, u.name, u.webhook) for u in trunk_map.units if u.treatment not in NOT_HANDLING}
    for entry in file.units:
        known = units.get(entry.id)
        units[entry.id] = HandlingUnit(entry.id, entry.name or (known.name if known else entry.id),
                                       entry.webhook or (known.webhook if known else ""))
    policy = Policy(deadlines={**Policy().deadlines, **file.deadlines.given()},
                    unit_deadlines={u.id: u.deadlines.given() for u in file.units if u.deadlines.given()},
                    return_within=file.return_within, remind_before=file.remind_before,
                    overdue_every=file.overdue_every, escalate_after=file.escalate_after,
                    max_extension=file.max_extension)
    return Catalogue(units, policy, file.callback, file.calendar, file.archive_after_days, file.sweep_seconds, source,
                     file.alerts)


def callback_dial_problem(dial: str) -> str | None:
    """What is wrong with the callback's dial string (``{number}`` is the only field, and it makes one
    device's dial string with a caller's number in it), or None."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(dial) if field is not None]
    except ValueError as exc:  # a lone { or }
        return f"{dial!r}: {exc}; write {{{{ or }}}} for a brace"
    if fields.count("number") != 1 or set(fields) != {"number"}:
        return f"{dial!r}: {{number}} (the caller's number) once, and no other field"
    return dial_string_problem(dial.format(number="13800000000"))
