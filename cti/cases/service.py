"""Cases at work: created from the desk or for calls that ended without one,
moved through the workflow table, their deadlines watched, their callers
called back with the satisfaction question, their units told by webhook.

The rules are pure (model, schedule); this is the IO around them: the store,
AMI Originate for callbacks, webhooks, the clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from cti.ami.message import AmiMessage
from cti.calls.channels import DIALABLE
from cti.calls.events import RouteDecided
from cti.calls.record import CallRecord
from cti.cases.catalogue import Catalogue
from cti.cases.channels import (
    CHANNELS,
    REFERENCE_DRAWS,
    InboundSms,
    new_reference,
    receipt_text,
    survey_answer,
    survey_text,
)
from cti.cases.model import (
    CATEGORIES,
    MOVES,
    OPEN,
    Case,
    CaseError,
    CaseEvent,
    Context,
    MissedCall,
    answered,
    apply,
)
from cti.cases.schedule import archive_due, callback_due, is_agent_task, notices_due, retry_at
from cti.cases.stats import Row, period
from cti.cases.workdays import WorkCalendar
from cti.privacy import mask
from cti.settings import SmsSettings
from cti.stats.cases import case_statistics
from cti.store.cases import CaseStore
from cti.store.outbox import Message, message

log = logging.getLogger(__name__)
SYSTEM = "cti"
NOT_MISSED = ("retired_notice", "guidance", "not_routed")  # the IVR served these callers: nothing to call back
SMS_GATEWAY = "sms-gateway"  # the outbox's "unit" of the SMS to citizens
Send = Callable[[dict[str, Any]], Awaitable[AmiMessage]]


def now_utc() -> datetime:
    return datetime.now(UTC)


class CaseService:
    def __init__(self, store: CaseStore, catalogue: Callable[[], Catalogue], zone: ZoneInfo, *,
                 originate: Send | None = None, sms: SmsSettings | None = None,
                 clock: Callable[[], datetime] = now_utc) -> None:
        self.store = store
        self.sms = sms or SmsSettings()
        self._rng = random.SystemRandom()  # case numbers: not to be guessed from one another
        self._catalogue = catalogue
        self.zone = zone
        self._originate = originate
        self.clock = clock
        self._callbacks: dict[str, int] = {}  # Originate ActionID -> case id, until OriginateResponse
        self._ended: list[CallRecord] = []  # calls ended, waiting to be given a case in the next batch
        self._ended_wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._calendar_key: Any = None
        self._calendar: WorkCalendar | None = None

    # -- the rules in force ---------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue()

    @property
    def calendar(self) -> WorkCalendar:
        overrides = self.catalogue.calendar
        if self._calendar is None or self._calendar_key != overrides:
            self._calendar = WorkCalendar(self.zone, holidays=overrides.holidays, workdays=overrides.workdays)
            self._calendar_key = overrides
        return self._calendar

    def _context(self, actor: str, role: str, at: datetime | None = None) -> Context:
        catalogue = self.catalogue
        return Context(at or self.clock(), actor, role, catalogue.policy, self.calendar, frozenset(catalogue.units))

    # -- creating and acting ---------------------------------------------------------------

    async def open(self, *, caller_number: str, caller_name: str = "", category: str, content: str,
                   actor: str, role: str, location: str = "", confidential: bool = False, unit: str = "",
                   linkedid: str = "", legacy_number: str = "", auto: bool = False, channel: str = "phone",
                   sms: InboundSms | None = None) -> Case:
        """A new case (受理), linked to its call (or the SMS it came as), and dispatched at once when a unit is
        given. It gets its case number to quote (a clash with another's is drawn again)."""
        if channel not in CHANNELS:
            raise CaseError("invalid", f"channel must be one of {', '.join(CHANNELS)}", 422)
        if category not in CATEGORIES:
            raise CaseError("invalid", f"category must be one of {', '.join(CATEGORIES)}", 422)
        if not content.strip():
            raise CaseError("invalid", "a case needs its content (what the caller asks or reports)", 422)
        if linkedid:
            await self._call_free(linkedid)
        for attempt in range(1, REFERENCE_DRAWS + 1):
            case, event = self._new(caller_number=caller_number, caller_name=caller_name, category=category,
                                    content=content.strip(), actor=actor, role=role, location=location,
                                    confidential=confidential, linkedid=linkedid, legacy_number=legacy_number,
                                    auto=auto, channel=channel)
            if sms is not None:
                event = dataclasses.replace(event, details={**event.details, "sms": sms.message_id,
                                                            "received_at": sms.received_at.isoformat()})
            try:
                case = await self.store.create(case, event, linkedid, self._receipt(case, sms), _sms_row(sms))
                break
            except IntegrityError:
                if sms is not None and await self.store.sms_seen(sms.message_id) is not None:
                    raise  # the same SMS reported twice at once: the caller finds the other's case
                if attempt == REFERENCE_DRAWS:
                    raise
                log.warning("case number %s was taken: drawing another", case.reference)
        if unit:
            case = await self.act(case.id, "dispatch", {"unit": unit}, actor, role)
        return case

    async def link_call(self, case_id: int, linkedid: str) -> Case:
        """Join a call to a case (the caller calls again about it); a call belongs to one case."""
        case = await self.get(case_id)
        if not await self.store.link_call(case.id, linkedid, self.clock()):
            await self._call_free(linkedid)
        return case

    async def _call_free(self, linkedid: str) -> None:
        existing = await self.store.case_of_call(linkedid)
        if existing is not None:
            raise CaseError("call_has_case", f"call {linkedid} already belongs to case {existing}")

    def _renumbered(self, case: Case) -> Case:
        """The case with another case number (its own was taken)."""
        log.info("case number %s was taken: drawing another", case.reference)
        return dataclasses.replace(case, reference=self._reference(case.created_at))

    def _reference(self, at: datetime) -> str:
        """A case number for a case opened at ``at`` (its local day)."""
        return new_reference(at.astimezone(self.zone).date(), self._rng)

    def _new(self, *, caller_number: str, caller_name: str, category: str, content: str, actor: str, role: str,
             location: str = "", confidential: bool = False, linkedid: str = "", legacy_number: str = "",
             auto: bool = False, channel: str = "phone") -> tuple[Case, CaseEvent]:
        at = self.clock()
        reference = self._reference(at)
        case = Case(id=0, caller_number=caller_number, caller_name=caller_name, category=category, content=content,
                    created_at=at, created_by=actor, location=location, legacy_number=legacy_number,
                    confidential=confidential, auto=auto, channel=channel, reference=reference)
        case = answered(case, at, actor, role)  # an agent opening a case has answered its caller
        return case, CaseEvent(0, at, actor, role, "create", "", "accepted",
                               {"category": category, "linkedid": linkedid, "auto": auto, "channel": channel})

    # -- SMS and the web ---------------------------------------------------------------------------

    async def sms_received(self, sms: InboundSms) -> tuple[str, Case | None]:
        """A text to the hotline, from the gateway: the answer to a pending SMS survey (1, 2, 3) closes or
        reopens that case; anything else is a new case (its content the text, the category an agent corrects),
        acknowledged by SMS with its number. A message id seen before changes nothing. Returns what it made
        ("case", "survey"; "seen" when it had been reported) and the case."""
        seen = await self.store.sms_seen(sms.message_id)
        if seen is None:
            answer = survey_answer(sms.text) if self.catalogue.callback.sms == "survey" else None
            surveyed = await self.store.find(states=("callback",), caller_number=sms.sender, channels=("sms",),
                                             limit=1) if answer else []
            if answer and surveyed:
                case = await self._system(surveyed[0], "satisfaction", {"satisfaction": answer,
                                                                         "sms": sms.message_id})
                await self.store.note_sms(_sms_row(sms) or {}, "survey", case.id)
                return "survey", case
            try:
                case = await self.open(caller_number=sms.sender, category="consultation", content=sms.text,
                                       actor=SYSTEM, role="system", legacy_number=sms.to, auto=True, channel="sms",
                                       sms=sms)
                return "case", case
            except IntegrityError:  # the same message at the same moment, written by the other request
                seen = await self.store.sms_seen(sms.message_id)
                if seen is None:
                    raise
        return "seen", await self.store.get(seen[1]) if seen[1] is not None else None

    async def web_request(self, *, caller_number: str, caller_name: str, category: str, content: str,
                          location: str, confidential: bool) -> Case:
        """A request from the public web form: a case as a call's, that came by the web."""
        return await self.open(caller_number=caller_number, caller_name=caller_name, category=category,
                               content=content, location=location, confidential=confidential, actor="web",
                               role="system", channel="web")

    def _receipt(self, case: Case, sms: InboundSms | None) -> list[Message]:
        """The SMS acknowledging a case that came by SMS, with its number (none without a gateway)."""
        if sms is None or case.reference is None:
            return []
        return self._sms_message(case, "receipt", receipt_text(case.reference), f"sms.receipt:{case.reference}")

    def _sms_message(self, case: Case, kind: str, text: str, key: str) -> list[Message]:
        if not self.sms.gateway:
            return []
        payload = {"event": "sms.send", "kind": kind, "to": case.caller_number, "from": self.sms.number,
                   "text": text, "reference": case.reference, "key": key}
        return [message(self.sms.gateway, SMS_GATEWAY, "sms.send", key, payload,
                        {"X-CTI-Event": "sms.send", "X-CTI-Reference": case.reference or ""})]

    async def act(self, case_id: int, action: str, params: dict[str, Any], actor: str, role: str) -> Case:
        """Do one action of the workflow table on a case, for ``actor`` in ``role``."""
        case = await self.get(case_id)
        if action == "merge":
            await self._check_merge_target(case, params.get("into"))
        after, event = apply(case, action, params, self._context(actor, role))
        await self.store.save(case, after, event, self._notices(after, event))
        if action == "merge":
            await self.store.move_calls(case.id, int(params["into"]))
        return after

    async def update_details(self, case_id: int, fields: dict[str, Any], actor: str, role: str) -> Case:
        """The agent completes a case cti opened for their call (category, content, place, the caller's name…)."""
        case = await self.get(case_id)
        if case.state != "accepted":
            raise CaseError("illegal_transition", f"case {case.id} is {case.state}: only an accepted case is edited")
        changes = {k: v for k, v in fields.items()
                   if k in ("category", "content", "location", "confidential") or (k == "caller_name" and v)}
        if "category" in changes and changes["category"] not in CATEGORIES:
            raise CaseError("invalid", f"category must be one of {', '.join(CATEGORIES)}", 422)
        at = self.clock()
        after = answered(dataclasses.replace(case, **changes, auto=False, version=case.version + 1), at, actor, role)
        event = CaseEvent(case.id, at, actor, role, "edit", case.state, case.state,
                          {k: v for k, v in changes.items() if k not in ("content", "caller_name")})
        return await self.store.save(case, after, event)

    async def get(self, case_id: int) -> Case:
        """The case, or CaseError 404."""
        case = await self.store.get(case_id)
        if case is None:
            raise CaseError("no_such_case", f"no case {case_id}", 404)
        return case

    async def _check_merge_target(self, case: Case, into: Any) -> None:
        try:
            target = await self.store.get(int(into))
        except (TypeError, ValueError):
            target = None
        if target is None:
            raise CaseError("no_such_case", f"no case {into!r} to merge into", 404)
        if target.state not in OPEN:
            raise CaseError("illegal_transition", f"case {target.id} is {target.state}: merge into an open case")

    # -- calls ending ----------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Ended calls waiting for their batch."""
        return len(self._ended)

    def call_ended(self, record: CallRecord) -> None:
        """A call ended: it gets its case (or a place on the missed list) in the next batch. At
        a hundred calls a second one transaction per call would keep the database busy."""
        self._ended.append(record)
        self._ended_wake.set()

    async def intake(self, stop: asyncio.Event, *, interval: float = 0.2) -> None:
        """Give the ended calls their cases, a batch at a time, until ``stop`` (then the rest). A batch
        that cannot be written is tried again, with backoff: a busy database delays cases, never drops them."""
        failures = 0
        try:
            while True:
                if not self._ended:
                    if stop.is_set():
                        return
                    self._ended_wake.clear()
                    waiting = [asyncio.ensure_future(self._ended_wake.wait()), asyncio.ensure_future(stop.wait())]
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    for task in waiting:
                        task.cancel()
                    continue
                await asyncio.sleep(0 if stop.is_set() else interval)  # let the batch fill
                batch, self._ended = self._ended, []
                try:
                    await self.on_calls_ended(batch)
                    failures = 0
                except Exception as exc:  # a desk saved a case for one of these calls meanwhile, or a busy database
                    failures += 1
                    self._ended = batch + self._ended
                    log.warning("cases for %d ended calls not written (attempt %d): %s", len(batch), failures, exc)
                    await asyncio.sleep(min(30.0, 0.1 * 2 ** failures))
        except asyncio.CancelledError:
            if self._ended:
                log.error("%d ended calls left without their case at shutdown (their call records are stored)",
                          len(self._ended))
            raise

    async def on_calls_ended(self, records: list[CallRecord]) -> None:
        """Every citizen call joins a case: the desk's, or one cti opens; unanswered calls
        that were meant for a person go on the missed-call list. (Callbacks are the cases' own
        doing: each attempt and its outcome is in the case's timeline.)"""
        opened: list[tuple[Case, CaseEvent, str]] = []
        missed: list[MissedCall] = []
        for record in records:
            if record.direction != "inbound":
                continue
            action = next((e.action for e in record.timeline if isinstance(e, RouteDecided)), "")
            if record.answered:
                who = record.answered_by_name or record.answered_by
                case, event = self._new(
                    caller_number=record.caller_number, caller_name=record.caller_name, category="consultation",
                    content=f"（来电未填写工单）{record.dialled_number} 来电，{who} 接听", actor=SYSTEM,
                    role="system", linkedid=record.linkedid, legacy_number=record.dialled_number, auto=True)
                opened.append((case, event, record.linkedid))
            elif action not in NOT_MISSED and record.caller_number:
                missed.append(MissedCall(record.linkedid, record.caller_number, record.caller_name,
                                         record.dialled_number, datetime.fromtimestamp(record.arrived_at, UTC),
                                         record.queue_wait))
        if opened or missed:
            await self.store.open_for_calls(opened, missed, self._renumbered)

    async def resolve_missed(self, linkedid: str, state: str, actor: str, case_id: int | None = None) -> MissedCall:
        if state not in ("called_back", "unreachable"):
            raise CaseError("invalid", "state must be called_back or unreachable", 422)
        missed = await self.store.resolve_missed(linkedid, state, actor, self.clock(), case_id)
        if missed is None:
            raise CaseError("no_such_call", f"no missed call {linkedid}", 404)
        return missed

    # -- deadlines, callbacks, archive -------------------------------------------------------

    async def sweep(self) -> dict[str, int]:
        """Everything due now: notices, automated callbacks, archiving. Returns counts."""
        now = self.clock()
        catalogue = self.catalogue
        done = {"remind": 0, "overdue": 0, "escalate": 0, "callback": 0, "archive": 0}
        for case in await self.store.find(states=("dispatched", "in_progress"), limit=100_000):
            for action in notices_due(case, now, catalogue.policy, self.calendar):
                case = await self._system(case, action, {})
                done[action] += 1
        for case in await self.store.find(states=("replied", "callback"), limit=100_000):
            if not callback_due(case, now, catalogue.callback, self.zone):
                continue
            if self._by_sms(case) and self.sms.gateway:
                await self._sms_survey(case)
                done["callback"] += 1
            elif not self._by_sms(case) and self._originate is not None:
                await self._call_back(case)
                done["callback"] += 1
        archive_before = now - timedelta(days=catalogue.archive_after_days)
        for case in await self.store.find(states=("closed",), closed_before=archive_before, limit=100_000):
            if archive_due(case, now, catalogue.archive_after_days):
                await self._system(case, "archive", {})
                done["archive"] += 1
        return done

    async def _system(self, case: Case, action: str, params: dict[str, Any], *, tries: int = 3) -> Case:
        """cti's own move. Someone else may change the case meanwhile (an agent, the survey's answer, the
        sweep): then it is read again and the move done on what it is now, if it still applies."""
        for _ in range(tries):
            after, event = apply(case, action, params, self._context(SYSTEM, "system"))
            try:
                await self.store.save(case, after, event, self._notices(after, event))
                return after
            except CaseError as exc:
                if exc.code != "conflict":
                    raise
            case = await self.get(case.id)
            if case.state not in MOVES[action].sources:
                log.info("case %d is %s by now: cti's %s no longer applies", case.id, case.state, action)
                return case
        raise CaseError("conflict", f"case {case.id} kept changing; cti's {action} was not done")

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:  # one bad case must not stop deadlines being watched
                log.exception("case sweep failed")
            try:
                await asyncio.wait_for(stop.wait(), self.catalogue.sweep_seconds)
            except TimeoutError:
                pass

    def _by_sms(self, case: Case) -> bool:
        """Whether the case's callback is an SMS survey (an SMS case, with cases.yaml's callback.sms: survey)."""
        return case.channel == "sms" and self.catalogue.callback.sms == "survey"

    async def _sms_survey(self, case: Case) -> None:
        """回访 by SMS: the question goes out with the callback's step (the outbox, in its transaction); the
        citizen's 1, 2 or 3 comes back through the gateway's webhook (sms_received)."""
        wait = timedelta(hours=self.catalogue.callback.sms_reply_hours)
        await self._system(case, "callback", {"how": "sms", "silence": wait})

    async def _call_back(self, case: Case) -> None:
        """回访: Originate to the caller; answered, the survey flow asks the question (OriginateResponse
        and the survey's answer come back later)."""
        assert self._originate is not None
        rules = self.catalogue.callback
        case = await self._system(case, "callback", {"how": "auto"})
        if not DIALABLE.fullmatch(case.caller_number):  # anonymous, or not a number: nobody can call back
            await self._system(case, "unreachable", {"reason": "the caller's number cannot be dialled"})
            return
        action_id = f"cti-callback-{case.id}-{case.callback_attempts}-{secrets.token_hex(3)}"
        self._callbacks[action_id] = case.id
        try:
            await self._originate({
                "Action": "Originate", "ActionID": action_id, "Channel": rules.dial.format(number=case.caller_number),
                "Context": "cti-survey", "Exten": case.caller_number, "Priority": "1", "CallerID": rules.caller_id,
                "Timeout": "45000", "Async": "true", "Variable": f"CTI_CASE={case.id}"})
        except Exception as exc:  # the PBX refused or the link is down: try again later
            self._callbacks.pop(action_id, None)
            await self._callback_failed(case.id, f"Originate not sent: {exc}")

    def on_ami_message(self, message: AmiMessage) -> None:
        """OriginateResponse of a callback: not reached means try again later."""
        if message.name != "OriginateResponse":
            return
        case_id = self._callbacks.pop(message.action_id, None)
        if case_id is None:
            return
        if message.get("response") == "Success":
            return  # answered: the survey flow reports
        reason = {"0": "failed", "1": "hung up", "3": "no answer", "5": "busy", "8": "congestion"}.get(
            message.get("reason"), f"reason {message.get('reason')}")
        task = asyncio.ensure_future(self._callback_failed(case_id, reason))
        self._tasks.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def survey_answered(self, case_id: int, answers: dict[str, str], linkedid: str) -> None:
        """The survey flow's answer: 1 or 2 closes the case, 3 sends it back; none is a failed attempt."""
        answer = answers.get("satisfaction", "")
        if not answer:
            await self._callback_failed(case_id, "no answer to the survey")
            return
        case = await self.get(case_id)
        if case.state != "callback":  # a person closed or reopened it meanwhile: the answer is kept in the log
            log.warning("case %d is %s: the survey's answer %s (call %s) came too late to count", case.id,
                        case.state, answer, linkedid)
            return
        await self._system(case, "satisfaction", {"satisfaction": answer, "linkedid": linkedid})

    async def _callback_failed(self, case_id: int, reason: str) -> None:
        case = await self.get(case_id)
        if case.state != "callback":
            return
        rules = self.catalogue.callback
        retry = retry_at(self.clock(), rules) if case.callback_attempts < rules.attempts else None
        await self._system(case, "callback_failed", {"reason": reason, "retry_at": retry})

    # -- lists ------------------------------------------------------------------------------

    async def statistics(self, by: str, start: date | None, end: date | None, *, limit: int | None = None,
                         unit: str | None = None) -> list[Row]:
        """Statistics of the cases opened from day ``start`` to day ``end``, counted by the database
        (cti.stats.cases); a unit's own only when ``unit`` is given (missed calls have no unit: they count only in
        everyone's). ``limit`` is no longer used: nothing is loaded."""
        since, until = period(start, end, self.zone)
        return await case_statistics(self.store.engine, by, self.zone, self.clock(), since, until, unit=unit)

    async def tasks(self) -> dict[str, Any]:
        """The agents' work: missed calls to call back and callbacks left to a person."""
        rules = self.catalogue.callback
        callbacks = [c for c in await self.store.find(states=("replied", "callback"), limit=1000)
                     if is_agent_task(c, rules)]
        waiting = await self.store.find(states=("accepted",), channels=("sms", "web"), taken=False, limit=100)
        return {"missed_calls": await self.store.missed(), "callbacks": callbacks,
                "requests": list(reversed(waiting))}  # the longest waiting first

    # -- telling the units ------------------------------------------------------------------

    def _notices(self, case: Case, event: CaseEvent) -> list[Message]:
        """Units hear of what concerns them: a case dispatched to them, reminders, overdue
        notices, escalations, an approved or refused extension, a re-handling. The message is
        saved with the transition (the webhook outbox), under a key of the case's version:
        one message per transition, however often the save is tried. An SMS survey's question goes the same
        way, to the SMS gateway."""
        if event.action == "callback" and event.details.get("how") == "sms" and case.reference:
            return self._sms_message(case, "survey", survey_text(case.reference),
                                     f"sms.survey:{case.reference}:{case.version}")
        if event.action not in (
                "dispatch", "remind", "overdue", "escalate", "approve_extension", "reject_extension", "satisfaction"):
            return []
        unit = self.catalogue.units.get(case.unit)
        if unit is None or not unit.webhook:
            return []
        if event.action == "satisfaction" and not event.details.get("rehandle"):
            return []
        name = f"case.{event.action}"
        payload = {"event": name, "case": case_json(case, self.zone, for_unit=True),
                   "at": event.at.astimezone(self.zone).isoformat(), "details": event.details}
        return [message(unit.webhook, unit.id, name, f"{name}:{case.id}:{case.version}", payload,
                        {"X-CTI-Case": str(case.id), "X-CTI-Event": name})]


def _sms_row(sms: InboundSms | None) -> dict[str, Any] | None:
    """An SMS as the store keeps it by its id."""
    if sms is None:
        return None
    return {"message_id": sms.message_id, "sender": sms.sender, "received_at": sms.received_at}


def _iso(at: datetime | None, zone: ZoneInfo) -> str | None:
    return at.astimezone(zone).isoformat() if at is not None else None


def case_json(case: Case, zone: ZoneInfo, *, for_unit: bool = False) -> dict[str, Any]:
    """A case as the API and webhooks show it; a unit does not see a confidential caller."""
    hidden = for_unit and case.confidential
    data = {name: getattr(case, name) for name in (
        "id", "category", "content", "location", "legacy_number", "confidential", "auto", "state", "unit",
        "extension_days", "extension_request", "reply", "on_time", "satisfaction", "rehandled", "overdue_notices",
        "callback_attempts", "merged_into", "version", "channel", "reference", "taken_by")}
    data["category_name"] = CATEGORIES[case.category]
    data["channel_name"] = CHANNELS.get(case.channel, case.channel)
    data["caller_number"] = mask(case.caller_number) if hidden else case.caller_number
    data["caller_name"] = "" if hidden else case.caller_name
    for name in ("created_at", "dispatched_at", "due_at", "replied_at", "escalated_at", "closed_at", "archived_at",
                 "next_callback_at", "taken_at"):
        data[name] = _iso(getattr(case, name), zone)
    data["created_by"] = case.created_by
    return data


def event_json(event: CaseEvent, zone: ZoneInfo) -> dict[str, Any]:
    return {"at": event.at.astimezone(zone).isoformat(), "actor": event.actor, "role": event.role,
            "action": event.action, "from": event.from_state, "to": event.to_state,
            "details": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in event.details.items()}}
