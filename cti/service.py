"""``cti serve``: the AMI link, the call pipeline and the record store, wired together."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import datetime

from cti.agi.server import AgiCall, FastAgiServer
from cti.ami.client import AmiClient
from cti.ami.clock import ReceiveClock
from cti.calls.events import IvrFinished, RouteDecided
from cti.calls.record import CallRecord
from cti.calls.tracker import CallTracker
from cti.configuration import Configuration, load_configuration
from cti.ivr.engine import Outcome
from cti.pipeline import CallPipeline
from cti.routing.model import Decision
from cti.routing.router import decide
from cti.settings import Settings
from cti.store.database import Database
from cti.store.writer import RecordWriter
from cti.webhooks import WebhookSender
from cti.yamlconfig import ConfigError

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings, database: Database, configuration: Configuration) -> None:
        self.settings = settings
        self.database = database
        store = database.calls
        self.configuration = configuration
        self.writer = RecordWriter(store, batch_size=settings.database.batch_size,
                                   flush_interval=settings.database.flush_interval)
        self.tracker = CallTracker(settings.ami.inbound_contexts, settings.ami.outbound_contexts)
        self.webhooks = WebhookSender(settings.zone)
        self.pipeline = CallPipeline(self.tracker, ReceiveClock(), self._finished)
        self.ami = AmiClient(settings.ami, self.pipeline.on_message,
                             on_connected=self._resync, on_lost=self._lost)
        self.agi = FastAgiServer(self.route, lambda: self.configuration.flows,
                                 on_decision=self._decided, on_outcome=self._ivr_finished)
        self.agi_port = 0

    def _finished(self, record: CallRecord) -> None:
        """A call ended: store it, and share it with its unit when the unit is interconnected."""
        self.writer.put(record)
        if record.unit_id:
            unit = self.configuration.trunk_map.units_by_id.get(record.unit_id)
            if unit is not None and unit.webhook:
                self.webhooks.send(unit.webhook, record)

    def route(self, number: str, at: datetime) -> Decision:
        return decide(self.configuration.trunk_map, number, at)

    def reload(self) -> bool:
        """Re-read the integrators' files; on any problem keep the last good configuration."""
        try:
            configuration = load_configuration(self.settings)
        except ConfigError as exc:
            log.error("configuration reload refused, keeping the last good one:\n%s", exc)
            return False
        self.configuration = configuration
        log.info("configuration reloaded: %s", configuration.summary())
        return True

    def _decided(self, call: AgiCall, decision: Decision, at: float) -> None:
        self.pipeline.note(call.uniqueid, call.linkedid, lambda linkedid: RouteDecided(
            linkedid, at, decision.number, decision.unit or "", decision.unit_id or "", decision.treatment,
            decision.action))

    def _ivr_finished(self, call: AgiCall, flow: str, outcome: Outcome, at: float) -> None:
        self.pipeline.note(call.uniqueid, call.linkedid, lambda linkedid: IvrFinished(
            linkedid, at, flow, outcome.next, dict(outcome.answers), outcome.hung_up))

    async def _resync(self) -> None:
        """After every login: list the live channels. The tracker reads the list from
        the stream, in order, and ends the calls that finished while the link was down."""
        channels = await self.ami.collect({"Action": "CoreShowChannels"})
        log.info("AMI resync: %d live channels, %d calls tracked", len(channels), len(self.tracker.calls))

    def _lost(self) -> None:
        self.pipeline.on_link_lost(time.time())

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; an AMI login refusal ends it with AmiLoginError."""
        self.writer.start()
        self.webhooks.start()
        self.agi_port = await self.agi.start(self.settings.agi.host, self.settings.agi.port)
        link = asyncio.create_task(self.ami.run(), name="ami-link")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait([link, stopping], return_when=asyncio.FIRST_COMPLETED)
            if link.done():
                link.result()  # raises the login error
        finally:
            stopping.cancel()
            await self.agi.close()
            await self.ami.close()
            if not link.done():
                await asyncio.wait([link], timeout=2)
                link.cancel()
            await self.writer.close()
            await self.webhooks.close()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """``cti serve``: refuses to start on a bad configuration (ConfigError); SIGHUP reloads it."""
    configuration = load_configuration(settings)
    log.info("configuration: %s", configuration.summary())
    database = await Database.open(settings.database.url)
    try:
        service = Service(settings, database, configuration)
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, service.reload)
        await service.run(stop)
    finally:
        await database.close()
