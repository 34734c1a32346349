"""Running tallies of the call measures: what cti.stats.calls sums over a period, summed ahead per local hour and
queue, per local day and unit and per local day and agent, call by call with cti.stats.measures' definitions
(the one definition: the SQL of cti.stats.calls counts the same, and the tests hold the two to each other). A
year's page then reads some 35,000 (hours × queues) to 110,000 (days × agents) tally rows, not a million calls.
Pure: cti.store.tallies writes them, with the calls, and rebuilds them from the calls.

The hours and days are local, in the zone the tallies were made in: a period can be read from them when it
starts and ends on that zone's hours (by queue, hour, day or in total) or days (by unit or agent); any other
period, zone or a unit's own view is counted from the calls."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cti.calls.record import CallRecord
from cti.stats import measures

SUMS = ("asked", "short_abandons", "answered", "answered_in_15s", "wait_ms", "answer_wait_ms", "talk_sum",
        "talked")
# the tally rows each grouping of cti.stats.rows.CALL_GROUPS reads, and how long the rows are
READS = {"total": "queue", "hour": "queue", "day": "queue", "queue": "queue", "unit": "unit", "agent": "agent"}
SPANS = {"queue": "hour", "unit": "day", "agent": "day"}


def local_start(at: datetime, zone: ZoneInfo, span: str) -> datetime:
    """The start (UTC) of the local hour or day ``at`` is in."""
    local = at.astimezone(zone)
    start = local.replace(minute=0, second=0, microsecond=0) if span == "hour" else \
        local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    return start.astimezone(UTC)


def aligned(at: datetime | None, zone: ZoneInfo, span: str) -> bool:
    """Whether ``at`` (None: open) is the start of a local hour or day: a period bound the tallies can give."""
    return at is None or local_start(at, zone, span) == at.astimezone(UTC)


def tallies(records: Iterable[CallRecord], zone: ZoneInfo) -> list[dict[str, Any]]:
    """The tally rows of these calls (only those that asked for a person count), summed per grouping, start and
    key: the rows to add to the table's."""
    found: dict[tuple[str, datetime, str], dict[str, Any]] = {}
    for record in records:
        if not measures.asked_for_a_person(record):
            continue
        arrived = datetime.fromtimestamp(record.arrived_at, UTC)
        local = arrived.astimezone(zone)
        answered = record.answered_at is not None
        short = measures.is_short_abandon(record)
        wait_ms = round(measures.wait_of(record) * 1000)
        talk = measures.talk_of(record)
        for grouping, key, name in (("queue", record.queue, ""), ("unit", record.unit_id, record.unit),
                                    ("agent", record.answered_by, record.answered_by_name)):
            span = SPANS[grouping]
            start = local_start(arrived, zone, span)
            row = found.get((grouping, start, key))
            if row is None:
                row = found[(grouping, start, key)] = {
                    "grouping": grouping, "starts_at": start, "key": key, "day": local.date().isoformat(),
                    "hour": local.strftime("%H") if span == "hour" else "", "name": name,
                    **{column: 0 for column in SUMS}, "talk_sum": 0.0, "max_wait_ms": None}
            row["name"] = max(row["name"], name)
            row["asked"] += 1
            if short:
                row["short_abandons"] += 1
                continue
            row["wait_ms"] += wait_ms
            row["max_wait_ms"] = wait_ms if row["max_wait_ms"] is None else max(row["max_wait_ms"], wait_ms)
            if answered:
                row["answered"] += 1
                row["answer_wait_ms"] += wait_ms
                row["answered_in_15s"] += measures.answered_in_time(record)
                if talk is not None:
                    row["talk_sum"] += talk
                    row["talked"] += 1
    return list(found.values())
