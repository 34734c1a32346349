"""Hotspots and risk alerts (cti.hotspots): each detector on hand-made data whose answer is known, the topic
words of real-looking complaints, alerts raised once and cleared, their webhook message and WebSocket message."""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from cti import bus
from cti.calls.record import CallRecord
from cti.cases.catalogue import AlertRules
from cti.cases.model import Case, CaseEvent
from cti.hotspots import queries
from cti.hotspots.detect import (
    BURST_CASE_IDS,
    Alert,
    AlertBook,
    BurstRules,
    RecentCase,
    SpikeRules,
    binomial_tail,
    bursts,
    spike_p_value,
    spikes,
)
from cti.hotspots.service import HotspotService
from cti.hotspots.text import NO_PLACE, district, topic_words
from cti.store.database import Database
from cti.store.models import CaseCallRow
from tests.contract import Contract

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)  # 14:00 in Yuncheng, a Thursday


# -- text -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("location", "place"), [
    ("山西省运城市盐湖区北城街道解放路12号", "盐湖区"), ("盐湖区", "盐湖区"), ("临猗县临晋镇", "临猗县"),
    ("运城市永济市城西街道", "永济市"), ("永济市城西街道", "永济市"), ("盐湖区家乐福超市门口", "盐湖区"),
    ("解放路", NO_PLACE), ("北城街道幸福小区", NO_PLACE), ("", NO_PLACE)])
def test_the_district_of_a_location(location: str, place: str) -> None:
    assert district(location) == place


@pytest.mark.parametrize(("content", "words"), [
    ("盐湖区解放路自来水管道爆管，整个小区停水了", {"爆管", "停水", "自来水", "管道"}),
    ("我家从早上开始停水，希望尽快恢复供水", {"停水", "供水"}),
    ("北城街道突然停电，家里没电已经两个小时", {"停电"}),
    ("小区楼下夜间施工噪音扰民，从晚上十点一直到凌晨", {"施工", "噪音", "扰民"}),
    ("供暖温度不达标，暖气不热", {"供暖", "暖气", "温度"}),
])
def test_topic_words_of_complaints(content: str, words: set[str]) -> None:
    found = topic_words(content)
    assert words <= set(found), found
    assert not set(found) & {"希望", "已经", "小区", "整个", "突然", "家里", "两个", "小时"}, found


# -- the spike test ---------------------------------------------------------------------------------------


def test_the_binomial_tail_is_exact() -> None:
    assert binomial_tail(0, 5, 0.5) == 1.0
    assert binomial_tail(6, 5, 0.5) == 0.0
    assert binomial_tail(5, 5, 0.5) == pytest.approx(1 / 32)
    assert binomial_tail(4, 5, 0.5) == pytest.approx(6 / 32)
    assert binomial_tail(2, 10, 0.1) == pytest.approx(1 - 0.9 ** 10 - 10 * 0.1 * 0.9 ** 9)


def test_a_spike_and_no_spike_at_normal_variation() -> None:
    rules = SpikeRules(weeks=8, p_value=0.001, min_count=5)
    # a quiet place: 1 complaint in 8 weeks, 12 today; a busy one: 10 a day usually, 15 today (sd about 3)
    cells = {("complaint", "盐湖区"): (12, 1), ("complaint", "永济市"): (15, 80), ("request", "临猗县"): (4, 0)}
    found = spikes(cells, rules, NOW, what="工单", names={"complaint": "投诉", "request": "求助"})
    assert [(d.kind, d.details["place"], d.details["count"]) for d in found] == [("spike", "盐湖区", 12)]
    assert found[0].details["expected"] == 0.12 and found[0].details["p_value"] < 1e-9
    assert "盐湖区投诉工单突增" in found[0].title
    # the same busy place at 25: a spike (p about 1e-5)
    assert spike_p_value(25, 80, 8) < 0.001 < spike_p_value(15, 80, 8)
    # below min_count nothing is raised, however quiet the place (4 where there was none: p = 9^-4 < 0.001)
    assert spike_p_value(4, 0, 8) < 0.001


def test_normal_poisson_days_rarely_raise_a_spike() -> None:
    """Over 2,000 simulated cells whose rate does not change, at the default threshold: false alarms are rare
    (at most the test's level, 0.1 %, with sampling slack)."""
    rng = random.Random(7)
    rules = SpikeRules()

    def poisson(rate: float) -> int:
        count, total = 0, rng.expovariate(1)
        while total < rate:
            count += 1
            total += rng.expovariate(1)
        return count

    cells = {}
    for i in range(2000):
        rate = rng.choice((0.5, 2.0, 6.0, 20.0))
        cells[("complaint", f"地{i}")] = (poisson(rate), sum(poisson(rate) for _ in range(rules.weeks)))
    assert len(spikes(cells, rules, NOW, what="工单")) <= 5


# -- bursts -------------------------------------------------------------------------------------------------

def recent(i: int, caller: str, place: str, content: str, minutes: int = 0) -> RecentCase:
    return RecentCase(i, caller, place, "request", NOW - timedelta(minutes=minutes), tuple(topic_words(content)))


def test_a_blackouts_burst_names_its_first_cases_and_its_alert_fits_a_message_between_instances() -> None:
    cases = [recent(100_000 + i, f"138{i:08d}", "盐湖区", "突然停电了，整栋楼没有电", i % 60) for i in range(2000)]
    [burst] = bursts(cases, BurstRules())
    assert burst.details["cases"] == 2000 and burst.details["callers"] == 2000
    assert burst.details["case_ids"] == list(range(100_000, 100_000 + BURST_CASE_IDS))
    message = Alert(burst.id, burst, NOW, NOW).message("raised", NOW)
    assert len(bus.encode("vm:1:ab", "alert", message).encode()) <= bus.LIMIT


def test_a_burst_within_an_hour() -> None:
    cases = [
        recent(1, "13800000001", "盐湖区", "解放路自来水管道爆管，水流到路上", 50),
        recent(2, "13800000002", "盐湖区", "我们小区突然停水了，听说是爆管", 40),
        recent(3, "13800000003", "盐湖区", "解放路爆管，家里停水", 30),
        recent(4, "13800000003", "盐湖区", "还是停水，什么时候来水", 5),  # the same caller again: still 3 callers
        recent(5, "13800000004", "盐湖区", "夜间施工噪音扰民", 20),
        recent(6, "13800000005", "永济市", "停水了", 20),  # another district
        recent(7, "13800000006", "盐湖区", "停电了", 10),
        recent(8, "13800000007", "盐湖区", "突然停电", 10),
    ]
    found = bursts(cases, BurstRules(callers=3))
    assert len(found) == 1
    burst = found[0]
    assert burst.details["place"] == "盐湖区" and burst.details["callers"] == 3
    assert burst.details["case_ids"] == [1, 2, 3, 4]
    assert {"爆管", "停水"} <= set(burst.details["words"])
    assert "停水" in burst.title and burst.since == NOW - timedelta(minutes=50)
    # two more callers without power: a second burst in the same district
    more = cases + [recent(9, "13800000008", "盐湖区", "停电，没有电", 3)]
    two = bursts(more, BurstRules(callers=3))
    assert [("爆管" in d.details["words"], "停电" in d.details["words"]) for d in two] == [(True, False), (False, True)]


def test_scattered_complaints_are_no_burst() -> None:
    cases = [recent(i, f"1380000000{i}", "盐湖区", text) for i, text in enumerate(
        ["停水了", "路灯不亮", "夜间施工噪音", "咨询社保卡补办", "井盖丢失", "停电了"])]
    assert bursts(cases, BurstRules(callers=3)) == []


# -- in the database ----------------------------------------------------------------------------------------

def a_case(created_at: datetime, caller: str, content: str, location: str, category: str = "complaint",
           unit: str = "") -> tuple[Case, CaseEvent]:
    case = Case(id=0, caller_number=caller, caller_name="", category=category, content=content,
                created_at=created_at, created_by="1001", location=location, unit=unit)
    return case, CaseEvent(0, created_at, "1001", "agent", "create", "", "accepted")


async def add_call(database: Database, linkedid: str, caller: str, at: datetime, unit: str = "") -> None:
    t = at.timestamp()
    await database.calls.save([CallRecord(linkedid, "inbound", caller, "", "12345", t, t + 60, unit=unit,
                                          unit_id=unit, queue="hotline")])


async def test_a_sweep_segments_each_recent_case_once_off_the_event_loop_and_reads_the_newest(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """jieba takes about half a millisecond a case: a busy hour's thousands, segmented on the event loop each
    minute, held the wallboard for seconds (bench/wallboard.py at 100 arrivals/s)."""
    segmented: list[tuple[str, bool]] = []
    loop_thread = threading.get_ident()

    def counting(content: str) -> list[str]:
        segmented.append((content, threading.get_ident() == loop_thread))
        return topic_words(content)

    monkeypatch.setattr(queries, "topic_words", counting)
    monkeypatch.setattr(queries, "RECENT_CASES", 3)
    made = [await database.cases.create(*a_case(NOW - timedelta(minutes=50 - i), f"1380000{i:04}", f"停水第{i}天",
                                                "盐湖区")) for i in range(4)]
    words = queries.TopicWords()
    since = NOW - timedelta(hours=1)
    recent = await queries.recent_cases(database.engine, since, words)
    assert [c.id for c in recent] == [c.id for c in made[1:]]  # the newest 3, oldest first
    assert "停水" in recent[0].words
    assert sorted(content for content, _ in segmented) == ["停水第1天", "停水第2天", "停水第3天"]
    assert not any(on_loop for _, on_loop in segmented)
    segmented.clear()
    await database.cases.save(made[3], dataclasses.replace(made[3], content="停电了", version=made[3].version + 1),
                              CaseEvent(made[3].id, NOW, "1001", "agent", "edit", "accepted", "accepted"))
    again = await queries.recent_cases(database.engine, since, words)
    assert [content for content, _ in segmented] == ["停电了"]  # only the edited case again
    assert "停电" in again[-1].words
    later = await queries.recent_cases(database.engine, NOW - timedelta(minutes=48), words)  # an hour on
    assert [c.id for c in later] == [c.id for c in made[2:]]
    assert set(words._known) == {c.id for c in made[2:]}  # the ones out of the window forgotten


async def test_the_detectors_on_the_database(database: Database) -> None:
    # the baseline: one water complaint in 盐湖区 on each of the 8 Thursdays before, at noon
    for week in range(1, 9):
        await database.cases.create(*a_case(NOW - timedelta(days=7 * week, hours=2), f"1390000{week:04}",
                                            "停水", "盐湖区"))
    # today: 9 complaints in 盐湖区 (6 of them in the last hour about a burst main), one elsewhere
    for i in range(9):
        minutes = 30 + i if i < 6 else 300 + i
        content = "解放路爆管了，家里停水" if i < 6 else "夜间施工噪音"
        await database.cases.create(*a_case(NOW - timedelta(minutes=minutes), f"1380000{i:04}", content,
                                            "运城市盐湖区解放路"))
    await database.cases.create(*a_case(NOW - timedelta(hours=1), "13700000000", "路灯不亮", "永济市"))
    # a caller calling four times in a day about one case
    repeated, _ = a_case(NOW - timedelta(days=1), "13912345678", "噪音扰民", "临猗县")
    repeated = await database.cases.create(repeated, _)
    for i in range(4):
        await add_call(database, f"17952000{i}.1", "13912345678", NOW - timedelta(hours=20 - i))
    async with database.engine.begin() as connection:
        await connection.execute(insert(CaseCallRow), [
            {"linkedid": f"17952000{i}.1", "case_id": repeated.id, "linked_at": NOW} for i in range(3)])
    await add_call(database, "1795200099.1", "13800000099", NOW - timedelta(hours=2))

    cells = await queries.case_cells(database.engine, NOW, timedelta(hours=24), 8)
    assert cells[("complaint", "盐湖区")] == (9, 8)
    assert cells[("complaint", "永济市")] == (1, 0)
    callers = await queries.repeat_callers(database.engine, NOW - timedelta(hours=72), 3)
    assert [(c.caller_number, c.calls, c.case_id, c.linked) for c in callers] == [
        ("13912345678", 4, repeated.id, 3)]

    outbox_url = "https://alerts.example.cn/hook"
    seen: list[dict[str, Any]] = []
    clock = [NOW]
    service = HotspotService(database.engine, database.outbox, lambda: AlertRules(webhook=outbox_url), ZONE,
                             notify=seen.append, clock=lambda: clock[0])
    raised, cleared = await service.sweep()
    kinds = sorted(a.detection.kind for a in raised)
    assert kinds == ["burst", "repeat_caller", "spike"] and cleared == []
    spike = next(a.detection for a in raised if a.detection.kind == "spike")
    assert spike.details["place"] == "盐湖区" and spike.details["count"] == 9 and spike.details["expected"] == 1
    burst = next(a.detection for a in raised if a.detection.kind == "burst")
    assert burst.details["callers"] == 6 and {"爆管", "停水"} <= set(burst.details["words"])
    repeat = next(a.detection for a in raised if a.detection.kind == "repeat_caller")
    assert repeat.details["caller_number"] == "139****5678" and "13912345678" not in repeat.title
    assert repeat.details["case_id"] == repeated.id

    # the WebSocket's messages: one per alert, as the document says
    contract = Contract()
    assert [m["state"] for m in seen] == ["raised"] * 3
    for m in seen:
        contract.component("WsAlert", m)
        contract.component("WsServerMessage", m)
    # the webhook: in the outbox, one per alert
    pending = await database.outbox.messages(state="pending")
    assert sorted(m.event for m in pending) == ["alert.raised"] * 3
    body = json.loads(next(m for m in pending if "burst" in m.key).body)
    assert body["event"] == "alert.raised" and body["alert"]["kind"] == "burst"
    contract.component("AlertWebhook", body)
    assert {m.destination for m in pending} == {outbox_url}

    # a minute later nothing changed: nothing is sent again
    clock[0] = NOW + timedelta(minutes=1)
    assert await service.sweep() == ([], [])
    assert len(seen) == 3 and len(await database.outbox.messages(state="pending")) == 3
    assert len(service.current()) == 3

    # the burst's cases were 30 to 35 minutes old: it is still found at +20 min, no longer at +29 (two of them
    # left in the hour), yet cleared only once unseen for clear_after (10 min), at +31
    clock[0] = NOW + timedelta(minutes=20)
    assert await service.sweep() == ([], [])
    clock[0] = NOW + timedelta(minutes=29)
    assert await service.sweep() == ([], [])
    clock[0] = NOW + timedelta(minutes=31)
    raised, cleared = await service.sweep()
    assert [a.detection.kind for a in cleared] == ["burst"]
    assert seen[-1]["state"] == "cleared" and seen[-1]["kind"] == "burst"
    contract.component("WsAlert", seen[-1])
    events = sorted(m.event for m in await database.outbox.messages(state="pending"))
    assert events == ["alert.cleared"] + ["alert.raised"] * 3

    # a restart: the alerts in force are read back, none is raised again on the desks or the webhook, and the
    # desks' list holds them as before
    again_seen: list[dict[str, Any]] = []
    again = HotspotService(database.engine, database.outbox, lambda: AlertRules(webhook=outbox_url), ZONE,
                           notify=again_seen.append, clock=lambda: clock[0])
    assert await again.sweep() == ([], []) and again_seen == []
    assert len(await database.outbox.messages(state="pending")) == 4
    assert sorted(a["kind"] for a in again.current()) == ["repeat_caller", "spike"]
    assert {a["id"]: a["details"]["raised_at"] for a in again.current()} == {
        a["id"]: a["details"]["raised_at"] for a in service.current()}

    # a unit's view: its own cases only (none of these are dispatched)
    assert await service.detect(clock[0], unit="yuncheng-water") == []


def test_an_alert_is_raised_once_and_cleared_once() -> None:
    from cti.hotspots.detect import Detection

    detection = Detection("burst", "burst|盐湖区|停水", "warning", "停水", {"place": "盐湖区"}, NOW)
    book = AlertBook(clear_after=timedelta(minutes=10))
    assert [a.id for a in book.update([detection], NOW)[0]] == [detection.id]
    for minute in range(1, 6):
        assert book.update([detection], NOW + timedelta(minutes=minute)) == ([], [])
    assert book.update([], NOW + timedelta(minutes=10)) == ([], [])  # 5 minutes unseen
    raised, cleared = book.update([], NOW + timedelta(minutes=15))
    assert raised == [] and [a.id for a in cleared] == [detection.id]
    assert book.current() == []
    # a burst whose leading word changes as callers come is the same alert
    first = Detection("burst", "burst|盐湖区|爆管", "warning", "爆管",
                      {"place": "盐湖区", "words": ["爆管", "停水"]}, NOW)
    later = Detection("burst", "burst|盐湖区|停水", "warning", "停水",
                      {"place": "盐湖区", "words": ["停水", "爆管"]}, NOW)
    assert len(book.update([first], NOW)[0]) == 1
    assert book.update([later], NOW + timedelta(minutes=1)) == ([], [])
    assert [a.id for a in book.current()] == [first.id] and book.current()[0].detection is later


async def test_an_alert_cleared_then_found_again_is_raised_anew(database: Database) -> None:
    """The store keeps one row per alert: cleared, then raised again, it is in force again from its new raising
    (and its webhook key, which holds that moment, is news)."""
    from cti.hotspots.detect import Alert, Detection
    from cti.store.alerts import AlertStore

    store = AlertStore(database.engine, database.outbox)
    detection = Detection("burst", "burst|盐湖区|停水", "warning", "停水", {"place": "盐湖区", "callers": 3}, NOW)
    first = Alert(detection.id, detection, NOW, NOW)
    await store.save([first], [], [], [], NOW)
    assert [(a.id, a.raised_at, a.detection.details["callers"]) for a in await store.in_force()] == [
        (detection.id, NOW, 3)]
    await store.save([], [], [first], [], NOW + timedelta(minutes=20))
    assert await store.in_force() == []
    later = NOW + timedelta(hours=2)
    await store.save([Alert(detection.id, detection, later, later)], [], [], [], later)
    assert [(a.id, a.raised_at) for a in await store.in_force()] == [(detection.id, later)]
