"""The service levels counted in SQL (cti.stats) against independent counts: hand-built call mixes whose right
answers are known (written through CallStore.save) and cases moved through the workflow (CaseService), on SQLite
and PostgreSQL, by every grouping; the exports read back."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from cti.calls.record import CallRecord, Leg
from cti.cases.model import MissedCall
from cti.cases.stats import NAMES, Row, period, to_csv
from cti.stats import measures
from cti.stats.calls import call_statistics
from cti.stats.cases import case_statistics
from cti.stats.export import BOM, to_xlsx
from cti.stats.rows import CallStatsRow
from cti.store.database import Database
from cti.store.sql import offsets
from tests.desk_harness import running_desk
from tests.test_cases_service import Clock, service

ZONE = ZoneInfo("Asia/Shanghai")
DAY1 = datetime(2026, 11, 9, 0, 0, tzinfo=ZONE)  # local midnight: 16:00 UTC the day before


def call(n: int, at: datetime, *, wait: float | None = None, answer: float | None = None, queue: str = "q12345",
         unit: str = "", agent: str = "", talk: float | None = 60.0, legs: int = 0, direction: str = "inbound",
         queued_after: float | None = 2.0) -> CallRecord:
    """A call arriving ``at``; queued ``queued_after`` s later (None: never queued); answered after ``answer`` s
    of waiting, else it ends after ``wait`` s of waiting."""
    arrived = at.timestamp()
    queued = arrived + queued_after if queued_after is not None and queue else None
    start = queued if queued is not None else arrived
    answered = start + answer if answer is not None else None
    ended = (answered + (talk or 30.0)) if answered is not None else start + (wait or 0.0)
    return CallRecord(
        linkedid=f"{int(arrived)}.{n}", direction=direction, caller_number=f"1380000{n:04d}", caller_name="",
        dialled_number="12345", arrived_at=arrived, ended_at=ended, unit=f"单位{unit}" if unit else "",
        unit_id=unit, queue=queue, queued_at=queued, answered_at=answered, talk_time=talk if answered else None,
        answered_by=agent if answered is not None else "", answered_by_name=agent[-4:] if answered else "",
        legs=tuple(Leg("PJSIP/seat", "", "", arrived, "cancel") for _ in range(legs)))


def mix() -> list[CallRecord]:
    """Two local days, two queues, two units, two agents; the limits of 5 s and 15 s on both sides."""
    d1, d2 = DAY1 + timedelta(hours=9), DAY1 + timedelta(days=1, hours=23, minutes=59)
    return [
        call(1, d1, answer=3.0, agent="PJSIP/agent1001", unit="u-a"),
        call(2, d1, answer=15.0, agent="PJSIP/agent1001", unit="u-a", talk=120.0),  # exactly 15 s: in time
        call(3, d1, answer=15.001, agent="PJSIP/agent1002", unit="u-b"),  # a millisecond late
        call(4, d1, wait=4.999, unit="u-a"),  # short abandon
        call(5, d1, wait=5.0, unit="u-b"),  # 5 s: an abandon, offered
        call(6, d1 + timedelta(hours=5), wait=80.0),  # abandoned after 80 s, 12345 itself
        call(7, d1, queue="", queued_after=None, legs=2, wait=30.0, unit="u-b"),  # parallel ring, nobody answered
        call(8, d1, queue="", queued_after=None, legs=2, answer=7.0, agent="PJSIP/seat-u-b", unit="u-b"),
        call(9, d1, queue="", queued_after=None, wait=10.0),  # a notice alone: asked for nobody
        call(10, d1, answer=1.0, agent="PJSIP/agent1001", direction="outbound"),  # a callback: not a measure
        call(11, d2, answer=40.0, agent="PJSIP/agent1002", queue="q-vip", talk=None),  # talk unknown
        call(12, d2, wait=0.0, queue="q-vip"),  # hung up at once
        call(13, d2 + timedelta(minutes=2), answer=2.0, agent="PJSIP/agent1001"),  # the next day: out of period
        call(14, DAY1 - timedelta(seconds=1), answer=2.0, agent="PJSIP/agent1001"),  # before it
    ]


def expected(records: list[CallRecord], key: Any) -> dict[str, CallStatsRow]:
    """The measures counted here, call by call, with cti.stats.measures' definitions: the independent count."""
    groups: dict[str, list[CallRecord]] = defaultdict(list)
    for record in records:
        if measures.asked_for_a_person(record):
            if key(record) != "total":
                groups[key(record)].append(record)
            groups["total"].append(record)
    rows = {}
    for name, calls in groups.items():
        offered = [r for r in calls if measures.is_offered(r)]
        answered = [r for r in offered if r.answered_at is not None]
        talks = [t for r in answered if (t := measures.talk_of(r)) is not None]

        def mean(values: list[float]) -> float | None:
            return round(sum(values) / len(values), 1) if values else None

        def share(part: int, whole: int = len(offered)) -> float | None:
            return round(part / whole, 4) if whole else None
        in_time = sum(1 for r in offered if measures.answered_in_time(r))
        abandoned = sum(1 for r in offered if measures.is_abandoned(r))
        waits = [measures.wait_of(r) for r in offered]
        rows[name] = CallStatsRow(
            key=name, asked=len(calls), short_abandons=sum(1 for r in calls if measures.is_short_abandon(r)),
            offered=len(offered), answered=len(answered), answered_in_15s=in_time, abandoned=abandoned,
            answer_rate_15s=share(in_time), answer_rate=share(len(answered)), abandon_rate=share(abandoned),
            avg_wait=mean(waits), avg_answer_wait=mean([measures.wait_of(r) for r in answered]),
            max_wait=max(waits) if waits else None, avg_talk=mean(talks))
    return rows


KEYS = {
    "total": lambda r: "total",
    "hour": lambda r: datetime.fromtimestamp(r.arrived_at, ZONE).strftime("%H"),
    "day": lambda r: datetime.fromtimestamp(r.arrived_at, ZONE).date().isoformat(),
    "queue": lambda r: r.queue or "—",
    "unit": lambda r: r.unit_id or "12345",
    "agent": lambda r: r.answered_by or "—",
}


def without_names(row: CallStatsRow) -> CallStatsRow:
    return CallStatsRow(**{**{f: getattr(row, f) for f in row.__dataclass_fields__}, "name": ""})


@pytest.mark.parametrize("by", list(KEYS))
async def test_call_measures_match_an_independent_count(database: Database, by: str) -> None:
    records = mix()
    await database.calls.save(records)
    since, until = period(date(2026, 11, 9), date(2026, 11, 10), ZONE)
    rows = await call_statistics(database.engine, by, ZONE, since, until)
    in_period = [r for r in records if since.timestamp() <= r.arrived_at < until.timestamp()]  # type: ignore[union-attr]
    right = expected(in_period, KEYS[by])
    assert [r.key for r in rows] == sorted(k for k in right if k != "total") + ["total"] if by != "total" \
        else ["total"]
    assert {r.key: without_names(r) for r in rows} == right


async def test_the_known_answers(database: Database) -> None:
    """The mix's figures, counted by hand."""
    await database.calls.save(mix())
    since, until = period(date(2026, 11, 9), date(2026, 11, 10), ZONE)
    [total] = await call_statistics(database.engine, "total", ZONE, since, until)
    # asked: 1-8, 11, 12 (not 9: a notice; not 10: outbound; 13, 14 out of period); short: 4, 12
    assert (total.asked, total.short_abandons, total.offered) == (10, 2, 8)
    # answered 1, 2, 3, 8, 11; in 15 s: 1, 2, 8; abandoned: 5, 6, 7
    assert (total.answered, total.answered_in_15s, total.abandoned) == (5, 3, 3)
    assert (total.answer_rate_15s, total.answer_rate, total.abandon_rate) == (0.375, 0.625, 0.375)
    assert total.max_wait == 80.0
    assert total.avg_answer_wait == round((3 + 15 + 15.001 + 7 + 40) / 5, 1)
    assert total.avg_talk == 75.0  # 60, 120, 60, 60: 11's is unknown
    by_agent = {r.key: r for r in await call_statistics(database.engine, "agent", ZONE, since, until)}
    assert by_agent["PJSIP/agent1001"].name == "1001" and by_agent["PJSIP/agent1001"].answered == 2
    by_unit = {r.key: r for r in await call_statistics(database.engine, "unit", ZONE, since, until, unit="u-b")}
    assert set(by_unit) == {"u-b", "total"} and by_unit["u-b"].offered == 4 and by_unit["u-b"].name == "单位u-b"


async def test_nothing_to_count(database: Database) -> None:
    assert await call_statistics(database.engine, "day", ZONE) == [CallStatsRow("total")]
    assert [r.key for r in await case_statistics(database.engine, "day", ZONE, DAY1)] == ["total"]


def test_offsets_find_each_change_of_a_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    spans = offsets(berlin, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert [(at.astimezone(UTC).isoformat(), offset) for at, offset in spans] == [
        ("2026-01-01T00:00:00+00:00", 3600), ("2026-03-29T01:00:00+00:00", 7200),
        ("2026-10-25T01:00:00+00:00", 3600)]
    assert len(offsets(ZONE, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))) == 1


async def test_days_of_a_zone_with_summer_time(database: Database) -> None:
    """A call at 23:30 local on the last day of summer time and one just after midnight: their own days."""
    berlin = ZoneInfo("Europe/Berlin")
    records = [call(1, datetime(2026, 10, 24, 23, 30, tzinfo=berlin), answer=1.0, agent="a"),
               call(2, datetime(2026, 10, 25, 0, 10, tzinfo=berlin), answer=1.0, agent="a"),
               call(3, datetime(2026, 10, 25, 23, 50, tzinfo=berlin), answer=1.0, agent="a")]
    await database.calls.save(records)
    rows = await call_statistics(database.engine, "day", berlin)
    assert [(r.key, r.answered) for r in rows] == [("2026-10-24", 1), ("2026-10-25", 2), ("total", 3)]


# -- cases ---------------------------------------------------------------------------------------------------

async def cases_mix(database: Database) -> tuple[Any, Clock]:
    """Seven cases whose figures are known: see test_case_measures."""
    clock = Clock(datetime(2026, 11, 9, 10, 0, tzinfo=ZONE))
    cases = service(database, clock)
    new = dict(caller_number="13900000001", actor="1001", role="agent", legacy_number="12345")
    # 1: answered by 12345 itself, satisfied: first-call resolved
    one = await cases.open(category="consultation", content="公交", **new)
    await cases.act(one.id, "answer", {"reply": "已告知"}, "1001", "agent")
    await cases.act(one.id, "callback", {}, "cti", "system")
    await cases.act(one.id, "satisfaction", {"satisfaction": "1"}, "cti", "system")
    # 2: dispatched, signed, replied on time, basically satisfied
    two = await cases.open(category="complaint", content="噪音", unit="yanhu-district", **new)
    await cases.act(two.id, "sign", {}, "yanhu", "unit")
    await cases.act(two.id, "reply", {"reply": "已处理"}, "yanhu", "unit")
    await cases.act(two.id, "callback", {}, "cti", "system")
    await cases.act(two.id, "satisfaction", {"satisfaction": "2"}, "cti", "system")
    # 3: dispatched, returned by its unit, answered by 12345, unsatisfied, rehandled (accepted again)
    three = await cases.open(category="request", content="路灯", unit="yanhu-district", **new)
    await cases.act(three.id, "return", {"reason": "非本单位"}, "yanhu", "unit")
    await cases.act(three.id, "answer", {"reply": "已转告"}, "1001", "agent")
    await cases.act(three.id, "callback", {}, "cti", "system")
    await cases.act(three.id, "satisfaction", {"satisfaction": "3"}, "cti", "system")
    # 4: dispatched, still with the unit when its deadline passes: overdue
    four = await cases.open(category="complaint", content="占道", unit="yanhu-district", **new)
    # 5: a duplicate merged into 4: counts nowhere
    five = await cases.open(category="complaint", content="占道", **new)
    await cases.act(five.id, "merge", {"into": four.id}, "1001", "agent")
    # 6: callback unreachable: closed, no answer to the survey
    six = await cases.open(category="consultation", content="社保", **new)
    await cases.act(six.id, "answer", {"reply": "已告知"}, "1001", "agent")
    await cases.act(six.id, "callback", {}, "cti", "system")
    await cases.act(six.id, "unreachable", {}, "cti", "system")
    # 7: the next day, replied late by another unit
    clock.advance(days=1)
    seven = await cases.open(category="report", content="排污", unit="yanhu-district", **new)
    await cases.act(seven.id, "sign", {}, "yanhu", "unit")
    clock.advance(days=30)
    await cases.act(seven.id, "reply", {"reply": "已查处"}, "yanhu", "unit")
    await database.cases.add_missed(MissedCall("m.1", "13700000001", "", "12315", DAY1 + timedelta(hours=8), 30.0))
    await database.cases.add_missed(MissedCall("m.2", "13700000002", "", "12345", DAY1 + timedelta(hours=30), 9.0))
    await database.cases.resolve_missed("m.2", "called_back", "1001", clock())
    return cases, clock


async def test_case_measures(database: Database) -> None:
    cases, clock = await cases_mix(database)
    rows = await cases.statistics("day", date(2026, 11, 1), date(2026, 11, 30))
    assert [r.key for r in rows] == ["2026-11-09", "2026-11-10", "total"]
    total = rows[-1]
    # replied: 1, 6 (12345's answers: no deadline, on time), 2 (on time), 7 (late); 3 was reopened
    assert (total.cases, total.closed, total.replied, total.on_time) == (6, 3, 4, 3)
    assert total.on_time_rate == 0.75 and total.overdue == 2  # 7 replied late, 4 still out past its deadline
    assert (total.surveyed, total.satisfied, total.basically_satisfied, total.unsatisfied) == (3, 1, 1, 1)
    assert (total.unreachable, total.satisfaction_rate) == (1, 0.6667)
    # closed: 1, 2, 6; of these 1 and 6 answered by 12345 without dispatch or rehandling
    assert (total.first_call_resolved, total.first_call_rate) == (2, 0.6667)
    # dispatched: 2, 3 (returned since), 4, 7; returned: 3
    assert (total.dispatched, total.returned, total.return_rate) == (4, 1, 0.25)
    assert (total.rehandled, total.escalated, total.missed_calls, total.called_back) == (1, 0, 2, 1)
    assert (rows[0].cases, rows[0].missed_calls, rows[1].cases, rows[1].called_back) == (5, 1, 1, 1)
    by_unit = {r.key: r for r in await cases.statistics("unit", None, None)}
    assert (by_unit["12345"].cases, by_unit["yanhu-district"].cases) == (3, 3)
    assert by_unit["12345"].returned == 1 and by_unit["yanhu-district"].dispatched == 3
    assert by_unit["total"].missed_calls == 2
    own = await cases.statistics("category", None, None, unit="yanhu-district")
    assert [(r.key, r.cases) for r in own] == [("举报", 1), ("投诉", 2), ("total", 3)]
    assert own[-1].missed_calls == 0  # missed calls have no unit
    by_number = await cases.statistics("legacy_number", None, None)
    assert [(r.key, r.cases, r.missed_calls) for r in by_number] == [("12315", 0, 1), ("12345", 6, 1),
                                                                     ("total", 6, 2)]
    months = await cases.statistics("month", None, None)
    assert [(r.key, r.cases) for r in months] == [("2026-11", 6), ("total", 6)]


async def test_case_measures_equal_a_count_of_the_cases(database: Database) -> None:
    """Every group's figures equal those counted case by case from what the store gives back."""
    cases, clock = await cases_mix(database)
    everything = [c for c in await database.cases.find(limit=100) if c.state != "merged"]
    returned = {c.id for c in everything if any(e.action == "return" for e in await database.cases.events(c.id))}
    for by, key in (("unit", lambda c: c.unit or "12345"), ("category", lambda c: c.category)):
        rows = {r.key: r for r in await cases.statistics(by, None, None)}
        for name, group in _groups(everything, key).items():
            row = rows[name if by == "unit" else {"consultation": "咨询", "request": "求助", "complaint": "投诉",
                                                  "report": "举报"}[name]]
            closed = [c for c in group if c.state in ("closed", "archived")]
            assert row.cases == len(group)
            assert row.closed == len(closed)
            assert row.returned == sum(1 for c in group if c.id in returned)
            assert row.first_call_resolved == sum(1 for c in closed if c.dispatched_at is None and not c.rehandled
                                                  and c.id not in returned)
            assert row.satisfied + row.basically_satisfied == sum(1 for c in group if c.satisfaction in "12"
                                                                  and c.satisfaction)


def _groups(cases: list[Any], key: Any) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = defaultdict(list)
    for case in cases:
        groups[key(case)].append(case)
    return groups


# -- exports ---------------------------------------------------------------------------------------------------

async def test_exports_read_back(database: Database) -> None:
    cases, _ = await cases_mix(database)
    rows = await cases.statistics("unit", None, None)
    text = to_csv(rows, "unit", bom=True)
    assert text.startswith(BOM)
    table = list(csv.reader(io.StringIO(text.removeprefix(BOM))))
    assert table[0] == ["unit", *NAMES[1:]]
    assert [r[0] for r in table[1:]] == [r.key for r in rows]
    assert [int(x) for x in table[-1][1:4]] == [rows[-1].cases, rows[-1].closed, rows[-1].replied]
    assert table[-1][NAMES.index("on_time_rate")] == str(rows[-1].on_time_rate)
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(NAMES, rows, "unit", "cases by unit")))
    sheet = book.active
    assert sheet is not None
    read = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert read[0] == ["unit", *NAMES[1:]]
    assert read[1:] == [[getattr(r, n) for n in NAMES] for r in rows]
    assert isinstance(rows[-1], Row)


# -- the routes ------------------------------------------------------------------------------------------------

async def test_the_routes_scope_and_export(tmp_path: Path, database: Database) -> None:
    """GET /api/stats/calls: supervisors and admins see every call, an integrator its unit's, an agent or an
    integrator of no unit nothing; CSV and XLSX hold the JSON's figures."""
    records = [call(1, DAY1 + timedelta(hours=9), answer=3.0, agent="PJSIP/agent1001", unit="u-a"),
               call(2, DAY1 + timedelta(hours=9), wait=40.0, unit="u-a"),
               call(3, DAY1 + timedelta(hours=10), answer=20.0, agent="PJSIP/agent1002", unit="u-b")]
    await database.calls.save(records)
    async with running_desk(tmp_path, [], database) as desk:
        boss = await desk.user("boss", "supervisor")
        root = await desk.user("root", "admin")
        agent = await desk.user("1001", "agent", "1001")
        await desk.database.users.add("ua", "ua", "integrator", unit_id="u-a")
        own = await desk.database.users.issue_token("ua", "ua", None)
        await desk.database.users.add("crm", "crm", "integrator")
        loose = await desk.database.users.issue_token("crm", "crm", None)
        days = "from=2026-11-09&to=2026-11-09"
        for token in (boss, root):
            rows = await desk.request("GET", f"/api/stats/calls?by=unit&{days}", token)
            assert [(r["key"], r["offered"], r["answered"]) for r in rows] == [
                ("u-a", 2, 1), ("u-b", 1, 1), ("total", 3, 2)]
        mine = await desk.request("GET", f"/api/stats/calls?by=agent&{days}", own)
        assert [(r["key"], r["offered"]) for r in mine] == [("PJSIP/agent1001", 1), ("—", 1), ("total", 2)]
        await desk.request("GET", "/api/stats/calls", agent, expect=403)
        await desk.request("GET", "/api/stats/calls", loose, expect=403)
        await desk.request("GET", "/api/stats", agent, expect=403)
        hours = await desk.request("GET", f"/api/stats/calls?by=hour&{days}", boss)
        text = (await desk.request("GET", f"/api/stats/calls?by=hour&{days}&format=csv", boss)).decode("utf-8")
        assert text.startswith(BOM)
        table = list(csv.DictReader(io.StringIO(text.removeprefix(BOM))))
        assert [(r["hour"], int(r["offered"]), r["answer_rate_15s"]) for r in table] == [
            (r["key"], r["offered"], "" if r["answer_rate_15s"] is None else str(r["answer_rate_15s"])) for r in hours]
        book = openpyxl.load_workbook(io.BytesIO(await desk.request(
            "GET", f"/api/stats/calls?by=hour&{days}&format=xlsx", boss)))
        sheet = book.active
        assert sheet is not None
        header, *cells = [list(r) for r in sheet.iter_rows(values_only=True)]
        assert header[0] == "hour"
        read = [dict(zip(["key", *header[1:]], row, strict=True)) for row in cells]
        assert [{**r, "name": r["name"] or ""} for r in read] == hours  # an empty cell reads back as None
