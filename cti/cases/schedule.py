"""What is due for a case at a moment: deadline notices, callbacks, archiving. Pure.

Notices follow the deadline in working days: a reminder ``remind_before``
working days ahead; once past it, an overdue notice (催办通知书), again every
``overdue_every`` working days; an escalation (督办) once there have been two
notices and the case is ``escalate_after`` working days overdue.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from cti.cases.catalogue import CallbackRules
from cti.cases.model import WITH_UNIT, Case, Policy
from cti.cases.workdays import WorkCalendar


def notices_due(case: Case, now: datetime, policy: Policy, calendar: WorkCalendar) -> list[str]:
    """The notice actions (remind, overdue, escalate) to take now, in order."""
    if case.state not in WITH_UNIT or case.due_at is None:
        return []
    due = case.due_at
    if now <= due:
        ahead = calendar.between(now, due)
        return ["remind"] if not case.reminded and ahead <= policy.remind_before else []
    actions = []
    last = case.last_notice_at
    if case.overdue_notices == 0 or (last is not None and calendar.between(last, now) >= policy.overdue_every):
        actions.append("overdue")
    notices = case.overdue_notices + (1 if actions else 0)
    if case.escalated_at is None and notices >= 2 and calendar.between(due, now) >= policy.escalate_after:
        actions.append("escalate")
    return actions


def callback_due(case: Case, now: datetime, rules: CallbackRules, zone: tzinfo) -> bool:
    """Whether cti should place an automated callback for ``case`` now."""
    if rules.mode != "auto" or case.state not in ("replied", "callback"):
        return False
    if case.callback_attempts >= rules.attempts or case.next_callback_at is None or case.next_callback_at > now:
        return False
    start, end = rules.window
    return start <= now.astimezone(zone).time() <= end


def is_agent_task(case: Case, rules: CallbackRules) -> bool:
    """A callback left to an agent: agent mode, or every automated attempt failed."""
    if case.state not in ("replied", "callback"):
        return False
    return rules.mode == "agent" or case.callback_attempts >= rules.attempts


def retry_at(now: datetime, rules: CallbackRules) -> datetime:
    return now + timedelta(minutes=rules.retry_minutes)


def archive_due(case: Case, now: datetime, days: int) -> bool:
    return case.state == "closed" and case.closed_at is not None and now - case.closed_at >= timedelta(days=days)
