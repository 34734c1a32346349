"""Case statistics, their rows and periods (pure); counted in SQL by cti.stats.cases, one row per unit, category,
legacy number, day or month of the cases opened in a period. Merged cases (并单) count in the case they joined.

- cases: cases opened; closed: closed or archived
- on-time rate (按时办结率): replies given by their deadline, of the replies given (12345's own answers have no
  deadline: on time)
- overdue: cases with a unit past their deadline without a reply, or replied late
- satisfaction (满意率): 1 (满意) and 2 (基本满意) of the callbacks answered (1, 2 or 3; unreachable callers are
  counted apart and in no denominator)
- first-call resolution (首呼解决率): cases closed that 12345 answered itself (直接答复) the first time — never
  dispatched to a unit, never handled again after an unsatisfied callback — of the cases closed
- returns (退单率): cases a unit returned (退单) at least once, of the cases dispatched at least once; a case
  counts in the group it is in now (its current unit, when grouped by unit)
- rehandled: cases sent back at least once by an unsatisfied caller
- escalated: cases escalated (督办)
- missed calls and how many were called back: per legacy number and period (a missed call has no unit or
  category yet), and in the total row
- media cases: cases that came by SMS or the web; answered within 3 minutes (GB/T 33358's 3分钟响应率): those a
  person (an agent, a supervisor) took a step on within 180 s of their arrival (cti.cases.channels); the
  automatic SMS receipt is no answer. A case just arrived and not yet taken counts as not answered in time.
  Grouped by channel: 电话, 短信, 网页
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cti.stats.export import to_csv as _csv

GROUPS = ("unit", "category", "legacy_number", "day", "month", "channel")


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
    first_call_resolved: int = 0
    first_call_rate: float | None = None
    dispatched: int = 0
    returned: int = 0
    return_rate: float | None = None
    rehandled: int = 0
    escalated: int = 0
    missed_calls: int = 0
    called_back: int = 0
    media_cases: int = 0
    answered_3min: int = 0
    answer_3min_rate: float | None = None


def period(start: date | None, end: date | None, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """From the beginning of day ``start`` to the end of day ``end`` (both included), local time;
    None where open."""
    since = datetime.combine(start, time.min, zone) if start else None
    until = datetime.combine(end + timedelta(days=1), time.min, zone) if end else None
    return since, until


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


NAMES = tuple(f.name for f in fields(Row))


def to_csv(rows: list[Row], first_column: str, *, bom: bool = False) -> str:
    """The rows as CSV; with a byte-order mark when ``bom`` (a file for Excel: cti.stats.export)."""
    return _csv(NAMES, rows, first_column, bom=bom)
