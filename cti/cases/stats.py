"""Case statistics, pure: per unit, category, legacy number or period, from the cases.

- volume: cases opened; closed: closed or archived
- on-time rate: replies given by their deadline, of the replies given
- overdue: cases with a unit past their deadline without a reply, or replied late
- satisfaction: 1 (satisfied) and 2 (basically satisfied) of the callbacks answered
- rehandled: cases sent back at least once by an unsatisfied caller
- escalated: cases escalated (督办)
- missed calls and how many were called back: per legacy number and period (a
  missed call has no unit or category yet), and in the total row
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cti.cases.model import CATEGORIES, WITH_UNIT, Case, MissedCall

GROUPS = ("unit", "category", "legacy_number", "day", "month")


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    cases: int = 0
    closed: int = 0
    replied: int = 0
    on_time: int = 0
    on_time_rate: float | None = None
    overdue: int = 0
    surveyed: int = 0
    satisfied: int = 0
    basically_satisfied: int = 0
    unsatisfied: int = 0
    unreachable: int = 0
    satisfaction_rate: float | None = None
    rehandled: int = 0
    escalated: int = 0
    missed_calls: int = 0
    called_back: int = 0


def period(start: date | None, end: date | None, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """From the beginning of day ``start`` to the end of day ``end`` (both included), local time;
    None where open."""
    since = datetime.combine(start, time.min, zone) if start else None
    until = datetime.combine(end + timedelta(days=1), time.min, zone) if end else None
    return since, until


def key_of(by: str, zone: ZoneInfo) -> Callable[[Case], str]:
    if by == "unit":
        return lambda c: c.unit or "12345"
    if by == "category":
        return lambda c: CATEGORIES[c.category]
    if by == "legacy_number":
        return lambda c: c.legacy_number or "—"
    if by == "day":
        return lambda c: c.created_at.astimezone(zone).date().isoformat()
    if by == "month":
        return lambda c: c.created_at.astimezone(zone).strftime("%Y-%m")
    raise ValueError(f"group by one of {', '.join(GROUPS)}")


def missed_key_of(by: str, zone: ZoneInfo) -> Callable[[MissedCall], str] | None:
    if by == "legacy_number":
        return lambda m: m.dialled_number or "—"
    if by == "day":
        return lambda m: m.at.astimezone(zone).date().isoformat()
    if by == "month":
        return lambda m: m.at.astimezone(zone).strftime("%Y-%m")
    return None


def statistics(cases: Iterable[Case], missed: Iterable[MissedCall], by: str, zone: ZoneInfo,
               now: datetime) -> list[Row]:
    """One row per group, sorted by key, and a last row "total"."""
    key = key_of(by, zone)
    groups: dict[str, list[Case]] = {}
    everything: list[Case] = []
    for case in cases:
        if case.state == "merged":
            continue  # a duplicate counts in the case it joined
        groups.setdefault(key(case), []).append(case)
        everything.append(case)
    missed_key = missed_key_of(by, zone)
    missed_groups: dict[str, list[MissedCall]] = {}
    all_missed = list(missed)
    for call in all_missed if missed_key else ():
        missed_groups.setdefault(missed_key(call), []).append(call)  # type: ignore[misc]
    names = sorted(set(groups) | set(missed_groups))
    return [_row(name, groups.get(name, []), missed_groups.get(name, []), now) for name in names] + [
        _row("total", everything, all_missed, now)]


def _row(key: str, cases: list[Case], missed: list[MissedCall], now: datetime) -> Row:
    replied = [c for c in cases if c.on_time is not None]
    on_time = sum(1 for c in replied if c.on_time)
    late = len(replied) - on_time
    waiting = sum(1 for c in cases if c.state in WITH_UNIT and c.due_at is not None and c.due_at < now)
    answers = [c.satisfaction for c in cases if c.satisfaction in ("1", "2", "3")]
    good = answers.count("1") + answers.count("2")
    return Row(
        key=key, cases=len(cases), closed=sum(1 for c in cases if c.state in ("closed", "archived")),
        replied=len(replied), on_time=on_time, on_time_rate=_rate(on_time, len(replied)), overdue=late + waiting,
        surveyed=len(answers), satisfied=answers.count("1"), basically_satisfied=answers.count("2"),
        unsatisfied=answers.count("3"), unreachable=sum(1 for c in cases if c.satisfaction == "unreachable"),
        satisfaction_rate=_rate(good, len(answers)), rehandled=sum(1 for c in cases if c.rehandled),
        escalated=sum(1 for c in cases if c.escalated_at is not None), missed_calls=len(missed),
        called_back=sum(1 for m in missed if m.state == "called_back"))


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def to_csv(rows: list[Row], first_column: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    names = [f.name for f in fields(Row)]
    writer.writerow([first_column, *names[1:]])
    for row in rows:
        writer.writerow(["" if getattr(row, n) is None else getattr(row, n) for n in names])
    return out.getvalue()
