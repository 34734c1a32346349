"""Running tallies of the case measures: what cti.stats.cases counts over the cases opened in a period, summed
ahead per local day of opening and unit, category or legacy number. Unlike a call, a case changes after it is
counted (dispatched, replied, surveyed, returned, reassigned, merged), so each transition moves its counts: what
the case counted for before is taken away, what it counts for now is added (``changes``). A year's page then reads
some 365 × (units + categories + numbers) rows, not 300,000 cases. Pure: cti.store.case_tallies writes them with
the cases, in the same transaction.

One figure depends on the clock, not only on the case: "overdue" counts a case still with its unit past its
deadline. The tallies keep the part that no longer moves (``late``: replied after the deadline, now out of the
unit's hands); the cases still with a unit, few, are counted from the cases when a page is read."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from cti.cases.channels import ANSWER_WITHIN, MEDIA
from cti.cases.model import WITH_UNIT, Case

GROUPINGS = ("unit", "category", "legacy_number")
SUMS = ("cases", "closed", "replied", "on_time", "late", "satisfied", "basically_satisfied", "unsatisfied",
        "unreachable", "first_call_resolved", "dispatched", "returned", "rehandled", "escalated", "media_cases",
        "answered_3min")
CLOSED = ("closed", "archived")


def figures(case: Case, returned: bool) -> dict[str, int] | None:
    """What one case counts for (cti.cases.stats' definitions; the SQL of cti.stats.cases counts the same and the
    tests hold the two to each other); None for a case merged into another (it counts in that one). ``returned``:
    whether a unit ever returned it."""
    if case.state == "merged":
        return None
    closed = case.state in CLOSED
    counts = {
        "cases": True, "closed": closed, "replied": case.on_time is not None, "on_time": case.on_time is True,
        "late": case.on_time is False and case.state not in WITH_UNIT,
        "satisfied": case.satisfaction == "1", "basically_satisfied": case.satisfaction == "2",
        "unsatisfied": case.satisfaction == "3", "unreachable": case.satisfaction == "unreachable",
        "first_call_resolved": closed and case.dispatched_at is None and case.rehandled == 0 and not returned,
        "dispatched": case.dispatched_at is not None or returned, "returned": returned,
        "rehandled": case.rehandled > 0, "escalated": case.escalated_at is not None,
        "media_cases": case.channel in MEDIA, "answered_3min": answered_in_time(case)}
    return {name: int(value) for name, value in counts.items()}


def answered_in_time(case: Case) -> bool:
    """An SMS or web case a person took a step on within 3 minutes of its arrival (to the millisecond, as
    cti.store.sql.seconds_between counts in the database)."""
    if case.channel not in MEDIA or case.taken_at is None:
        return False
    return round((case.taken_at - case.created_at).total_seconds(), 3) <= ANSWER_WITHIN


def changes(moves: Iterable[tuple[Case, bool, int]], zone: ZoneInfo) -> list[dict[str, Any]]:
    """The tally rows to add for these moves, each a case, whether it was returned, and +1 (it counts so now) or
    -1 (it counted so until now): summed per grouping, local day and key, those that cancel out left out, sorted
    (so that two writers lock the rows they share in the same order)."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for case, returned, sign in moves:
        counts = figures(case, returned)
        if counts is None:
            continue
        day = case.created_at.astimezone(zone).date().isoformat()
        for grouping, key in (("unit", case.unit), ("category", case.category),
                              ("legacy_number", case.legacy_number)):
            row = found.get((grouping, day, key))
            if row is None:
                row = found[(grouping, day, key)] = {"grouping": grouping, "day": day, "key": key,
                                                     **dict.fromkeys(SUMS, 0)}
            for name, value in counts.items():
                row[name] += sign * value
    return [found[k] for k in sorted(found) if any(found[k][name] for name in SUMS)]
