"""What cti needs from its PBX, checked against the simulated Asterisk always and against a real
one when ``CTI_LIVE_AMI`` names it (``host:port``; the secret of user cti in ``CTI_LIVE_AMI_SECRET``):
a login, a refused wrong secret, the channel list cti resynchronises from, the hotline's queue,
Asterisk's error for an action on a channel that does not exist, and least privilege: cti's user
cannot run a shell command through Originate, the CLI or MixMonitor. Nothing is changed on the PBX."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from cti.ami.client import AmiActionError, AmiClient, AmiLoginError
from cti.ami.message import AmiMessage
from cti.configuration import load_configuration
from cti.settings import AmiSettings, Settings
from cti.sim.world import World
from tests.conftest import REPO_PATHS
from tests.fakeami import until

LIVE = os.environ.get("CTI_LIVE_AMI", "")


@pytest.fixture(params=["simulated", "live"])
async def pbx(request: pytest.FixtureRequest) -> AsyncIterator[AmiSettings]:
    if request.param == "live":
        if not LIVE:
            pytest.skip("no live Asterisk: set CTI_LIVE_AMI=host:port and CTI_LIVE_AMI_SECRET")
        host, _, port = LIVE.rpartition(":")
        yield AmiSettings(host=host, port=int(port), secret=os.environ.get("CTI_LIVE_AMI_SECRET", ""))
        return
    world = World(load_configuration(Settings(paths=REPO_PATHS)), agi_url="agi://127.0.0.1:9", secret="checks")
    port = await world.start()
    yield AmiSettings(port=port, secret="checks")
    await world.close()


async def connected(settings: AmiSettings, seen: list[AmiMessage]) -> tuple[AmiClient, asyncio.Task[None]]:
    client = AmiClient(settings, seen.append)
    task = asyncio.create_task(client.run())
    await until(lambda: client.connected.is_set() or task.done(), what="the AMI login", timeout=10)
    if task.done():
        task.result()
    return client, task


async def test_cti_logs_in_and_reads_what_it_resyncs_from(pbx: AmiSettings) -> None:
    client, task = await connected(pbx, [])
    try:
        channels = await client.collect({"Action": "CoreShowChannels"})
        assert all(c.name == "CoreShowChannel" for c in channels)
        queue = await client.collect({"Action": "QueueStatus", "Queue": "q12345"})
        assert [m.get("queue") for m in queue if m.name == "QueueParams"] == ["q12345"]  # asterisk-conf's queue
        with pytest.raises(AmiActionError) as refused:
            await client.send({"Action": "Hangup", "Channel": "PJSIP/cti-check-nobody-00000000"})
        assert refused.value.reason == "No such channel"  # Asterisk's words (S10)
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)


async def test_a_wrong_secret_is_refused(pbx: AmiSettings) -> None:
    client = AmiClient(AmiSettings(host=pbx.host, port=pbx.port, secret="not-the-secret"), lambda m: None)
    with pytest.raises(AmiLoginError, match="Authentication failed"):
        await asyncio.wait_for(client.run(), 10)


async def test_cti_cannot_run_anything_on_the_pbx(pbx: AmiSettings) -> None:
    """manager.conf gives cti no "system" or "command" write class: Originate of System is refused
    before anything is dialled (the Channel names no endpoint, so nothing rings even if it were not)."""
    client, task = await connected(pbx, [])
    try:
        with pytest.raises(AmiActionError) as refused:
            await client.send({"Action": "Originate", "Channel": "Local/cti-check@cti-check-nowhere",
                               "Application": "System", "Data": "touch /tmp/cti-was-here", "Async": "true"})
        assert refused.value.reason == "Originate Access Forbidden: app or data blacklisted"
        for action in ({"Action": "Command", "Command": "core show version"},
                       {"Action": "MixMonitor", "Channel": "PJSIP/cti-check-nobody-00000000", "File": "/tmp/x.wav"}):
            with pytest.raises(AmiActionError) as denied:
                await client.send(action)
            assert denied.value.reason == "Permission denied"
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)
