"""``cti serve``: the AMI link, the call pipeline and the record store, wired together."""

from __future__ import annotations

import asyncio
import logging
import time

from cti.ami.client import AmiClient
from cti.ami.clock import ReceiveClock
from cti.calls.tracker import CallTracker
from cti.pipeline import CallPipeline
from cti.settings import Settings
from cti.store.calls import CallStore
from cti.store.writer import RecordWriter

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings, store: CallStore) -> None:
        self.settings = settings
        self.store = store
        self.writer = RecordWriter(store, batch_size=settings.database.batch_size,
                                   flush_interval=settings.database.flush_interval)
        self.tracker = CallTracker(settings.ami.inbound_contexts, settings.ami.outbound_contexts)
        self.pipeline = CallPipeline(self.tracker, ReceiveClock(), self.writer.put)
        self.ami = AmiClient(settings.ami, self.pipeline.on_message,
                             on_connected=self._resync, on_lost=self._lost)

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
        link = asyncio.create_task(self.ami.run(), name="ami-link")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait([link, stopping], return_when=asyncio.FIRST_COMPLETED)
            if link.done():
                link.result()  # raises the login error
        finally:
            stopping.cancel()
            await self.ami.close()
            if not link.done():
                await asyncio.wait([link], timeout=2)
                link.cancel()
            await self.writer.close()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    store = await CallStore.open(settings.database.url)
    try:
        await Service(settings, store).run(stop)
    finally:
        await store.close()
