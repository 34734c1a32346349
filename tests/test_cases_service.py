"""Cases at work on a real SQLite database, with the clock in the test's hands: a case
for every call, the missed-call list, deadline notices to the unit's webhook (a real
HTTP server), archiving, and what happens when a callback fails."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import datetime, timedelta
from typing import Any

import pytest

from cti.ami.message import AmiMessage
from cti.calls.events import RouteDecided
from cti.calls.record import CallRecord
from cti.cases.catalogue import HandlingUnit
from cti.cases.channels import is_reference
from cti.cases.model import Case, CaseError
from cti.cases.service import CaseService, case_json, mask
from cti.configuration import load_configuration
from cti.settings import Settings, WebhookSettings
from cti.store.database import Database
from cti.webhooks import WebhookSender
from tests.conftest import REPO_PATHS
from tests.fakeami import until

CONFIGURATION = load_configuration(Settings(paths=REPO_PATHS))
ZONE = CONFIGURATION.trunk_map.zone
MONDAY = datetime(2026, 11, 9, 10, 0, tzinfo=ZONE)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def service(database: Database, clock: Clock, webhook: str = "", sent: list | None = None) -> CaseService:
    catalogue = CONFIGURATION.catalogue
    if webhook:
        units = dict(catalogue.units)
        units["yanhu-district"] = HandlingUnit("yanhu-district", "盐湖区人民政府", webhook)
        catalogue = dataclasses.replace(catalogue, units=units)

    async def originate(action: dict[str, Any]) -> AmiMessage:
        assert sent is not None
        sent.append(action)
        return AmiMessage("response", "Success", {"response": "Success", "actionid": action["ActionID"]})

    return CaseService(database.cases, lambda: catalogue, ZONE, originate=originate if sent is not None else None,
                       clock=clock)


def record(linkedid: str, *, answered: bool, action: str = "queue", direction: str = "inbound") -> CallRecord:
    at = MONDAY.timestamp()
    timeline = (RouteDecided(linkedid, at, "12345", "", "", "hotline", action),)
    return CallRecord(linkedid=linkedid, direction=direction, caller_number="13800000001", caller_name="张伟",
                      dialled_number="12345", arrived_at=at, ended_at=at + 60, answered_at=at + 5 if answered else None,
                      answered_by="PJSIP/agent1001" if answered else "", answered_by_name="王芳" if answered else "",
                      queue_wait=5.0, timeline=timeline)


async def test_every_call_gets_a_case_or_goes_on_the_missed_list(sqlite_db: Database) -> None:
    cases = service(sqlite_db, Clock(MONDAY))
    await cases.on_calls_ended([record("1.1", answered=True), record("1.2", answered=False),
                                record("1.3", answered=False, action="retired_notice"),  # the notice served them
                                record("1.4", answered=False, action="guidance"),
                                record("1.5", answered=True, direction="outbound")])
    [auto] = await sqlite_db.cases.find()
    assert (auto.auto, auto.state, auto.caller_number, auto.legacy_number) == (True, "accepted", "13800000001",
                                                                               "12345")
    assert "王芳 接听" in auto.content
    assert await sqlite_db.cases.calls_of(auto.id) == ["1.1"]
    assert [m.linkedid for m in await sqlite_db.cases.missed()] == ["1.2"]
    await cases.on_calls_ended([record("1.1", answered=True), record("1.2", answered=False)])  # told twice
    assert len(await sqlite_db.cases.missed()) == 1
    assert len(await sqlite_db.cases.find()) == 1


async def test_the_agent_completes_the_case_cti_opened(sqlite_db: Database) -> None:
    cases = service(sqlite_db, Clock(MONDAY))
    await cases.on_calls_ended([record("2.1", answered=True)])
    [auto] = await sqlite_db.cases.find()
    done = await cases.update_details(auto.id, {"category": "complaint", "content": "夜间施工", "location": "盐湖区",
                                                "ignored": 1}, "1001", "agent")
    assert (done.category, done.content, done.location, done.auto) == ("complaint", "夜间施工", "盐湖区", False)
    with pytest.raises(CaseError, match="category must be one of"):
        await cases.update_details(auto.id, {"category": "gossip"}, "1001", "agent")
    with pytest.raises(CaseError, match="call 2.1 already belongs to case"):
        await cases.open(caller_number="1", category="request", content="x", actor="1001", role="agent",
                         linkedid="2.1")


async def test_deadline_notices_reach_the_units_webhook(sqlite_db: Database, unit_endpoint) -> None:
    url, received = unit_endpoint
    clock = Clock(MONDAY)
    webhooks = WebhookSender(sqlite_db.outbox, WebhookSettings(retry_min=0.05))
    webhooks.start()
    cases = service(sqlite_db, clock, webhook=url)
    case = await cases.open(caller_number="13800000003", category="consultation", content="办证需要什么材料",
                            actor="1001", role="agent", unit="yanhu-district", confidential=True)
    assert case.due_at == cases.calendar.due(MONDAY, 3)
    seen = []
    for _ in range(21 * 4):  # three weeks, four sweeps a day
        done = await cases.sweep()
        seen += [k for k, n in done.items() for _ in range(n)]
        clock.advance(hours=6)
    assert seen.count("remind") == 1 and seen.count("escalate") == 1 and seen.count("overdue") >= 3
    await until(lambda: len(received) == 1 + len(seen), what="every notice delivered")
    await webhooks.close()
    events = [body["event"] for body, _ in received]
    assert events[:3] == ["case.dispatch", "case.remind", "case.overdue"]
    body, headers = received[1]
    assert headers["X-CTI-Case"] == str(case.id) and headers["X-CTI-Event"] == "case.remind"
    assert headers["Idempotency-Key"] == f'"case.remind:{case.id}:{body["case"]["version"]}"'
    assert len({h["Idempotency-Key"] for _, h in received}) == len(received)  # one key per notice
    assert body["case"]["caller_number"] == mask("13800000003") == "138****0003"  # confidential: the unit sees less
    assert body["case"]["caller_name"] == ""
    stored = await sqlite_db.cases.get(case.id)
    assert stored is not None and stored.escalated_at is not None and stored.overdue_notices == seen.count("overdue")
    assert [c.id for c in await sqlite_db.cases.find(escalated=True)] == [case.id]


async def test_closed_cases_are_archived_by_the_sweep(sqlite_db: Database) -> None:
    clock = Clock(MONDAY)
    cases = service(sqlite_db, clock)
    case = await cases.open(caller_number="1", category="consultation", content="公交线路", actor="1001",
                            role="agent")
    for action, params in (("answer", {"reply": "已告知"}), ("callback", {}), ("satisfaction", {"satisfaction": "1"})):
        case = await cases.act(case.id, action, params, "1001", "agent")
    assert case.state == "closed"
    clock.advance(days=7)
    assert (await cases.sweep())["archive"] == 1
    assert (await sqlite_db.cases.get(case.id)).state == "archived"  # type: ignore[union-attr]


async def test_a_failed_callback_is_tried_again_then_left_to_an_agent(sqlite_db: Database) -> None:
    clock = Clock(MONDAY)
    sent: list[dict[str, Any]] = []
    cases = service(sqlite_db, clock, sent=sent)
    case = await cases.open(caller_number="13800000004", category="request", content="路灯不亮", actor="1001",
                            role="agent")
    await cases.act(case.id, "answer", {"reply": "已报修"}, "1001", "agent")
    rules = cases.catalogue.callback
    for attempt in range(1, rules.attempts + 1):
        assert (await cases.sweep())["callback"] == 1
        action = sent[-1]
        assert (action["Channel"], action["Context"], action["Exten"], action["Variable"]) == (
            "PJSIP/13800000004@carrier", "cti-survey", "13800000004", f"CTI_CASE={case.id}")
        cases.on_ami_message(AmiMessage("event", "OriginateResponse", {
            "event": "OriginateResponse", "actionid": action["ActionID"], "response": "Failure", "reason": "3"}))
        await failures_recorded(sqlite_db, case.id, attempt)
        assert (await cases.sweep())["callback"] == 0  # not before the retry time
        clock.advance(minutes=rules.retry_minutes)
    stored = await sqlite_db.cases.get(case.id)
    assert stored is not None and stored.state == "callback" and stored.callback_attempts == rules.attempts
    assert (await cases.sweep())["callback"] == 0
    assert [c.id for c in (await cases.tasks())["callbacks"]] == [case.id]  # an agent calls now
    failures = [e for e in await sqlite_db.cases.events(case.id) if e.action == "callback_failed"]
    assert [e.details["reason"] for e in failures] == ["no answer"] * rules.attempts


async def failures_recorded(database: Database, case_id: int, attempts: int) -> None:
    """OriginateResponse is handled in a task of its own: wait until its failure is in the timeline."""
    for _ in range(200):
        events = [e for e in await database.cases.events(case_id) if e.action == "callback_failed"]
        if len(events) == attempts:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the callback failure was not recorded")


async def test_the_survey_answer_closes_or_reopens_and_silence_is_a_failed_attempt(sqlite_db: Database) -> None:
    clock = Clock(MONDAY)
    cases = service(sqlite_db, clock, sent=[])
    one = await cases.open(caller_number="1", category="request", content="a", actor="1001", role="agent")
    two = await cases.open(caller_number="2", category="request", content="b", actor="1001", role="agent",
                           unit="yanhu-district")
    await cases.act(one.id, "answer", {"reply": "r"}, "1001", "agent")
    await cases.act(two.id, "sign", {}, "yanhu", "unit")
    await cases.act(two.id, "reply", {"reply": "r"}, "yanhu", "unit")
    await cases.sweep()
    await cases.survey_answered(one.id, {}, "5.1")  # the citizen pressed nothing
    assert (await sqlite_db.cases.get(one.id)).next_callback_at == MONDAY + timedelta(hours=1)  # type: ignore
    await cases.survey_answered(two.id, {"satisfaction": "3"}, "5.2")
    again = await sqlite_db.cases.get(two.id)
    assert again is not None and (again.state, again.rehandled) == ("dispatched", 1)
    assert case_json(again, ZONE)["state"] == "dispatched"


async def test_a_duplicate_is_merged_and_its_calls_follow(sqlite_db: Database) -> None:
    cases = service(sqlite_db, Clock(MONDAY))
    first = await cases.open(caller_number="1", category="complaint", content="噪音", actor="1001", role="agent",
                             linkedid="3.1", unit="yanhu-district")
    second = await cases.open(caller_number="2", category="complaint", content="同一工地噪音", actor="1002",
                              role="agent", linkedid="3.2")
    merged = await cases.act(second.id, "merge", {"into": first.id}, "1002", "agent")
    assert (merged.state, merged.merged_into) == ("merged", first.id)
    assert await sqlite_db.cases.calls_of(first.id) == ["3.1", "3.2"]
    with pytest.raises(CaseError, match="no case 'x' to merge into"):
        await cases.act(first.id, "merge", {"into": "x"}, "1001", "agent")


async def test_ended_calls_get_their_cases_in_batches(sqlite_db: Database) -> None:
    cases = service(sqlite_db, Clock(MONDAY))
    stop = asyncio.Event()
    intake = asyncio.create_task(cases.intake(stop, interval=0.05))
    desk = await cases.open(caller_number="1", category="request", content="desk's own", actor="1001",
                            role="agent", linkedid="4.1")  # the agent saved the form before the call ended
    for n in range(250):
        cases.call_ended(record(f"4.{n}", answered=n % 5 != 0))
    stop.set()
    await asyncio.wait_for(intake, 10)
    everything = await sqlite_db.cases.find(limit=1000)
    assert len(everything) == 200 and sum(1 for c in everything if c.auto) == 199
    assert await sqlite_db.cases.case_of_call("4.1") == desk.id
    assert len(await sqlite_db.cases.missed(limit=1000)) == 50


class Clashing(random.Random):
    """Case numbers drawn the same three times, then as usual."""

    def __init__(self) -> None:
        super().__init__(1)
        self.draws = [482_027, 482_027, 482_027]

    def randrange(self, *args: Any, **kwargs: Any) -> int:
        return self.draws.pop(0) if self.draws else super().randrange(*args, **kwargs)


async def test_the_cases_of_ended_calls_get_free_numbers_when_the_draws_clash(sqlite_db: Database) -> None:
    cases = service(sqlite_db, Clock(MONDAY))
    cases._rng = Clashing()
    await cases.on_calls_ended([record(f"9.{n}", answered=True) for n in range(3)])  # one batch, no retry
    numbers = [case.reference for case in await sqlite_db.cases.find()]
    assert len(numbers) == 3 and len(set(numbers)) == 3 and all(n and is_reference(n) for n in numbers)


async def test_a_batch_that_cannot_be_written_is_tried_again_not_dropped(sqlite_db: Database) -> None:
    cases = service(sqlite_db, Clock(MONDAY))
    real = sqlite_db.cases.open_for_calls
    refusals = []

    async def busy_once(*args: Any) -> int:
        if not refusals:
            refusals.append(1)
            raise RuntimeError("database is locked")
        return await real(*args)

    sqlite_db.cases.open_for_calls = busy_once  # type: ignore[method-assign]
    stop = asyncio.Event()
    intake = asyncio.create_task(cases.intake(stop, interval=0.01))
    cases.call_ended(record("5.1", answered=True))
    await until(lambda: cases.backlog == 0 and refusals, what="the batch taken")
    stop.set()
    await asyncio.wait_for(intake, 10)
    assert refusals == [1]
    assert await sqlite_db.cases.case_of_call("5.1") is not None


async def test_one_callback_attempt_at_a_time_and_the_next_after_the_last_ended(sqlite_db: Database) -> None:
    """The demo sweeps every 5 s: attempts went out 5 s apart and two survey calls to one citizen were up
    at once. An attempt in flight holds the next until it ends (its outcome) or, unheard of, for ten minutes."""
    clock = Clock(MONDAY)
    sent: list[dict[str, Any]] = []
    cases = service(sqlite_db, clock, sent=sent)
    rules = cases.catalogue.callback
    case = await cases.open(caller_number="13800000004", category="request", content="路灯不亮", actor="1001",
                            role="agent")
    await cases.act(case.id, "answer", {"reply": "已报修"}, "1001", "agent")
    assert (await cases.sweep())["callback"] == 1
    for _ in range(12):  # a minute of sweeps while the citizen's phone rings and the survey plays
        clock.advance(seconds=5)
        assert (await cases.sweep())["callback"] == 0
    assert len(sent) == 1
    clock.advance(seconds=40)  # it ends without an answer 100 s after it began
    cases.on_ami_message(AmiMessage("event", "OriginateResponse", {
        "event": "OriginateResponse", "actionid": sent[0]["ActionID"], "response": "Failure", "reason": "3"}))
    await failures_recorded(sqlite_db, case.id, 1)
    clock.advance(minutes=rules.retry_minutes, seconds=-1)
    assert (await cases.sweep())["callback"] == 0  # retry_minutes after the end, not after the start
    clock.advance(seconds=1)
    assert (await cases.sweep())["callback"] == 1 and len(sent) == 2
    clock.advance(minutes=10)  # this one's outcome is never heard (cti stopped meanwhile): tried again
    assert (await cases.sweep())["callback"] == 1 and len(sent) == 3


async def test_a_survey_answer_racing_another_change_is_not_lost(sqlite_db: Database,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Someone else saves the case between cti reading it and writing the answer: cti reads it again and
    writes the answer on what it is now; no traceback, nothing lost."""
    clock = Clock(MONDAY)
    cases = service(sqlite_db, clock, sent=[])
    case = await cases.open(caller_number="13800000005", category="request", content="井盖", actor="1001",
                            role="agent")
    await cases.act(case.id, "answer", {"reply": "已修复"}, "1001", "agent")
    await cases.sweep()
    real_save = sqlite_db.cases.save
    raced = []

    async def save_after_someone_else(before: Case, after: Case, event: Any, notices: Any = ()) -> Case:
        if not raced:  # an agent starts calling the citizen too, and saves first
            raced.append(True)
            await cases.act(case.id, "callback", {"how": "agent", "note": "市民来电催问"}, "1001", "agent")
        return await real_save(before, after, event, notices)

    sqlite_db.cases.save = save_after_someone_else  # type: ignore[method-assign]
    try:
        await cases.survey_answered(case.id, {"satisfaction": "1"}, "7.1")
    finally:
        sqlite_db.cases.save = real_save  # type: ignore[method-assign]
    done = await sqlite_db.cases.get(case.id)
    assert done is not None and (done.state, done.satisfaction) == ("closed", "1")
    assert [e.action for e in await sqlite_db.cases.events(case.id)][-2:] == ["callback", "satisfaction"]
    assert "Traceback" not in caplog.text
