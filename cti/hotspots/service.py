"""The detectors at work: a sweep every ``alerts.sweep_seconds`` (cases.yaml) counts in the database, reads the
last hour's cases for their words, and keeps the alerts: a new one goes once to every supervisor's and admin's
desk (the WebSocket's alert message) and to ``alerts.webhook`` through the durable outbox (alert.raised); one
over goes the same ways as cleared (alert.cleared). The alerts are kept in the database with their webhook
messages (cti.store.alerts): a restart reads back those in force and raises none of them again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from cti.cases.catalogue import AlertRules
from cti.cases.model import CATEGORIES
from cti.hotspots import queries
from cti.hotspots.detect import Alert, AlertBook, Detection, bursts, repeats, spikes
from cti.hotspots.text import warm_up
from cti.privacy import mask
from cti.store.alerts import AlertStore
from cti.store.outbox import Message, OutboxStore, message

log = logging.getLogger(__name__)
UNIT = "alerts"  # the outbox's unit column for alert messages (they are the centre's, no unit's)


def now_utc() -> datetime:
    return datetime.now(UTC)


class HotspotService:
    def __init__(self, engine: AsyncEngine, outbox: OutboxStore, rules: Callable[[], AlertRules], zone: ZoneInfo, *,
                 notify: Callable[[dict[str, Any]], None] | None = None,
                 clock: Callable[[], datetime] = now_utc) -> None:
        self.engine = engine
        self.outbox = outbox
        self._rules = rules
        self.zone = zone
        self.notify = notify  # the hub's on_alert
        self.clock = clock
        self.book = AlertBook()
        self.words = queries.TopicWords()
        self.store = AlertStore(engine, outbox)
        self._loaded = False  # the alerts in force read back from the database (a restart raises none again)
        self.last_sweep: datetime | None = None

    @property
    def rules(self) -> AlertRules:
        return self._rules()

    async def detect(self, now: datetime | None = None, *, unit: str | None = None) -> list[Detection]:
        """Everything the detectors find now (a unit's own cases and calls only, with ``unit``)."""
        now = now or self.clock()
        rules = self.rules
        spike = rules.spike
        day = timedelta(hours=spike.window_hours)
        found = spikes(await queries.case_cells(self.engine, now, day, spike.weeks, unit=unit), spike, now - day,
                       what="工单", names=CATEGORIES)
        hour = timedelta(minutes=spike.call_window_minutes)
        found += spikes(await queries.call_cells(self.engine, now, hour, spike.weeks, unit=unit), spike,
                        now - hour, what="来电")
        recent = await queries.recent_cases(self.engine, now - timedelta(minutes=rules.burst.minutes), self.words,
                                            unit=unit)
        found += bursts(recent, rules.burst)
        callers = await queries.repeat_callers(self.engine, now - timedelta(hours=rules.repeat.hours),
                                               rules.repeat.calls, unit=unit)
        found += repeats(callers, rules.repeat, {c.caller_number: mask(c.caller_number) for c in callers})
        return [_masked(d) for d in found]

    async def sweep(self) -> tuple[list[Alert], list[Alert]]:
        """Run the detectors; raise the new alerts and clear those over. Returns (raised, cleared)."""
        now = self.clock()
        rules = self.rules
        self.book.clear_after = timedelta(minutes=rules.clear_after_minutes)
        detections = await self.detect(now)
        if not self._loaded:
            self.book.alerts = {a.id: a for a in await self.store.in_force()}
            self._loaded = True
        raised, cleared = self.book.update(detections, now)
        kept = [a for a in self.book.current() if a not in raised]
        messages = [(a, a.message("raised", now, self.zone)) for a in raised] + [
            (a, a.message("cleared", now, self.zone)) for a in cleared]
        webhooks = [self._webhook(rules.webhook, a, m) for a, m in messages] if rules.webhook else []
        await self.store.save(raised, kept, cleared, webhooks, now)
        for _, body in messages:
            if self.notify is not None:
                self.notify(body)
        self.last_sweep = now
        for alert in raised:
            log.warning("alert raised: %s", alert.detection.title)
        return raised, cleared

    def _webhook(self, url: str, alert: Alert, body: dict[str, Any]) -> Message:
        event = f"alert.{body['state']}"
        fields = {k: v for k, v in body.items() if k != "type"}
        # raised once and cleared once: the key holds when it was raised (kept with the alert), so a sweep retried
        # after a failed commit sends nothing twice, and an alert raised again after it cleared is news
        key = f"{event}:{alert.id}:{alert.raised_at.isoformat()}"
        return message(url, UNIT, event, key, {"event": event, "alert": fields},
                       {"X-CTI-Event": event, "X-CTI-Alert": alert.id})

    def current(self) -> list[dict[str, Any]]:
        """The alerts in force, as their raising message said them (their counts refreshed)."""
        return [a.message("raised", a.raised_at, self.zone) for a in self.book.current()]

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(warm_up)  # jieba's dictionary: a second, off the event loop
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:  # the next sweep tries again
                log.exception("hotspot sweep failed")
            try:
                await asyncio.wait_for(stop.wait(), self.rules.sweep_seconds)
            except TimeoutError:
                pass


def _masked(detection: Detection) -> Detection:
    """A repeat caller's number masked in what the alert says (its key keeps the number)."""
    number = detection.details.get("caller_number")
    if not number:
        return detection
    details = {**detection.details, "caller_number": mask(str(number))}
    return Detection(detection.kind, detection.key, detection.severity, detection.title, details, detection.since)
