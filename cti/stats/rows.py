"""The rows of the call statistics (cti.stats.calls counts them in SQL), as cti.stats.measures defines each
figure. Pure."""

from __future__ import annotations

from dataclasses import dataclass, fields

from cti.cases.stats import rate

# total: one row; hour: the hour of the day (00-23, local time) over the period; day: each local day; queue: the
# queue the call waited in ("—": none, a parallel ring); unit: the unit owning the number dialled ("12345": the
# hotline itself); agent: who answered ("—": nobody, the abandoned and short-abandoned calls)
CALL_GROUPS = ("total", "hour", "day", "queue", "unit", "agent")
NONE = {"queue": "—", "unit": "12345", "agent": "—"}


@dataclass(frozen=True, slots=True)
class CallStatsRow:
    key: str
    name: str = ""  # the unit's or the agent's name
    asked: int = 0  # calls that asked for a person (short abandons included)
    short_abandons: int = 0  # hung up unanswered within 5 s: in no denominator
    offered: int = 0  # asked, less the short abandons: every rate's denominator
    answered: int = 0
    answered_in_15s: int = 0
    abandoned: int = 0
    answer_rate_15s: float | None = None  # 15秒接通率: answered within 15 s / offered
    answer_rate: float | None = None  # 接通率 (over whole days: GB/T 33358's 24-hour connection rate)
    abandon_rate: float | None = None  # 放弃率: abandoned / offered
    avg_wait: float | None = None  # seconds, over the offered calls
    avg_answer_wait: float | None = None  # seconds, over the answered calls (average speed of answer)
    max_wait: float | None = None  # seconds, the longest of the offered calls
    avg_talk: float | None = None  # seconds, over the answered calls whose talk is known


CALL_NAMES = tuple(f.name for f in fields(CallStatsRow))


@dataclass(frozen=True, slots=True)
class CallSums:
    """What the database sums for a group; the rows' averages and rates are made from these, so that the total
    row is the groups' sums (no second pass over the calls)."""

    key: str
    name: str
    asked: int
    short_abandons: int
    answered: int
    answered_in_15s: int
    wait_sum: float
    max_wait: float | None
    answer_wait_sum: float
    talk_sum: float
    talked: int

    def row(self) -> CallStatsRow:
        offered = self.asked - self.short_abandons
        return CallStatsRow(
            key=self.key, name=self.name, asked=self.asked, short_abandons=self.short_abandons, offered=offered,
            answered=self.answered, answered_in_15s=self.answered_in_15s, abandoned=offered - self.answered,
            answer_rate_15s=rate(self.answered_in_15s, offered), answer_rate=rate(self.answered, offered),
            abandon_rate=rate(offered - self.answered, offered), avg_wait=_mean(self.wait_sum, offered),
            avg_answer_wait=_mean(self.answer_wait_sum, self.answered), max_wait=self.max_wait,
            avg_talk=_mean(self.talk_sum, self.talked))


def total(groups: list[CallSums]) -> CallSums:
    waits = [g.max_wait for g in groups if g.max_wait is not None]
    return CallSums("total", "", sum(g.asked for g in groups), sum(g.short_abandons for g in groups),
                    sum(g.answered for g in groups), sum(g.answered_in_15s for g in groups),
                    sum(g.wait_sum for g in groups), max(waits) if waits else None,
                    sum(g.answer_wait_sum for g in groups), sum(g.talk_sum for g in groups),
                    sum(g.talked for g in groups))


def _mean(whole: float, count: int) -> float | None:
    return round(whole / count, 1) if count else None
