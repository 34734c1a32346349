"""The AMI client edge against a fake Asterisk over real TCP."""

from __future__ import annotations

import asyncio
import time

import pytest

from cti.ami.client import AmiActionError, AmiClient, AmiDisconnected, AmiLoginError, AmiTimeout
from cti.ami.message import AmiMessage
from cti.settings import AmiSettings
from tests.fakeami import FakeAmi, Session, raw_session, until


def settings(server: FakeAmi, **overrides: object) -> AmiSettings:
    values = dict(port=server.port, secret="cti-secret", action_timeout=1.0, reconnect_min=0.01,
                  reconnect_max=0.05, liveness_interval=30.0, liveness_timeout=1.0)
    values.update(overrides)
    return AmiSettings(**values)  # type: ignore[arg-type]


class Link:
    """A client running against a server, with what it received."""

    def __init__(self, ami_settings: AmiSettings, **options: object) -> None:
        self.messages: list[AmiMessage] = []
        self.lost = 0
        self.client = AmiClient(ami_settings, self.messages.append, on_lost=self._on_lost, **options)  # type: ignore[arg-type]
        self.task: asyncio.Task[None] | None = None

    def _on_lost(self) -> None:
        self.lost += 1

    async def __aenter__(self) -> Link:
        self.task = asyncio.create_task(self.client.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


async def test_a_refused_login_stops_with_a_clear_error() -> None:
    async with FakeAmi([Session(close_at_end=False)], secret="the-right-one") as server:
        client = AmiClient(settings(server, secret="wrong-secret"), lambda m: None)
        with pytest.raises(AmiLoginError) as refused:
            await asyncio.wait_for(client.run(), 5)
    message = str(refused.value)
    assert f"Asterisk at 127.0.0.1:{server.port} refused the AMI login of user 'cti'" in message
    assert "Authentication failed" in message  # Asterisk's own words (trace S9)
    assert "CTI_AMI_SECRET" in message
    assert server.connections == 1  # no hammering with the same bad secret


async def test_a_silent_peer_is_detected_and_the_link_rebuilt() -> None:
    async with FakeAmi([Session(silent=True), Session(close_at_end=False)]) as server:
        async with Link(settings(server, liveness_interval=0.2, liveness_timeout=0.2)) as link:
            await until(lambda: link.client.connected.is_set(), what="first login")
            started = time.monotonic()
            await until(lambda: link.lost == 1, what="the silent peer to be dropped")
            detected = time.monotonic() - started
            await until(lambda: link.client.sessions == 2, what="the second login")
    assert detected < 0.2 + 0.2 + 0.3  # within the interval, the ping timeout and scheduling slack
    assert server.connections == 2
    assert len(server.actions("Ping")) >= 1


async def test_every_action_has_a_timeout() -> None:
    async with FakeAmi([Session(close_at_end=False, on_action={"QueueStatus": "ignore"})]) as server:
        async with Link(settings(server)) as link:
            await until(lambda: link.client.connected.is_set())
            started = time.monotonic()
            with pytest.raises(AmiTimeout) as late:
                await link.client.collect({"Action": "QueueStatus"}, timeout=0.3)
            assert 0.3 <= time.monotonic() - started < 1.0
            assert "AMI QueueStatus" in str(late.value) and "within 0.3s" in str(late.value)
            pong = await link.client.send({"Action": "Ping"})  # the link is still fine
            assert pong.get("ping") == "Pong"


async def test_an_originate_is_never_sent_twice_after_a_reconnect() -> None:
    dropping = Session(close_at_end=False, on_action={"Originate": "drop"})
    async with FakeAmi([dropping, Session(close_at_end=False)]) as server:
        async with Link(settings(server)) as link:
            await until(lambda: link.client.connected.is_set())
            with pytest.raises(AmiDisconnected):
                await link.client.send({"Action": "Originate", "Channel": "PJSIP/13800000008@carrier",
                                        "Context": "callback", "Exten": "13800000008", "Async": "true"})
            await until(lambda: link.client.sessions == 2, what="the reconnect")
            await link.client.send({"Action": "Ping"})
    assert len(server.actions("Originate")) == 1


async def test_actions_fail_fast_while_the_link_is_down() -> None:
    async with FakeAmi([Session()]) as server:
        client = AmiClient(settings(server), lambda m: None)
        with pytest.raises(AmiDisconnected, match="is down; Originate not sent"):
            await client.send({"Action": "Originate"})


async def test_asterisk_errors_come_back_with_its_message() -> None:
    # the exact texts of trace S10
    session = Session(close_at_end=False, on_action={
        "QueueAdd": "error:Unable to add interface to queue: No such queue",
        "QueuePause": "reply:Interface paused successfully"})
    async with FakeAmi([session]) as server:
        async with Link(settings(server)) as link:
            await until(lambda: link.client.connected.is_set())
            with pytest.raises(AmiActionError) as failed:
                await link.client.send({"Action": "QueueAdd", "Queue": "nosuchqueue",
                                        "Interface": "PJSIP/agent1002"})
            assert failed.value.reason == "Unable to add interface to queue: No such queue"
            paused = await link.client.send({"Action": "QueuePause", "Interface": "PJSIP/agent1001",
                                             "Paused": "true"})
            assert paused.get("message") == "Interface paused successfully"


async def test_queueadd_completes_on_its_single_response() -> None:
    """panoramisk 1.4 waits for more after "Added interface to queue" and never returns."""
    session = Session(close_at_end=False, on_action={"QueueAdd": "reply:Added interface to queue"})
    async with FakeAmi([session]) as server:
        async with Link(settings(server)) as link:
            await until(lambda: link.client.connected.is_set())
            response = await link.client.send({"Action": "QueueAdd", "Queue": "q12345",
                                               "Interface": "PJSIP/agent1001"}, timeout=1)
    assert response.get("message") == "Added interface to queue"


async def test_a_connection_closed_before_the_banner_is_retried() -> None:
    """After `core restart now` Asterisk accepted a connection and closed it without a banner (R2)."""
    async with FakeAmi([Session(banner=False), Session(close_at_end=False)]) as server:
        async with Link(settings(server)) as link:
            await until(lambda: link.client.sessions == 1, what="the login after the retry")
    assert server.connections == 2


async def test_connection_refused_is_retried_with_backoff() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = AmiClient(AmiSettings(port=port, reconnect_min=0.01, reconnect_max=0.02), lambda m: None)
    running = asyncio.create_task(client.run())
    await asyncio.sleep(0.2)
    assert not running.done()  # still trying, no crash
    await client.close()
    await asyncio.wait_for(running, 2)


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    ami = AmiSettings(reconnect_min=0.5, reconnect_max=30)
    low = AmiClient(ami, lambda m: None, rng=lambda: 0.0)
    high = AmiClient(ami, lambda m: None, rng=lambda: 1.0)
    assert [low._backoff(n) for n in range(8)] == [0.25, 0.5, 1, 2, 4, 8, 15, 15]
    assert [high._backoff(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


async def test_malformed_frames_do_not_break_the_link() -> None:
    data = (b"Event: FullyBooted\r\n\r\n"
            b"garbage without any header\r\n\r\n"
            b"Event: Newchannel\r\nCallerIDName: \xe5\xb8\x82\xff\r\n\r\n"
            b"Event: Hangup\r\nChannel: PJSIP/carrier-00000001\r\n\r\n")
    async with FakeAmi([raw_session(data, close_at_end=False, answer_resync=False, booted=None)]) as server:
        async with Link(settings(server)) as link:
            # the login's answer and the events come in one read: the events may be taken before the login
            # coroutine resumes and says the link is up
            await until(lambda: any(m.name == "Hangup" for m in link.messages) and link.client.connected.is_set(),
                        what="the last event, on a link that is up")
    events = [m for m in link.messages if m.kind == "event"]
    assert [m.name for m in events] == ["FullyBooted", "Newchannel", "Hangup"]
    assert events[1].get("calleridname") == "市\ufffd"


async def test_every_message_reaches_the_pipeline_in_stream_order() -> None:
    """List items go to the pipeline as they arrive, not only to the waiting action."""
    async with FakeAmi([Session(close_at_end=False)]) as server:
        async with Link(settings(server)) as link:
            await until(lambda: link.client.connected.is_set())
            items = await link.client.collect({"Action": "CoreShowChannels"})
            assert items == []
            assert [m.name for m in link.messages] == ["Success", "FullyBooted", "Success", "CoreShowChannelsComplete"]
