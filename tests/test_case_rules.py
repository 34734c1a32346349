"""The case workflow as a table: every allowed move and every illegal one, who may make
it, what it needs, and the deadline schedule (reminders, overdue notices, escalation)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cti.cases.catalogue import CallbackRules
from cti.cases.model import MOVES, STATES, Case, CaseError, Context, Policy, apply
from cti.cases.schedule import archive_due, callback_due, is_agent_task, notices_due
from cti.cases.workdays import WorkCalendar

ZONE = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar(ZONE)
POLICY = Policy()
UNITS = frozenset({"market-regulation", "yanhu-district"})
# a quiet stretch of 2026 with no holiday near: Monday 9 November
MONDAY = datetime(2026, 11, 9, 10, 0, tzinfo=ZONE)
PARAMS = {"unit": "market-regulation", "reason": "不属于本单位职责", "days": 3, "reply": "已答复", "satisfaction": "1",
          "into": 99}


def context(role: str, at: datetime = MONDAY) -> Context:
    return Context(at, f"{role}-1", role, POLICY, CALENDAR, UNITS)


def case_in(state: str, **changes: object) -> Case:
    """A case as it would be in ``state``."""
    base = Case(id=7, caller_number="13800000001", caller_name="张伟", category="complaint", content="噪音",
                created_at=MONDAY, created_by="1001", state=state)
    if state in ("dispatched", "in_progress"):
        base = dataclasses.replace(base, unit="market-regulation", dispatched_at=MONDAY,
                                   due_at=CALENDAR.due(MONDAY, 7))
    if state in ("replied", "callback"):
        base = dataclasses.replace(base, unit="market-regulation", replied_at=MONDAY, reply="已答复",
                                   next_callback_at=MONDAY)
    if state == "closed":
        base = dataclasses.replace(base, closed_at=MONDAY)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def prepared(action: str, state: str) -> Case:
    case = case_in(state)
    if action in ("approve_extension", "reject_extension"):
        case = dataclasses.replace(case, extension_request={"days": 3, "reason": "x", "by": "u", "at": ""})
    return case


ALL = [(action, state) for action in MOVES for state in STATES]


@pytest.mark.parametrize(("action", "state"), [(a, s) for a, s in ALL if s in MOVES[a].sources])
def test_every_allowed_move(action: str, state: str) -> None:
    move = MOVES[action]
    role = move.roles[0]
    case = prepared(action, state)
    after, event = apply(case, action, dict(PARAMS), context(role))
    assert (event.action, event.from_state, event.actor, event.role) == (action, state, f"{role}-1", role)
    assert event.to_state == after.state
    if move.target is not None:
        assert after.state == move.target
    assert after.version == case.version + 1


@pytest.mark.parametrize(("action", "state"), [(a, s) for a, s in ALL if s not in MOVES[a].sources])
def test_every_illegal_move_is_refused_with_its_reason(action: str, state: str) -> None:
    move = MOVES[action]
    with pytest.raises(CaseError) as refused:
        apply(prepared(action, state), action, dict(PARAMS), context(move.roles[0]))
    assert refused.value.code == "illegal_transition"
    assert str(refused.value) == (f"cannot {action} case 7: it is {state} "
                                  f"(allowed from {', '.join(move.sources)})")


@pytest.mark.parametrize("action", list(MOVES))
def test_only_the_roles_named_may_move(action: str) -> None:
    move = MOVES[action]
    for role in ("agent", "unit", "supervisor", "system"):
        if role in move.roles:
            continue
        with pytest.raises(CaseError) as refused:
            apply(prepared(action, move.sources[0]), action, dict(PARAMS), context(role))
        assert refused.value.code == "forbidden" and refused.value.status == 403


def test_a_move_names_what_it_needs() -> None:
    with pytest.raises(CaseError, match="return needs reason"):
        apply(case_in("dispatched"), "return", {}, context("unit"))
    with pytest.raises(CaseError, match="no case action 'shred'"):
        apply(case_in("accepted"), "shred", {}, context("supervisor"))
    with pytest.raises(CaseError, match="no unit 'nowhere'"):
        apply(case_in("accepted"), "dispatch", {"unit": "nowhere"}, context("agent"))


def test_dispatch_sets_the_deadline_by_category_and_unit() -> None:
    complaint, _ = apply(case_in("accepted"), "dispatch", {"unit": "market-regulation"}, context("agent"))
    assert complaint.due_at == CALENDAR.due(MONDAY, 7)
    consultation, _ = apply(case_in("accepted", category="consultation"), "dispatch", {"unit": "market-regulation"},
                            context("agent"))
    assert consultation.due_at == CALENDAR.due(MONDAY, 3)
    faster = Context(MONDAY, "a", "agent", Policy(unit_deadlines={"market-regulation": {"complaint": 5}}), CALENDAR,
                     UNITS)
    assert apply(case_in("accepted"), "dispatch", {"unit": "market-regulation"}, faster)[0].due_at == \
        CALENDAR.due(MONDAY, 5)


def test_a_misrouted_case_is_returned_within_two_working_days_only() -> None:
    case = case_in("dispatched")
    returned, event = apply(case, "return", {"reason": "不属于本单位"}, context("unit", MONDAY + timedelta(days=2)))
    assert (returned.state, returned.unit, returned.due_at) == ("accepted", "", None)
    assert event.details == {"reason": "不属于本单位", "returned_by": "market-regulation"}
    with pytest.raises(CaseError, match="within 2 working days of its dispatch; case 7 was dispatched 3 working"):
        apply(case, "return", {"reason": "x"}, context("unit", MONDAY + timedelta(days=3)))
    again, _ = apply(returned, "dispatch", {"unit": "yanhu-district"}, context("agent", MONDAY + timedelta(days=2)))
    assert again.unit == "yanhu-district"  # reassigned, with a fresh deadline
    assert again.due_at == CALENDAR.due(MONDAY + timedelta(days=2), 7)


def test_an_extension_is_asked_then_approved_or_rejected() -> None:
    case = case_in("in_progress")
    asked, _ = apply(case, "request_extension", {"days": 3, "reason": "需现场核查"}, context("unit"))
    with pytest.raises(CaseError, match="already has an extension request"):
        apply(asked, "request_extension", {"days": 1, "reason": "x"}, context("unit"))
    approved, event = apply(asked, "approve_extension", {}, context("supervisor"))
    assert approved.due_at == CALENDAR.due(case.due_at, 3) and approved.extension_days == 3  # type: ignore[arg-type]
    assert event.details["days"] == 3
    rejected, _ = apply(asked, "reject_extension", {}, context("supervisor"))
    assert rejected.due_at == case.due_at and rejected.extension_request is None
    with pytest.raises(CaseError, match="at most 10 working days"):
        apply(case, "request_extension", {"days": 11, "reason": "x"}, context("unit"))
    with pytest.raises(CaseError, match="positive whole number"):
        apply(case, "request_extension", {"days": "soon", "reason": "x"}, context("unit"))
    with pytest.raises(CaseError, match="no extension request"):
        apply(case, "approve_extension", {}, context("supervisor"))


def test_the_reply_says_whether_it_was_on_time() -> None:
    case = case_in("in_progress")
    on_time, _ = apply(case, "reply", {"reply": "已处理"}, context("unit", MONDAY + timedelta(days=1)))
    late, _ = apply(case, "reply", {"reply": "已处理"}, context("unit", case.due_at + timedelta(minutes=1)))
    assert (on_time.on_time, late.on_time) == (True, False)


def test_satisfaction_closes_or_sends_the_case_back() -> None:
    case = case_in("callback")
    for answer in ("1", "2"):
        closed, _ = apply(case, "satisfaction", {"satisfaction": answer}, context("system"))
        assert (closed.state, closed.satisfaction, closed.closed_at) == ("closed", answer, MONDAY)
    later = MONDAY + timedelta(days=1)
    again, event = apply(case, "satisfaction", {"satisfaction": "3"}, context("system", later))
    assert (again.state, again.unit, again.rehandled, again.reply) == ("dispatched", "market-regulation", 1, "")
    assert again.due_at == CALENDAR.due(later, 7) and event.details["rehandle"] is True
    own, _ = apply(case_in("callback", unit=""), "satisfaction", {"satisfaction": "3"}, context("agent"))
    assert own.state == "accepted"  # 12345 answered it itself: it is handled again here
    with pytest.raises(CaseError, match="satisfaction must be 1"):
        apply(case, "satisfaction", {"satisfaction": "5"}, context("agent"))


def test_merge_refuses_the_case_itself() -> None:
    with pytest.raises(CaseError, match="cannot be merged into itself"):
        apply(case_in("accepted"), "merge", {"into": 7}, context("agent"))


# -- the schedule ---------------------------------------------------------------------------------

def run_notices(case: Case, days: int) -> list[tuple[str, str]]:
    """Sweep every morning and afternoon for ``days`` days; the notices given and when."""
    given = []
    for hour in range(days * 24 // 6):
        now = MONDAY + timedelta(hours=6 * hour)
        for action in notices_due(case, now, POLICY, CALENDAR):
            case, _ = apply(case, action, {}, context("system", now))
            given.append((action, now.date().isoformat()))
    return given


def test_reminder_overdue_notices_and_escalation_follow_working_days() -> None:
    case = case_in("in_progress", due_at=CALENDAR.due(MONDAY, 3))  # due Thursday 12 November
    given = run_notices(case, 21)
    assert given[0] == ("remind", "2026-11-11")  # one working day ahead
    overdue = [day for action, day in given if action == "overdue"]
    assert overdue[:3] == ["2026-11-13", "2026-11-17", "2026-11-19"]  # then every two working days
    escalations = [day for action, day in given if action == "escalate"]
    assert escalations == ["2026-11-19"]  # two notices and five working days overdue: once
    assert sum(1 for action, _ in given if action == "remind") == 1


def test_no_notices_for_a_case_without_a_unit_clock() -> None:
    for state in ("accepted", "replied", "callback", "closed"):
        assert notices_due(case_in(state), MONDAY + timedelta(days=30), POLICY, CALENDAR) == []


def test_callbacks_are_placed_in_hours_and_then_left_to_an_agent() -> None:
    rules = CallbackRules(attempts=3, hours=("09:00", "20:00"))
    case = case_in("replied")
    assert callback_due(case, MONDAY, rules, ZONE)
    assert not callback_due(case, MONDAY.replace(hour=21), rules, ZONE)  # not at night
    waiting = dataclasses.replace(case, state="callback", callback_attempts=1,
                                  next_callback_at=MONDAY + timedelta(hours=1))
    assert not callback_due(waiting, MONDAY, rules, ZONE)  # the retry is not due yet
    assert callback_due(waiting, MONDAY + timedelta(hours=1), rules, ZONE)
    tried = dataclasses.replace(case, state="callback", callback_attempts=3)
    assert not callback_due(tried, MONDAY, rules, ZONE) and is_agent_task(tried, rules)
    assert is_agent_task(case, dataclasses.replace(rules, mode="agent"))
    assert not callback_due(case, MONDAY, dataclasses.replace(rules, mode="agent"), ZONE)


def test_closed_cases_are_archived_after_the_configured_days() -> None:
    closed = case_in("closed")
    assert not archive_due(closed, MONDAY + timedelta(days=6), 7)
    assert archive_due(closed, MONDAY + timedelta(days=7), 7)
