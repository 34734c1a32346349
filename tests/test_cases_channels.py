"""Cases from SMS and the web (cti.cases.channels), on SQLite and PostgreSQL: the case number to quote, an SMS
made a case once however often reported, its receipt and survey SMS in the outbox, the same deadlines as a call's,
the SMS survey's answer, the 3-minute answer measure against known answers (the tallies and the SQL alike), and a
database made before the channel column upgraded."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, inspect

from cti.cases.channels import (
    InboundSms,
    inbound,
    is_reference,
    luhn_digit,
    new_reference,
    signature,
    signature_problem,
    survey_answer,
)
from cti.cases.service import CaseService
from cti.settings import SmsSettings
from cti.stats.cases import case_statistics
from cti.store import migrations
from cti.store.database import Database
from tests.test_cases_service import CONFIGURATION, MONDAY, ZONE, Clock
from tests.test_migrations import emptied, load_release_0_1_0

GATEWAY = "https://sms:s3cret@gateway.example.cn/send"
UNIT = "yanhu-district"


def sms_service(database: Database, clock: Clock, *, survey: bool = False, sent: list[Any] | None = None
                ) -> CaseService:
    catalogue = CONFIGURATION.catalogue
    if survey:
        catalogue = dataclasses.replace(catalogue, callback=dataclasses.replace(catalogue.callback, sms="survey"))

    async def originate(action: dict[str, Any]) -> Any:
        assert sent is not None
        sent.append(action)
        return None

    return CaseService(database.cases, lambda: catalogue, ZONE, clock=clock, sms=SmsSettings(gateway=GATEWAY),
                       originate=originate if sent is not None else None)


def text_from(number: str, text: str, message_id: str, at: datetime = MONDAY) -> InboundSms:
    return InboundSms(message_id, number, "12345", text, at)


async def outbox(database: Database) -> list[dict[str, Any]]:
    return [json.loads(m.body) | {"_key": m.key, "_to": m.destination, "_unit": m.unit}
            for m in await database.outbox.messages(state="pending")]


# -- pure ---------------------------------------------------------------------------------------------

def test_the_case_number_has_a_check_digit_and_says_nothing_of_counts() -> None:
    rng = random.Random(1)
    numbers = [new_reference(date(2026, 12, 1), rng) for _ in range(200)]
    assert all(n.startswith("20261201-") and len(n) == 16 and is_reference(n) for n in numbers)
    assert len(set(numbers)) == 200 and sorted(numbers) != numbers  # drawn, not counted
    assert luhn_digit("7992739871") == "3"  # the Luhn example
    one = numbers[0]
    misheard = one[:-2] + str((int(one[-2]) + 1) % 10) + one[-1]  # one digit wrong
    assert not is_reference(misheard) and not is_reference("20261201-123") and not is_reference("x")


def test_the_signature_and_its_window() -> None:
    body = b'{"message_id": "m1"}'
    good = signature("k", "1000", body)
    assert good.startswith("sha256=") and signature_problem("k", "1000", good, body, 1000.0, 300) is None
    assert signature_problem("k", "1000", good, body + b" ", 1000.0, 300) == "the signature does not match the body"
    assert signature_problem("other", "1000", good, body, 1000.0, 300) == "the signature does not match the body"
    assert "more than 300 s away" in (signature_problem("k", "1000", good, body, 1301.0, 300) or "")
    assert signature_problem("k", None, good, body, 1000.0, 300) is not None
    assert signature_problem("k", "-5", good, body, 1000.0, 300) == "X-CTI-Timestamp must be Unix seconds"


def test_the_payload_and_a_survey_reply() -> None:
    fields = {"message_id": "m1", "from": "13800000001", "to": "12345", "text": " 路灯不亮 ",
              "received_at": "2026-11-09T02:00:00Z"}
    sms = inbound(fields)
    assert isinstance(sms, InboundSms) and sms.text == "路灯不亮" and sms.received_at.tzinfo is not None
    assert inbound(fields | {"received_at": "2026-11-09 10:00"}) == "received_at"  # no offset
    assert inbound(fields | {"received_at": "yesterday"}) == "received_at"
    assert inbound(fields | {"text": "  "}) == "text"
    assert [survey_answer(t) for t in ("1", " ２ ", "3。", "1 满意", "4", "")] == ["1", "2", "3", None, None, None]


# -- the store and the service ----------------------------------------------------------------------------

async def test_an_sms_becomes_a_case_once_with_its_receipt(database: Database) -> None:
    clock = Clock(MONDAY)
    cases = sms_service(database, clock)
    outcome, case = await cases.sms_received(text_from("13800000001", "小区路灯坏了一周", "gw-1"))
    assert outcome == "case" and case is not None
    assert (case.channel, case.content, case.caller_number, case.state, case.auto, case.taken_at) == (
        "sms", "小区路灯坏了一周", "13800000001", "accepted", True, None)
    assert case.reference and is_reference(case.reference) and case.reference.startswith("20261109-")
    again, same = await cases.sms_received(text_from("13800000001", "小区路灯坏了一周", "gw-1"))
    assert again == "seen" and same is not None and same.id == case.id
    assert len(await database.cases.find()) == 1
    [receipt] = await outbox(database)
    assert receipt == {"event": "sms.send", "kind": "receipt", "to": "13800000001", "from": "12345",
                       "text": receipt["text"], "reference": case.reference, "key": f"sms.receipt:{case.reference}",
                       "_key": f"sms.receipt:{case.reference}", "_to": GATEWAY, "_unit": "sms-gateway"}
    assert case.reference in receipt["text"] and "路灯" not in receipt["text"]
    assert [c.id for c in await database.cases.find(reference=case.reference)] == [case.id]
    assert [c.id for c in await database.cases.find(channels=["sms"])] == [case.id]
    assert await database.cases.find(channels=["web"]) == []


async def test_the_same_deadlines_and_dispatch_as_a_call(database: Database) -> None:
    clock = Clock(MONDAY)
    cases = sms_service(database, clock)
    _, by_sms = await cases.sms_received(text_from("13800000002", "噪音扰民", "gw-2"))
    by_web = await cases.web_request(caller_number="13800000003", caller_name="李", category="complaint",
                                     content="噪音扰民", location="兰山区", confidential=False)
    by_phone = await cases.open(caller_number="13800000004", category="complaint", content="噪音扰民",
                                actor="1001", role="agent")
    assert by_sms is not None and by_web.channel == "web" and by_phone.channel == "phone"
    assert by_phone.taken_at == MONDAY and by_phone.reference  # an agent opening a case has answered it
    clock.advance(minutes=2)
    by_sms = await cases.update_details(by_sms.id, {"category": "complaint"}, "1002", "agent")
    assert by_sms.taken_at == clock() and by_sms.taken_by == "1002"
    dispatched = [await cases.act(c.id, "dispatch", {"unit": UNIT}, "1002", "agent")
                  for c in (by_sms, by_web, by_phone)]
    assert {c.due_at for c in dispatched} == {cases.calendar.due(clock(), 7)}
    assert {c.state for c in dispatched} == {"dispatched"}
    assert dispatched[1].taken_at == clock()  # the web case's answer: its dispatch, the first person's step


async def test_the_callback_of_an_sms_case_is_a_call_by_default(database: Database) -> None:
    sent: list[Any] = []
    clock = Clock(MONDAY)
    cases = sms_service(database, clock, sent=sent)
    _, case = await cases.sms_received(text_from("13800000005", "咨询社保", "gw-5"))
    assert case is not None
    await cases.act(case.id, "answer", {"reply": "已答复"}, "1001", "agent")
    assert (await cases.sweep())["callback"] == 1
    assert [a["Action"] for a in sent] == ["Originate"] and sent[0]["Exten"] == "13800000005"
    assert [m["kind"] for m in await outbox(database)] == ["receipt"]  # no survey SMS


async def test_the_sms_survey_and_its_answer(database: Database) -> None:
    clock = Clock(MONDAY)
    cases = sms_service(database, clock, survey=True, sent=[])
    _, case = await cases.sms_received(text_from("13800000006", "路面塌陷", "gw-6"))
    _, other = await cases.sms_received(text_from("13800000007", "井盖丢失", "gw-7"))
    assert case is not None and other is not None
    for c in (case, other):
        await cases.act(c.id, "dispatch", {"unit": UNIT}, "1001", "agent")
        await cases.act(c.id, "sign", {}, UNIT, "unit")
        await cases.act(c.id, "reply", {"reply": "已修复"}, UNIT, "unit")
    assert (await cases.sweep())["callback"] == 2
    surveys = [m for m in await outbox(database) if m["kind"] == "survey"]
    assert {m["to"] for m in surveys} == {"13800000006", "13800000007"}
    assert all("回复数字" in m["text"] and m["_key"].startswith("sms.survey:") for m in surveys)
    assert (await cases.sweep())["callback"] == 0  # the reply is waited for (callback.sms_reply_hours)
    outcome, closed = await cases.sms_received(text_from("13800000006", "1", "gw-8"))
    assert outcome == "survey" and closed is not None and (closed.id, closed.state, closed.satisfaction) == (
        case.id, "closed", "1")
    assert await cases.sms_received(text_from("13800000006", "1", "gw-8")) == ("seen", closed)
    outcome, again = await cases.sms_received(text_from("13800000007", "３", "gw-9"))  # unsatisfied: handled again
    assert outcome == "survey" and again is not None and (again.state, again.unit, again.rehandled) == (
        "dispatched", UNIT, 1)
    outcome, new = await cases.sms_received(text_from("13800000006", "2", "gw-10"))  # no survey pending: a case
    assert outcome == "case" and new is not None and new.content == "2"
    assert len(await database.cases.find()) == 3


async def test_an_sms_survey_unanswered_is_sent_again_then_left_to_an_agent(database: Database) -> None:
    clock = Clock(MONDAY)
    cases = sms_service(database, clock, survey=True, sent=[])
    _, case = await cases.sms_received(text_from("13800000008", "咨询", "gw-11"))
    assert case is not None
    await cases.act(case.id, "answer", {"reply": "已答复"}, "1001", "agent")
    for _ in range(3):
        assert (await cases.sweep())["callback"] == 1
        clock.advance(hours=24)
    assert (await cases.sweep())["callback"] == 0
    assert len([m for m in await outbox(database) if m["kind"] == "survey"]) == 3
    assert [c.id for c in (await cases.tasks())["callbacks"]] == [case.id]


async def test_the_requests_no_person_took_are_the_agents_tasks(database: Database) -> None:
    clock = Clock(MONDAY)
    cases = sms_service(database, clock)
    _, first = await cases.sms_received(text_from("13800000009", "第一条", "gw-12"))
    clock.advance(minutes=1)
    second = await cases.web_request(caller_number="13800000010", caller_name="", category="request",
                                     content="第二条", location="", confidential=False)
    assert first is not None
    assert [c.id for c in (await cases.tasks())["requests"]] == [first.id, second.id]  # the longest waiting first
    taken = await cases.act(first.id, "take", {}, "1001", "agent")
    assert (taken.state, taken.taken_by) == ("accepted", "1001")
    assert [c.id for c in (await cases.tasks())["requests"]] == [second.id]


# -- answered within 3 minutes ---------------------------------------------------------------------------

async def test_answered_within_three_minutes_by_channel(database: Database) -> None:
    """Known answers: SMS taken after 179.999 s, 180.000 s (in time), 180.001 s (late) and never; web taken after
    10 s and one taken by cti only (no person); a call. The receipt SMS is no answer."""
    clock = Clock(MONDAY)
    cases = sms_service(database, clock)
    for n, after in enumerate((179.999, 180.0, 180.001, None)):
        clock.at = MONDAY + timedelta(hours=n)
        _, case = await cases.sms_received(text_from(f"1380000010{n}", f"短信{n}", f"gw-t{n}"))
        assert case is not None
        if after is not None:
            clock.advance(seconds=after)
            await cases.act(case.id, "take", {}, "1001", "agent")
    clock.at = MONDAY + timedelta(hours=5)
    web = await cases.web_request(caller_number="13800000200", caller_name="", category="request", content="网页1",
                                  location="", confidential=False)
    clock.advance(seconds=10)
    await cases.act(web.id, "dispatch", {"unit": UNIT}, "9001", "supervisor")
    untouched = await cases.web_request(caller_number="13800000201", caller_name="", category="request",
                                        content="网页2", location="", confidential=False)
    await cases.act(untouched.id, "merge", {"into": web.id}, "9001", "supervisor")  # a merged one counts in web's
    await cases.web_request(caller_number="13800000202", caller_name="", category="request", content="网页3",
                            location="", confidential=False)
    await cases.open(caller_number="13800000300", category="request", content="电话", actor="1001", role="agent")
    now = MONDAY + timedelta(days=1)
    day = (datetime(2026, 11, 9, tzinfo=ZONE), datetime(2026, 11, 10, tzinfo=ZONE))
    for since, until in ((None, None), day):
        tallied = await case_statistics(database.engine, "channel", ZONE, now, since, until)
        counted = await case_statistics(database.engine, "channel", ZONE, now, since, until, use_tallies=False)
        assert tallied == counted
        rows = {r.key: (r.cases, r.media_cases, r.answered_3min, r.answer_3min_rate) for r in counted}
        assert rows == {"短信": (4, 4, 2, 0.5), "网页": (2, 2, 1, 0.5), "电话": (1, 0, 0, None),
                        "total": (7, 6, 3, 0.5)}
        for by in ("unit", "day", "category"):  # every grouping carries the measure, from the tallies as counted
            tallied = await case_statistics(database.engine, by, ZONE, now, *day)
            assert tallied == await case_statistics(database.engine, by, ZONE, now, *day, use_tallies=False)
            assert (tallied[-1].media_cases, tallied[-1].answered_3min) == (6, 3)


# -- a database made before the channels ---------------------------------------------------------------------

async def test_a_database_made_without_the_channel_column_is_upgraded(database: Database) -> None:
    engine = await emptied(database)
    before = await load_release_0_1_0(engine)  # 0.1.0's tables: cases with no channel, no case number
    async with engine.begin() as connection:
        await connection.run_sync(_at_0002)
        columns = await connection.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns("cases")})
        assert "channel" not in columns and "reference" not in columns
        assert await connection.run_sync(migrations.migrate) == migrations.script().get_current_head()
    cases = await database.cases.find(limit=100)
    assert len(cases) == before["cases"] and {(c.channel, c.reference, c.taken_at) for c in cases} == {
        ("phone", None, None)}
    now = datetime(2026, 12, 31, tzinfo=UTC)
    rows = await case_statistics(engine, "channel", ZONE, now, use_tallies=False)
    assert [(r.key, r.media_cases) for r in rows] == [("电话", 0), ("total", 0)]
    fresh = sms_service(database, Clock(MONDAY))  # and new cases get their channel and number on it
    _, case = await fresh.sms_received(text_from("13800000400", "升级后的短信", "gw-up"))
    assert case is not None and case.channel == "sms" and case.reference


def _at_0002(connection: Connection) -> None:
    """0.1.0's database brought to revision 0002, the one before the channels."""
    migrations._stamp(connection, migrations.BASELINE)
    migrations._run(connection, migrations.script(), "0002")


async def test_a_case_number_drawn_twice_is_drawn_again(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = sms_service(database, Clock(MONDAY))
    first = await cases.open(caller_number="1", category="request", content="一", actor="1001", role="agent")
    drawn = iter([first.reference, first.reference, "20261109-0000001"])
    monkeypatch.setattr("cti.cases.service.new_reference", lambda day, rng: next(drawn))
    second = await cases.open(caller_number="2", category="request", content="二", actor="1001", role="agent")
    assert second.reference == "20261109-0000001" and second.id != first.id
    assert len(await database.cases.find()) == 2
