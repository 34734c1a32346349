"""Cases, their transitions, their calls and the missed-call list in the database.

A transition is saved with its event in one transaction, and only if the case
has not changed since it was read (its ``version``): two people acting on one
case at once cannot both win; the second gets a clear conflict."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cti.cases.channels import REFERENCE_DRAWS
from cti.cases.model import Case, CaseError, CaseEvent, MissedCall
from cti.store import case_tallies
from cti.store.models import CaseCallRow, CaseEventRow, CaseRow, MissedCallRow, SmsInboundRow
from cti.store.outbox import Message, OutboxStore
from cti.store.sql import CASE_INTAKE, insert_new, take_turn

FIELDS = tuple(f.name for f in dataclasses.fields(Case))

Opening = tuple[Case, CaseEvent, str]  # a case for a call, its creation, the call's Linkedid


class CaseStore:
    def __init__(self, engine: AsyncEngine, outbox: OutboxStore | None = None) -> None:
        self.engine = engine  # cti.stats counts cases in SQL on it
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.outbox = outbox or OutboxStore(engine)

    # -- cases ----------------------------------------------------------------------

    async def create(self, case: Case, event: CaseEvent, linkedid: str = "", messages: Sequence[Message] = (),
                     sms: dict[str, Any] | None = None) -> Case:
        """Insert a new case (its id is assigned here) with its first event and call, the ``messages`` it sends
        (the SMS receipt) and the SMS it came from (``sms``: message_id, sender, received_at), all in one
        transaction. A case number or an SMS message id taken already raises sqlalchemy's IntegrityError and
        writes nothing (CaseService draws another number, or finds the message's case)."""
        async with self._sessions.begin() as session:
            row = CaseRow(**_values(case))
            session.add(row)
            await session.flush()
            session.add(_event_row(dataclasses.replace(event, case_id=row.id)))
            if linkedid:
                session.add(CaseCallRow(linkedid=linkedid, case_id=row.id, linked_at=case.created_at))
            if sms is not None:
                session.add(SmsInboundRow(**sms, outcome="case", case_id=row.id))
            created = dataclasses.replace(case, id=row.id)
            await case_tallies.move(session, self.engine.dialect.name, [(created, False, 1)])
            queued = await self.outbox.stage(session, messages, datetime.now(UTC))
        if queued:
            self.outbox.changed()
        return created

    async def sms_seen(self, message_id: str) -> tuple[str, int | None] | None:
        """What an SMS the gateway reported before made (its outcome and case), or None: it is new."""
        async with self._sessions() as session:
            row = await session.get(SmsInboundRow, message_id)
        return (row.outcome, row.case_id) if row is not None else None

    async def note_sms(self, sms: dict[str, Any], outcome: str, case_id: int | None) -> None:
        """Keep an SMS that made no case (a survey's answer) by its id; one seen already is left as it is."""
        async with self._sessions.begin() as session:
            await session.execute(insert_new(self.engine.dialect.name, SmsInboundRow, ["message_id"]),
                                  [{**sms, "outcome": outcome, "case_id": case_id}])

    async def open_for_calls(self, cases: Sequence[Opening], missed: Sequence[MissedCall],
                             redraw: Callable[[Case], Case] | None = None) -> int:
        """In one transaction: a case for each call that has none yet, and the missed calls not yet
        listed. Returns how many cases were opened. A call given a case meanwhile (the desk's) keeps
        its own: if that happens between the check and the insert, the transaction fails and is
        to be tried again. Every cti instance sees every call end: they take turns here, so the
        second finds the first's cases instead of failing on them. A case number another case has
        is drawn again by ``redraw`` first (a busy day's thousands of numbers make a clash likely in
        a big batch, and one clash would fail the whole batch)."""
        calls = [linkedid for _, _, linkedid in cases]
        async with self._sessions.begin() as session:
            await take_turn(session, self.engine.dialect.name, CASE_INTAKE)
            taken = set(await session.scalars(select(CaseCallRow.linkedid).where(CaseCallRow.linkedid.in_(calls))))
            # once a call, even when told twice in a batch
            fresh = list({linkedid: (case, event, linkedid) for case, event, linkedid in cases
                          if linkedid not in taken}.values())
            if fresh and redraw is not None:
                fresh = await _numbers_free(session, fresh, redraw)
            if fresh:  # Core inserts, many rows a statement: the ORM's unit of work per row showed in profiles
                ids = list(await session.scalars(
                    insert(CaseRow).returning(CaseRow.id, sort_by_parameter_order=True),
                    [_values(case) for case, _, _ in fresh]))
                await session.execute(insert(CaseEventRow), [
                    _event_values(dataclasses.replace(event, case_id=case_id))
                    for case_id, (_, event, _) in zip(ids, fresh, strict=True)])
                await session.execute(insert(CaseCallRow), [
                    {"linkedid": linkedid, "case_id": case_id, "linked_at": case.created_at}
                    for case_id, (case, _, linkedid) in zip(ids, fresh, strict=True)])
                await case_tallies.move(session, self.engine.dialect.name, [(case, False, 1) for case, _, _ in fresh])
            ids_missed = [m.linkedid for m in missed]
            listed = set(await session.scalars(
                select(MissedCallRow.linkedid).where(MissedCallRow.linkedid.in_(ids_missed))))
            new_missed = {m.linkedid: dataclasses.asdict(m) for m in missed if m.linkedid not in listed}
            if new_missed:
                await session.execute(insert(MissedCallRow), list(new_missed.values()))
        return len(fresh)

    async def save(self, before: Case, after: Case, event: CaseEvent, messages: Sequence[Message] = ()) -> Case:
        """Write a transition, if nobody changed the case since ``before`` was read, with the
        webhook ``messages`` telling its unit (in the same transaction: both or neither)."""
        columns = _values(after)
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(CaseRow).where(CaseRow.id == before.id, CaseRow.version == before.version).values(**columns))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise CaseError("conflict", f"case {before.id} was changed by someone else meanwhile; reload it")
            returned = await case_tallies.was_returned(session, before.id)  # before this event joins them
            session.add(_event_row(event))
            await case_tallies.move(session, self.engine.dialect.name, [(before, returned, -1),
                                              (after, returned or event.action == "return", 1)])
            queued = await self.outbox.stage(session, messages, datetime.now(UTC))
        if queued:
            self.outbox.changed()
        return after

    async def get(self, case_id: int) -> Case | None:
        async with self._sessions() as session:
            row = await session.get(CaseRow, case_id)
        return _case(row) if row is not None else None

    async def find(self, *, states: Sequence[str] | None = None, unit: str | None = None,
                   caller_number: str | None = None, escalated: bool | None = None,
                   channels: Sequence[str] | None = None, reference: str | None = None,
                   taken: bool | None = None,
                   created_from: datetime | None = None, created_to: datetime | None = None,
                   closed_before: datetime | None = None, limit: int = 100, offset: int = 0) -> list[Case]:
        """Cases, newest first."""
        query = select(*CaseRow.__table__.columns)  # rows, not ORM objects: lists are read often
        if states:
            query = query.where(CaseRow.state.in_(list(states)))
        if unit is not None:
            query = query.where(CaseRow.unit == unit)
        if caller_number is not None:
            query = query.where(CaseRow.caller_number == caller_number)
        if escalated is not None:
            query = query.where(CaseRow.escalated_at.is_not(None) if escalated else CaseRow.escalated_at.is_(None))
        if channels:
            query = query.where(CaseRow.channel.in_(list(channels)))
        if reference is not None:
            query = query.where(CaseRow.reference == reference)
        if taken is not None:
            query = query.where(CaseRow.taken_at.is_not(None) if taken else CaseRow.taken_at.is_(None))
        if created_from is not None:
            query = query.where(CaseRow.created_at >= created_from)
        if created_to is not None:
            query = query.where(CaseRow.created_at < created_to)
        if closed_before is not None:
            query = query.where(CaseRow.closed_at <= closed_before)
        query = query.order_by(CaseRow.created_at.desc(), CaseRow.id.desc()).limit(limit).offset(offset)
        async with self._sessions() as session:
            return [_case(row) for row in await session.execute(query)]

    async def events(self, case_id: int) -> list[CaseEvent]:
        query = select(CaseEventRow).where(CaseEventRow.case_id == case_id).order_by(CaseEventRow.id)
        async with self._sessions() as session:
            return [CaseEvent(r.case_id, r.at, r.actor, r.role, r.action, r.from_state, r.to_state, r.details)
                    for r in await session.scalars(query)]

    # -- calls ------------------------------------------------------------------------

    async def link_call(self, case_id: int, linkedid: str, at: datetime) -> bool:
        """Join a call to a case; False when the call already belongs to one."""
        async with self._sessions.begin() as session:
            if await session.get(CaseCallRow, linkedid) is not None:
                return False
            session.add(CaseCallRow(linkedid=linkedid, case_id=case_id, linked_at=at))
        return True

    async def case_of_call(self, linkedid: str) -> int | None:
        async with self._sessions() as session:
            row = await session.get(CaseCallRow, linkedid)
        return row.case_id if row is not None else None

    async def confidential_calls(self, linkedids: Sequence[str]) -> set[str]:
        """Those of ``linkedids`` that belong to a confidential case: their caller is not to be named."""
        if not linkedids:
            return set()
        query = (select(CaseCallRow.linkedid).join(CaseRow, CaseRow.id == CaseCallRow.case_id)
                 .where(CaseCallRow.linkedid.in_(list(linkedids)), CaseRow.confidential))
        async with self._sessions() as session:
            return set(await session.scalars(query))

    async def calls_of(self, case_id: int) -> list[str]:
        query = (select(CaseCallRow.linkedid).where(CaseCallRow.case_id == case_id)
                 .order_by(CaseCallRow.linked_at, CaseCallRow.linkedid))
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def move_calls(self, from_case: int, to_case: int) -> None:
        """并单: the calls of a merged case belong to the case it joined."""
        async with self._sessions.begin() as session:
            await session.execute(update(CaseCallRow).where(CaseCallRow.case_id == from_case).values(case_id=to_case))

    # -- missed calls -------------------------------------------------------------------

    async def add_missed(self, missed: MissedCall) -> bool:
        async with self._sessions.begin() as session:
            if await session.get(MissedCallRow, missed.linkedid) is not None:
                return False
            session.add(MissedCallRow(**dataclasses.asdict(missed)))
        return True

    async def missed(self, *, states: Sequence[str] = ("open",), limit: int = 100,
                     since: datetime | None = None, until: datetime | None = None) -> list[MissedCall]:
        """Missed calls, oldest first (the first to call back)."""
        query = select(MissedCallRow).where(MissedCallRow.state.in_(list(states)))
        if since is not None:
            query = query.where(MissedCallRow.at >= since)
        if until is not None:
            query = query.where(MissedCallRow.at < until)
        query = query.order_by(MissedCallRow.at).limit(limit)
        async with self._sessions() as session:
            return [_missed(row) for row in await session.scalars(query)]

    async def resolve_missed(self, linkedid: str, state: str, by: str, at: datetime,
                             case_id: int | None = None) -> MissedCall | None:
        async with self._sessions.begin() as session:
            row = await session.get(MissedCallRow, linkedid)
            if row is None:
                return None
            row.state, row.resolved_by, row.resolved_at, row.case_id = state, by, at, case_id
        return _missed(row)


def _values(case: Case) -> dict[str, Any]:
    """A case's columns, but its id (the database gives it)."""
    return {name: getattr(case, name) for name in FIELDS if name != "id"}


def _case(row: Any) -> Case:
    return Case(**{name: getattr(row, name) for name in FIELDS})


def _event_values(event: CaseEvent) -> dict[str, Any]:
    return {"case_id": event.case_id, "at": event.at, "actor": event.actor, "role": event.role,
            "action": event.action, "from_state": event.from_state, "to_state": event.to_state,
            "details": event.details}


def _event_row(event: CaseEvent) -> CaseEventRow:
    return CaseEventRow(**_event_values(event))


def _missed(row: MissedCallRow) -> MissedCall:
    return MissedCall(**{f.name: getattr(row, f.name) for f in dataclasses.fields(MissedCall)})


async def _numbers_free(session: AsyncSession, cases: list[Opening], redraw: Callable[[Case], Case]) -> list[Opening]:
    """``cases`` with every case number free: one that another case has, or one of ``cases`` before it, drawn
    again (and checked again: a new draw may clash too). Still clashing after REFERENCE_DRAWS rounds, the insert
    fails and the batch is tried again."""
    for _ in range(REFERENCE_DRAWS):
        wanted = [case.reference for case, _, _ in cases if case.reference]
        taken = set(await session.scalars(select(CaseRow.reference).where(CaseRow.reference.in_(wanted))))
        seen: set[str] = set()
        drawn = 0
        for i, (case, event, linkedid) in enumerate(cases):
            if case.reference and (case.reference in taken or case.reference in seen):
                case = redraw(case)
                cases[i] = (case, event, linkedid)
                drawn += 1
            if case.reference:
                seen.add(case.reference)
        if not drawn:
            break
    return cases
