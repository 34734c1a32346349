"""Screen-pops: domain events in, JSON messages out to the right desks.

A pop reaches only its own agent: the phone that rings (a queue member
interface or a remote seat's device) names the person, and only that person's
connections get it. It arrives at ring (LegRinging), not at answer; the
caller's earlier calls follow in a second message, so the database never
delays the pop. Each connection has its own queue and writer task: a slow
browser cannot hold up the AMI path or the other desks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from cti.agents.board import AgentStatus
from cti.agents.directory import Directory
from cti.calls.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallTransferred,
    LegEnded,
    LegRinging,
    RecordingStarted,
    TransferFailed,
)
from cti.calls.record import CallRecord, LiveCall, iso_time
from cti.cases.model import CATEGORIES, Case
from cti.store.users import User

log = logging.getLogger(__name__)

History = Callable[[str], Awaitable[list[CallRecord]]]
CaseHistory = Callable[[str], Awaitable[list[Case]]]
QUEUE_LIMIT = 1000  # messages waiting for one browser before it is cut off


@dataclass(eq=False)
class Connection:
    user: User
    send: Callable[[str], Awaitable[None]]
    close: Callable[[], Awaitable[Any]]
    token: str = ""  # what it signed in with: a sign-out closes it
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    task: asyncio.Task[None] | None = None

    @property
    def person(self) -> str | None:
        return self.user.agent_id


class PopHub:
    def __init__(self, directory: Callable[[], Directory], live: Callable[[str], LiveCall | None],
                 history: History, case_history: CaseHistory | None = None, zone: ZoneInfo | None = None) -> None:
        self._directory = directory
        self.zone = zone  # the service's: every time a desk is sent is in it (None: UTC)
        self._live = live
        self._history = history
        self._case_history = case_history
        self.connections: set[Connection] = set()
        # indexes, so that an event costs the same with 10 desks open or 2,000
        self._desks: dict[str, set[Connection]] = {}  # person id -> their open desks
        self._supervising: set[Connection] = set()  # supervisors' and admins' desks
        self._pops: dict[str, set[str]] = {}  # Linkedid -> the people with a pop of it on their desk
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.alerts: dict[str, dict[str, Any]] = {}  # id -> the alert raised (WsAlert), until it is cleared

    # -- connections ----------------------------------------------------------------

    def attach(self, connection: Connection) -> None:
        connection.task = asyncio.create_task(self._write(connection), name=f"desk-{connection.user.id}")
        self.connections.add(connection)
        if connection.person:
            self._desks.setdefault(connection.person, set()).add(connection)
        if connection.user.role in ("supervisor", "admin"):
            self._supervising.add(connection)

    async def detach(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self._supervising.discard(connection)
        desks = self._desks.get(connection.person or "")
        if desks is not None:
            desks.discard(connection)
            if not desks:
                del self._desks[connection.person or ""]
        if connection.task is not None:
            connection.task.cancel()

    async def end(self, connection: Connection, reason: str) -> None:
        """Tell a desk its sign-in no longer holds, and close it (WebSocket code 4401)."""
        await self.detach(connection)
        try:
            await connection.send(json.dumps({"type": "error", "error": {"code": "unauthorized", "message": reason}},
                                             ensure_ascii=False))
        except ConnectionError:
            pass
        await connection.close()

    async def revoke(self, token: str) -> None:
        """The token was revoked (signed out): the desks it opened close now."""
        for connection in [c for c in self.connections if c.token == token]:
            await self.end(connection, "signed out")

    async def close(self) -> None:
        for connection in list(self.connections):
            await self.detach(connection)
            await connection.close()

    async def _write(self, connection: Connection) -> None:
        while True:
            text = await connection.queue.get()
            try:
                await connection.send(text)
            except ConnectionError:
                return
            self.sent += 1

    def _deliver(self, connections: Sequence[Connection], message: dict[str, Any]) -> None:
        text = json.dumps(message, ensure_ascii=False)
        for connection in connections:
            try:
                connection.queue.put_nowait(text)
            except asyncio.QueueFull:
                log.warning("desk of %s is not reading; disconnecting it", connection.user.id)
                self._spawn(self._drop(connection))

    async def _drop(self, connection: Connection) -> None:
        await self.detach(connection)
        await connection.close()

    def present(self, person_id: str) -> bool:
        """Whether the person has a desk open."""
        return bool(self._for_person(person_id))

    def _for_person(self, person_id: str) -> list[Connection]:
        return list(self._desks.get(person_id, ()))

    def _supervisors(self) -> list[Connection]:
        return list(self._supervising)

    # -- events ---------------------------------------------------------------------

    def on_events(self, events: Sequence[CallEvent]) -> None:
        """A pipeline subscriber: called with each batch of domain events, in order."""
        for event in events:
            if isinstance(event, LegRinging):
                self._ringing(event)
            elif isinstance(event, LegEnded):
                if event.outcome != "answered":
                    self._person_message(event.device, event.linkedid, {"type": "cleared", "outcome": event.outcome},
                                         forget=True)
            elif isinstance(event, CallAnswered):
                call = self._live(event.linkedid)
                self._person_message(event.answered_by, event.linkedid, {
                    "type": "answered", "call": call.to_json(self.zone) if call else None,
                    "queue_wait": event.queue_wait})
            elif isinstance(event, CallTransferred):
                self._to_call(event.linkedid, {"type": "transferred", "kind": event.transfer_kind,
                                               "target": event.target})
            elif isinstance(event, TransferFailed):
                self._to_call(event.linkedid, {"type": "transfer_failed", "kind": event.transfer_kind,
                                               "target": event.target, "result": event.result})
            elif isinstance(event, RecordingStarted):
                self._to_call(event.linkedid, {"type": "recording", "file": event.file})
            elif isinstance(event, CallEnded):
                self._to_call(event.linkedid, {"type": "ended", "cause": event.cause, "cause_text": event.cause_text,
                                               "estimated": event.estimated})
                self._pops.pop(event.linkedid, None)

    def on_agent(self, statuses: Sequence[AgentStatus]) -> None:
        """Agent state changes: to the agent's own desk, and to supervisors'."""
        for status in statuses:
            message = {"type": "agent", "status": status.to_json()}
            self._deliver([*self._for_person(status.agent_id), *self._supervisors()], message)

    def on_alert(self, message: dict[str, Any]) -> None:
        """An alert raised or cleared ({"type": "alert", …}, schemas.WsAlert): to every supervisor's and admin's
        desk. The alerts raised and not cleared are kept, for the wallboard's snapshot."""
        if message.get("state") == "cleared":
            self.alerts.pop(message["id"], None)
        else:
            self.alerts[message["id"]] = message
        self._deliver(self._supervisors(), message)

    def to_supervisors(self, message: dict[str, Any]) -> None:
        """A message for every supervisor's and admin's socket (the wallboard's updates)."""
        self._deliver(self._supervisors(), message)

    @property
    def supervising(self) -> int:
        """Supervisors' and admins' sockets open."""
        return len(self._supervising)

    def on_link(self, up: bool) -> None:
        """The PBX link went down or came back: every desk shows it."""
        self._deliver(list(self.connections), {"type": "link", "state": "up" if up else "down"})

    def _ringing(self, event: LegRinging) -> None:
        person = self._directory().by_phone(event.device)
        if person is None:
            return
        call = self._live(event.linkedid)
        if call is None:
            return
        self._pops.setdefault(event.linkedid, set()).add(person.id)
        targets = self._for_person(person.id)
        self._deliver(targets, {"type": "ringing", "linkedid": event.linkedid, "device": event.device,
                                "call": call.to_json(self.zone)})
        if targets and call.caller_number:
            self._spawn(self._send_history(person.id, call))

    async def _send_history(self, person_id: str, call: LiveCall) -> None:
        try:
            records = await self._history(call.caller_number)
            cases = await self._case_history(call.caller_number) if self._case_history else []
        except Exception:  # the pop is already on the desk; a missing history is not worth a crash
            log.exception("history of %s for the screen-pop failed", call.caller_number)
            return
        earlier = [summary(r, self.zone) for r in records if r.linkedid != call.linkedid]
        self._deliver(self._for_person(person_id), {"type": "history", "linkedid": call.linkedid, "calls": earlier,
                                                    "cases": [case_summary(c, self.zone) for c in cases]})

    def _person_message(self, device: str, linkedid: str, message: dict[str, Any], forget: bool = False) -> None:
        person = self._directory().by_phone(device)
        if person is None or person.id not in self._pops.get(linkedid, ()):
            return
        if forget:
            self._pops[linkedid].discard(person.id)
        self._deliver(self._for_person(person.id), {**message, "linkedid": linkedid})

    def _to_call(self, linkedid: str, message: dict[str, Any]) -> None:
        people = self._pops.get(linkedid, ())
        self._deliver([c for p in people for c in self._for_person(p)], {**message, "linkedid": linkedid})

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def case_summary(case: Case, zone: ZoneInfo | None = None) -> dict[str, Any]:
    """An earlier case of the caller, as a pop lists it (times in ``zone``, else as stored)."""
    def at(value: datetime | None) -> str | None:
        return None if value is None else (value.astimezone(zone) if zone else value).isoformat()

    return {"id": case.id, "created_at": at(case.created_at), "category": case.category,
            "category_name": CATEGORIES[case.category], "state": case.state, "unit": case.unit,
            "content": case.content[:80], "due_at": at(case.due_at), "satisfaction": case.satisfaction}


def summary(record: CallRecord, zone: ZoneInfo | None = None) -> dict[str, Any]:
    """An earlier call, as a pop lists it (times in ``zone``, default UTC)."""
    return {"linkedid": record.linkedid, "arrived_at": iso_time(record.arrived_at, zone),
            "dialled_number": record.dialled_number, "unit": record.unit, "treatment": record.treatment,
            "answered_by": record.answered_by_name or record.answered_by, "answered": record.answered,
            "recorded": bool(record.recording),
            "transfers": [{"kind": t.kind, "target": t.target} for t in record.transfers]}
