"""Case records (工单) and their workflow: the states, and every allowed move as a table.

Pure: a case and an action in, the changed case and the event that records it
out, or a :class:`CaseError` saying why the move is refused. Who may do what is
in the same table: agents take calls and write cases, units (their systems,
through integrator tokens) sign, return, reply and ask for more time,
supervisors may do anything, and "system" is cti itself (callbacks, notices).

    accepted ─dispatch─> dispatched ─sign─> in_progress ─reply─> replied
    replied ─callback─> callback ─satisfaction 1, 2─> closed ─archive─> archived
    callback ─satisfaction 3─> dispatched again (re-handled; accepted when 12345 answered it itself)
    callback ─unreachable─> closed
    dispatched, in_progress ─return─> accepted (within 2 working days of dispatch, with a reason)
    accepted ─answer─> replied (直接答复: 12345 answers it itself)
    accepted, dispatched, in_progress ─merge─> merged (并单)
    accepted ─take─> accepted (认领: an agent picks up a case that came by SMS or the web)

A case came by phone, SMS or the web (``channel``, cti.cases.channels); the first step a person takes on it (an
agent or a supervisor: take, edit, dispatch, answer, merge…) is when it was *answered* (``taken_at``): GB/T 33358
asks SMS and web requests to be answered within 3 minutes. cti's own steps and its automatic SMS receipt are not
a person's answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cti.cases.workdays import WorkCalendar
from cti.refusal import Refusal

CATEGORIES = {"consultation": "咨询", "request": "求助", "complaint": "投诉", "report": "举报",
              "suggestion": "意见建议"}
STATES = ("accepted", "dispatched", "in_progress", "replied", "callback", "closed", "archived", "merged")
OPEN = ("accepted", "dispatched", "in_progress", "replied", "callback")
WITH_UNIT = ("dispatched", "in_progress")  # the unit's clock runs
SATISFACTION = {"1": "满意 satisfied", "2": "基本满意 basically satisfied", "3": "不满意 unsatisfied"}
ACTORS = ("agent", "unit", "supervisor", "system")
PEOPLE = ("agent", "supervisor")  # whose first step on a case answers it (taken_at)


class CaseError(Refusal):
    """A refused action of the case workflow (cti.refusal)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The rules of cases.yaml: deadlines in working days, per category and per unit."""

    deadlines: dict[str, int] = field(default_factory=lambda: {
        "consultation": 3, "request": 3, "suggestion": 3, "complaint": 7, "report": 7})
    unit_deadlines: dict[str, dict[str, int]] = field(default_factory=dict)
    return_within: int = 2  # working days a unit has to return a misrouted case
    remind_before: int = 1  # working days before the deadline: a reminder
    overdue_every: int = 2  # working days between overdue notices (催办通知书)
    escalate_after: int = 5  # working days overdue, after two overdue notices: escalation (督办)
    max_extension: int = 10  # working days an extension may add

    def days(self, category: str, unit: str) -> int:
        return self.unit_deadlines.get(unit, {}).get(category, self.deadlines[category])


@dataclass(frozen=True, slots=True)
class Case:
    id: int
    caller_number: str
    caller_name: str
    category: str
    content: str
    created_at: datetime
    created_by: str
    location: str = ""
    legacy_number: str = ""  # the number the citizen dialled on the case's first call
    confidential: bool = False  # the caller asked not to be named to the unit
    auto: bool = False  # opened by cti for a call that ended without a case
    state: str = "accepted"
    unit: str = ""
    dispatched_at: datetime | None = None
    due_at: datetime | None = None
    extension_days: int = 0
    extension_request: dict[str, Any] | None = None  # {"days", "reason", "by", "at"} awaiting a supervisor
    reply: str = ""
    replied_at: datetime | None = None
    on_time: bool | None = None  # replied by the deadline
    satisfaction: str = ""  # 1, 2, 3, or "unreachable"
    rehandled: int = 0
    reminded: bool = False
    overdue_notices: int = 0
    last_notice_at: datetime | None = None
    escalated_at: datetime | None = None
    callback_attempts: int = 0
    next_callback_at: datetime | None = None
    closed_at: datetime | None = None
    archived_at: datetime | None = None
    merged_into: int | None = None
    version: int = 0
    channel: str = "phone"  # phone, sms or web (cti.cases.channels.CHANNELS)
    reference: str | None = None  # the case number the citizen quotes (none on cases older than it)
    taken_at: datetime | None = None  # a person's first step on it (the opening agent's, for a call)
    taken_by: str = ""


@dataclass(frozen=True, slots=True)
class CaseEvent:
    case_id: int
    at: datetime
    actor: str  # who: a user id, a unit id, or "cti"
    role: str  # agent, unit, supervisor, system
    action: str
    from_state: str
    to_state: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MissedCall:
    """A citizen's call nobody answered (abandoned in the queue, or rung out): to be called back."""

    linkedid: str
    caller_number: str
    caller_name: str
    dialled_number: str
    at: datetime
    waited: float | None
    state: str = "open"  # open, called_back, unreachable
    resolved_at: datetime | None = None
    resolved_by: str = ""
    case_id: int | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What an action needs besides the case: when, who, the rules and the calendar."""

    at: datetime
    actor: str
    role: str
    policy: Policy
    calendar: WorkCalendar
    units: frozenset[str]  # the dispatch catalogue's unit ids


Effect = Callable[[Case, dict[str, Any], Context], tuple[Case, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Move:
    action: str
    sources: tuple[str, ...]
    target: str | None  # None: stays in its state (or the effect decides)
    roles: tuple[str, ...]
    needs: tuple[str, ...]
    effect: Effect
    summary: str


# -- effects ---------------------------------------------------------------------------

def _dispatch(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
    unit = p["unit"]
    if unit not in c.units:
        raise CaseError("unknown_unit", f"no unit {unit!r} in the dispatch catalogue", 422)
    due = c.calendar.due(c.at, c.policy.days(case.category, unit))
    return dataclasses.replace(case, unit=unit, dispatched_at=c.at, due_at=due, extension_days=0,
                               extension_request=None, reminded=False, overdue_notices=0, last_notice_at=None,
                               escalated_at=None), {"unit": unit, "due_at": due.isoformat()}


def _sign(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
    return case, {}


def _return(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
    assert case.dispatched_at is not None
    used = c.calendar.between(case.dispatched_at, c.at)
    if used > c.policy.return_within:
        raise CaseError("too_late_to_return", f"a unit may return a case within {c.policy.return_within} working "
                        f"days of its dispatch; case {case.id} was dispatched {used} working days ago")
    return dataclasses.replace(case, unit="", dispatched_at=None, due_at=None, extension_request=None), {
        "reason": p["reason"], "returned_by": case.unit}


def _request_extension(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
    days = _positive(p["days"], "days")
    if days + case.extension_days > c.policy.max_extension:
        raise CaseError("extension_too_long", f"extensions may add at most {c.policy.max_extension} working days "
                        f"(already {case.extension_days})", 422)
    if case.extension_request is not None:
        raise CaseError("extension_pending", f"case {case.id} already has an extension request awaiting approval")
    request = {"days": days, "reason": p["reason"], "by": c.actor, "at": c.at.isoformat()}
    return dataclasses.replace(case, extension_request=request), dict(request)


def _decide_extension(approve: bool) -> Effect:
    def effect(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
        request = case.extension_request
        if request is None:
            raise CaseError("no_extension_request", f"case {case.id} has no extension request to decide")
        if not approve:
            return dataclasses.replace(case, extension_request=None), {"days": request["days"]}
        assert case.due_at is not None
        due = c.calendar.due(case.due_at, request["days"])
        return dataclasses.replace(case, extension_request=None, due_at=due,
                                   extension_days=case.extension_days + request["days"]), {
            "days": request["days"], "due_at": due.isoformat()}
    return effect


def _reply(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
    on_time = case.due_at is None or c.at <= case.due_at
    return dataclasses.replace(case, reply=p["reply"], replied_at=c.at, on_time=on_time, extension_request=None,
                               callback_attempts=0, next_callback_at=c.at), {"on_time": on_time}


# An attempt in flight: no other starts until it has ended (its outcome sets the next), or, if no outcome is
# ever heard (cti stopped while the citizen was being called), until this long after it began.
ATTEMPT_SILENCE = timedelta(minutes=10)


def _start_callback(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
    # an SMS survey waits hours for its reply (cti passes ``silence``; the API's body has no such field)
    silence = p.get("silence", ATTEMPT_SILENCE)
    return dataclasses.replace(case, callback_attempts=case.callback_attempts + 1,
                               next_callback_at=c.at + silence), {
        "attempt": case.callback_attempts + 1, "how": p.get("how", "")}


def _callback_failed(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
    retry = p.get("retry_at")
    return dataclasses.replace(case, next_callback_at=retry), {"reason": p.get("reason", ""),
                                                               "retry_at": retry.isoformat() if retry else None}


def _satisfaction(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
    answer = str(p["satisfaction"])
    if answer not in SATISFACTION:
        raise CaseError("invalid", "satisfaction must be 1 (satisfied), 2 (basically satisfied) or 3 (unsatisfied)",
                        422)
    if answer != "3":
        return dataclasses.replace(case, satisfaction=answer, state="closed", closed_at=c.at), {"satisfaction": answer}
    # unsatisfied: handled again, by the same unit with a fresh deadline, or by 12345 when it answered itself
    rehandled = dataclasses.replace(case, satisfaction=answer, rehandled=case.rehandled + 1, reply="",
                                    replied_at=None, on_time=None, callback_attempts=0, next_callback_at=None)
    if not case.unit:
        return dataclasses.replace(rehandled, state="accepted"), {"satisfaction": answer, "rehandle": True}
    again, details = _dispatch(rehandled, {"unit": case.unit}, c)
    return dataclasses.replace(again, state="dispatched"), {"satisfaction": answer, "rehandle": True, **details}


def _unreachable(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
    return dataclasses.replace(case, satisfaction="unreachable", closed_at=c.at), {"reason": p.get("reason", "")}


def _archive(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
    return dataclasses.replace(case, archived_at=c.at), {}


def _merge(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
    into = int(p["into"])
    if into == case.id:
        raise CaseError("invalid", "a case cannot be merged into itself", 422)
    return dataclasses.replace(case, merged_into=into), {"into": into}


def _notice(kind: str) -> Effect:
    def effect(case: Case, p: dict[str, Any], c: Context) -> tuple[Case, dict[str, Any]]:
        if kind == "remind":
            return dataclasses.replace(case, reminded=True), {"due_at": _iso(case.due_at)}
        if kind == "overdue":
            count = case.overdue_notices + 1
            return dataclasses.replace(case, overdue_notices=count, last_notice_at=c.at), {
                "notice": count, "due_at": _iso(case.due_at)}
        return dataclasses.replace(case, escalated_at=c.at), {"due_at": _iso(case.due_at),
                                                               "overdue_notices": case.overdue_notices}
    return effect


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _positive(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise CaseError("invalid", f"{name} must be a positive whole number of working days", 422)
    return number


def workflow_role(user_role: str, unit_id: str | None) -> str | None:
    """The role a signed-in user (cti.auth.ROLES) acts in on cases; None: they may not act (an integrator's
    system bound to no unit). Admins act as supervisors."""
    if user_role == "agent":
        return "agent"
    if user_role in ("supervisor", "admin"):
        return "supervisor"
    return "unit" if user_role == "integrator" and unit_id else None


AGENTS = ("agent", "supervisor")
UNITS = ("unit", "supervisor")
ANY_CALLER = ("agent", "supervisor", "system")

MOVES: dict[str, Move] = {move.action: move for move in (
    Move("dispatch", ("accepted",), "dispatched", AGENTS, ("unit",), _dispatch, "派单: send to the handling unit"),
    Move("sign", ("dispatched",), "in_progress", UNITS, (), _sign, "签收: the unit takes the case on"),
    Move("return", WITH_UNIT, "accepted", UNITS, ("reason",), _return,
         "退单: the unit returns a misrouted case (within the return window) to be reassigned"),
    Move("request_extension", WITH_UNIT, None, UNITS, ("days", "reason"), _request_extension,
         "延期申请: the unit asks for more working days"),
    Move("approve_extension", WITH_UNIT, None, ("supervisor",), (), _decide_extension(True),
         "批准延期: the deadline moves by the requested working days"),
    Move("reject_extension", WITH_UNIT, None, ("supervisor",), (), _decide_extension(False), "驳回延期"),
    Move("reply", ("in_progress",), "replied", UNITS, ("reply",), _reply, "办结反馈: the unit's answer"),
    Move("answer", ("accepted",), "replied", AGENTS, ("reply",), _reply, "直接答复: 12345 answers it itself"),
    Move("callback", ("replied", "callback"), "callback", ANY_CALLER, (), _start_callback,
         "回访: a callback to the caller starts (automated or by an agent)"),
    Move("callback_failed", ("callback",), None, ANY_CALLER, (), _callback_failed,
         "回访未接通: no answer; tried again later or left to an agent"),
    Move("satisfaction", ("callback",), None, ANY_CALLER, ("satisfaction",), _satisfaction,
         "满意度: 1 or 2 closes the case; 3 sends it back to be handled again"),
    Move("unreachable", ("callback",), "closed", ANY_CALLER, (), _unreachable,
         "回访不成功: the caller could not be reached; closed without an answer"),
    Move("archive", ("closed",), "archived", ("supervisor", "system"), (), _archive, "归档"),
    Move("merge", ("accepted", "dispatched", "in_progress"), "merged", AGENTS, ("into",), _merge,
         "并单: a duplicate joins another case"),
    Move("take", ("accepted",), None, AGENTS, (), _sign, "认领: an agent picks up a case that came by SMS or the web"),
    Move("remind", WITH_UNIT, None, ("system",), (), _notice("remind"), "到期提醒: the deadline is near"),
    Move("overdue", WITH_UNIT, None, ("system",), (), _notice("overdue"), "催办通知书: past the deadline"),
    Move("escalate", WITH_UNIT, None, ("system",), (), _notice("escalate"),
         "督办: overdue after two notices and five working days"),
)}


def answered(case: Case, at: datetime, actor: str, role: str) -> Case:
    """The case as answered by ``actor`` at ``at`` when this is a person's first step on it."""
    if case.taken_at is not None or role not in PEOPLE:
        return case
    return dataclasses.replace(case, taken_at=at, taken_by=actor)


def apply(case: Case, action: str, params: dict[str, Any], context: Context) -> tuple[Case, CaseEvent]:
    """Do ``action`` on ``case``; the changed case and the event recording it, or CaseError."""
    move = MOVES.get(action)
    if move is None:
        raise CaseError("unknown_action", f"no case action {action!r}; actions: {', '.join(MOVES)}", 422)
    if context.role not in move.roles:
        raise CaseError("forbidden", f"{context.role} may not {action} a case (allowed: {', '.join(move.roles)})",
                        403)
    if case.state not in move.sources:
        raise CaseError("illegal_transition", f"cannot {action} case {case.id}: it is {case.state} "
                        f"(allowed from {', '.join(move.sources)})")
    missing = [name for name in move.needs if params.get(name) in (None, "")]
    if missing:
        raise CaseError("invalid", f"{action} needs {', '.join(missing)}", 422)
    changed, details = move.effect(case, params, context)
    changed = answered(changed, context.at, context.actor, context.role)
    if move.target is not None:
        changed = dataclasses.replace(changed, state=move.target)
    if "note" in params and params["note"]:
        details = {**details, "note": params["note"]}
    changed = dataclasses.replace(changed, version=case.version + 1)
    return changed, CaseEvent(case.id, context.at, context.actor, context.role, action, case.state, changed.state,
                              details)
