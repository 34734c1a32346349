"""The public number ledger (号码台账): every number of the trunk map and what became of it on a day. Pure.

国办函〔2025〕66号 asks a city to publish the hotlines it folded into 12345. A row holds only what a citizen
may read: the number, its unit's name, the mode (整合方式), the transition window, the status on the day and
the number to call. A row has no field for seats, dial strings, prompts or webhooks, so none can leak.

The status follows the router (cti.routing.router): a merged number's transition is over when
``Window.ended_on`` says so, the one test both use.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import date

from cti.routing.model import TREATMENT_NAMES, LegacyNumber, TrunkMap, Unit

# the status of a number on a day, and its words on the public page
STATUSES = {
    "transition": "过渡期",  # merged, window not over: the caller hears "已转移到12345" and is put through
    "retired": "已停用",  # merged, window over: the caller hears "已停止使用，请拨打12345"
    "forwarded": "已并入",  # merged, no window or kept forwarding after it (after_window): still reaches 12345
    "parallel": "双线并行",  # remote seat or interconnected: the unit and 12345 both answer the old number
    "separate": "独立运行",  # emergency: never routed into 12345
    "guidance": "暂不纳入",  # excluded: the caller is told which number to call
}
FIELDS = ("number", "unit", "mode", "mode_name", "window_start", "window_end", "status", "status_name",
          "call_instead", "guidance")
# a number named in an excluded line's guidance ("国家安全举报请拨打12339")
_NAMED = re.compile(r"(?<![0-9+])\+?[0-9]{3,20}(?![0-9])")


@dataclass(frozen=True, slots=True)
class LedgerRow:
    number: str
    unit: str  # the unit's name
    mode: str  # a treatment of the trunk map (merged, remote_seat…)
    mode_name: str  # its 整合方式 (直接合并…)
    window_start: date | None  # merged numbers with a transition window
    window_end: date | None
    status: str  # a key of STATUSES
    status_name: str
    call_instead: str  # 12345, the number named by the guidance, or the number itself (emergency)
    guidance: str  # what callers of an excluded line are told; "" otherwise

    def to_json(self) -> dict[str, str | None]:
        row = dataclasses.asdict(self)
        return row | {name: None if row[name] is None else row[name].isoformat()
                      for name in ("window_start", "window_end")}


def ledger(trunk_map: TrunkMap, day: date) -> list[LedgerRow]:
    """Every number of the map, in the map's order, as it stands on ``day`` (a date in the map's zone)."""
    return [_row(trunk_map, unit, entry, day) for unit in trunk_map.units for entry in unit.numbers]


def ledger_json(trunk_map: TrunkMap, day: date) -> dict[str, object]:
    """The ledger as GET /api/ledger and ``cti ledger --format json`` give it."""
    return {"at": day.isoformat(), "hotline": trunk_map.hotline.number, "timezone": trunk_map.timezone,
            "numbers": [row.to_json() for row in ledger(trunk_map, day)]}


def _row(trunk_map: TrunkMap, unit: Unit, entry: LegacyNumber, day: date) -> LedgerRow:
    status, call_instead = _status(trunk_map, unit, entry, day)
    window = entry.window
    return LedgerRow(number=entry.number, unit=unit.name, mode=entry.treatment,
                     mode_name=TREATMENT_NAMES[entry.treatment],
                     window_start=window.start if window else None, window_end=window.end if window else None,
                     status=status, status_name=STATUSES[status], call_instead=call_instead,
                     guidance=unit.guidance if entry.treatment == "excluded" else "")


def _status(trunk_map: TrunkMap, unit: Unit, entry: LegacyNumber, day: date) -> tuple[str, str]:
    """The status on ``day`` and the number to call instead."""
    hotline = trunk_map.hotline.number
    if entry.treatment == "merged":
        if entry.window is None:
            return "forwarded", hotline
        if not entry.window.ended_on(day):  # before the window too: the router already puts calls through
            return "transition", hotline
        return ("retired" if entry.after_window == "retired_notice" else "forwarded"), hotline
    if entry.treatment in ("remote_seat", "interconnected"):
        return "parallel", hotline
    if entry.treatment == "emergency":
        return "separate", entry.number
    return "guidance", _guided(entry.number, unit.guidance)


def _guided(number: str, guidance: str) -> str:
    """The number an excluded line's guidance tells callers to dial: its own when it names it (12380 of
    "组织工作举报请拨打12380；党员服务请拨打12371"), else the first it names, else its own. The map has no
    field for it: the guidance text is what callers hear."""
    named = _NAMED.findall(guidance)
    return number if number in named or not named else named[0]
