"""``cti serve`` wiring: the AMI link, the pipeline and the store together."""

from __future__ import annotations

import asyncio
import dataclasses

from cti.configuration import load_configuration
from cti.service import Service
from cti.settings import AgiSettings, AmiSettings, DatabaseSettings, Settings, WebSettings
from cti.store.calls import CallStore
from cti.store.database import Database
from tests.conftest import REPO_PATHS
from tests.fakeami import FakeAmi, transcript, until


async def test_serve_records_the_calls_asterisk_reports(sqlite_db: Database, sqlite_store: CallStore) -> None:
    sessions = [transcript("R1_ami_client_reconnect_midcall"), transcript("R1b_ami_client_reconnect_midcall")]
    async with FakeAmi(sessions) as server:
        settings = Settings(ami=AmiSettings(port=server.port, secret="cti-secret", reconnect_min=0.01,
                                            reconnect_max=0.02),
                            agi=AgiSettings(port=0), web=WebSettings(port=0),
                            database=DatabaseSettings(flush_interval=0.01), paths=REPO_PATHS)
        service = Service(settings, sqlite_db, load_configuration(settings))
        stop = asyncio.Event()
        running = asyncio.create_task(service.run(stop))
        await asyncio.wait_for(server.finished.wait(), 10)
        await until(lambda: service.writer.written == 1, what="the call record to be written")
        stop.set()
        await asyncio.wait_for(running, 5)
    [record] = await sqlite_store.calls()
    # live times come from the read clock: only their order is certain here
    assert dataclasses.astuple(record)[:5] == ("1795281932.37", "inbound", "13800000045", "Citizen", "12369")
    assert record.answered_by == "PJSIP/agent1001" and record.talk_time == 30.0 and not record.estimated
    assert record.arrived_at <= record.answered_at <= record.ended_at
    assert service.ami.sessions == 3  # the two captured sessions, then an idle Asterisk
    assert len(server.actions("CoreShowChannels")) == 3  # a resync after each login
