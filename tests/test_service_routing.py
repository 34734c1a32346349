"""cti serve end to end for routing: the FastAGI decision joins the call record,
an interconnected unit receives the record by webhook, reloads keep the last
good configuration, and a bad one stops serve from starting."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cti.configuration import load_configuration
from cti.service import Service
from cti.settings import AgiSettings, AmiSettings, DatabaseSettings, PathSettings, Settings
from cti.store.calls import CallStore
from cti.store.database import Database
from tests.conftest import REPO
from tests.fakeami import FakeAmi, transcript, until
from tests.test_fastagi import environment

TRUNK_MAP = """\
hotline: {number: "12345", queue: q12345}
units:
  - id: ecology-hotline
    name: 市生态环境局热线中心
    mode: interconnected
    numbers: ["12369"]
    seats: [PJSIP/seat-12369]
    webhook: {url}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    for folder in ("ivr_flows", "agents"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    (tmp_path / "agents" / "agents.yaml").write_text(
        'agents:\n  - {id: "1001", name: 王芳, device: PJSIP/agent1001, queues: [q12345]}\n', encoding="utf-8")
    shutil.copytree(REPO / "recordings", tmp_path / "recordings")
    return tmp_path


async def test_decision_record_and_webhook(workspace: Path, sqlite_db: Database, sqlite_store: CallStore,
                                          unit_endpoint) -> None:
    url, received = unit_endpoint
    (workspace / "trunk_map.yaml").write_text(TRUNK_MAP.replace("{url}", url), encoding="utf-8")
    gate = asyncio.Event()
    session = dataclasses.replace(transcript("P5_sip_agent_blind_110"), gate=gate)
    async with FakeAmi([session]) as server:
        settings = Settings(ami=AmiSettings(port=server.port, secret="cti-secret"), agi=AgiSettings(port=0),
                            database=DatabaseSettings(flush_interval=0.01), paths=PathSettings(),
                            source=str(workspace / "cti.yaml"))
        service = Service(settings, sqlite_db, load_configuration(settings))
        stop = asyncio.Event()
        running = asyncio.create_task(service.run(stop))
        await until(lambda: service.ami.connected.is_set() and service.agi_port, what="the service")
        # Asterisk runs AGI(agi://…/route,12369,linkedid) for the citizen's leg PJSIP/carrier-0000000f
        reader, writer = await asyncio.open_connection("127.0.0.1", service.agi_port)
        writer.write(environment("route", "12369", uniqueid="1795281884.19", linkedid="1795281884.19"))
        commands = []
        while line := await asyncio.wait_for(reader.readline(), 5):
            commands.append(line.decode().strip())
            writer.write(b"200 result=1\n")
        writer.close()
        gate.set()
        await until(lambda: service.writer.written == 1 and received, what="the record and the webhook")
        stop.set()
        await asyncio.wait_for(running, 5)
    assert commands[-1] == 'SET VARIABLE CTI_NEXT "dial"'
    [record] = await sqlite_store.calls()
    assert (record.dialled_number, record.unit, record.unit_id, record.treatment) == (
        "12369", "市生态环境局热线中心", "ecology-hotline", "interconnected")
    timeline = await sqlite_store.timeline(record.linkedid)
    assert [e.kind for e in timeline][:3] == ["offered", "routed", "ivr"]
    [(body, headers)] = received
    assert headers["X-CTI-Linkedid"] == "1795281884.19"
    assert headers["Idempotency-Key"] == '"call.ended:1795281884.19"'
    [stored] = await sqlite_db.outbox.messages()
    assert (stored.state, stored.unit, stored.event, stored.attempts) == ("delivered", "ecology-hotline",
                                                                         "call.ended", 1)
    assert body["event"] == "call.ended"
    call = body["call"]
    assert (call["caller_number"], call["dialled_number"], call["unit"], call["answered_by"]) == (
        "13800000043", "12369", "市生态环境局热线中心", "PJSIP/agent1001")
    assert call["transfers"][0]["target"] == "110"


async def test_reload_keeps_the_last_good_configuration(workspace: Path, sqlite_db: Database, sqlite_store: CallStore,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    (workspace / "trunk_map.yaml").write_text(TRUNK_MAP.replace("{url}", "http://127.0.0.1:9/x"), encoding="utf-8")
    settings = Settings(paths=PathSettings(), source=str(workspace / "cti.yaml"))
    service = Service(settings, sqlite_db, load_configuration(settings))
    good = service.configuration
    (workspace / "trunk_map.yaml").write_text(TRUNK_MAP.replace("{url}", "http://x").replace("interconnected",
                                                                                      "interconected"))
    with caplog.at_level(logging.ERROR):
        assert service.reload() is False
    assert service.configuration is good
    assert "configuration reload refused, keeping the last good one" in caplog.text
    assert "units[0].mode: unknown mode 'interconected' (did you mean 'interconnected'?)" in caplog.text
    shutil.copy(REPO / "trunk_map.yaml", workspace / "trunk_map.yaml")
    assert service.reload() is True
    assert len(service.configuration.trunk_map.units) == 51


def test_serve_refuses_to_start_on_a_bad_map(workspace: Path) -> None:
    (workspace / "trunk_map.yaml").write_text(TRUNK_MAP.replace("{url}", "http://x").replace('["12369"]', '["110"]'),
                                              encoding="utf-8")
    (workspace / "cti.yaml").write_text("{}\n", encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
    result = subprocess.run([sys.executable, "-m", "cti.cli", "--settings", "cti.yaml", "serve"], cwd=workspace,
                            env=environ, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "trunk_map.yaml:6: units[0].numbers[0]: 110 is an emergency number: it stays separate (mode: emergency) "
        "and is never routed into 12345",
        "cti: 1 problem(s) in the configuration"]
