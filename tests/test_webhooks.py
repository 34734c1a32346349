"""Webhooks to units from the durable outbox (its store: tests/test_outbox.py): a case's notice
saved with its transition (SQLite and PostgreSQL); the sender against real HTTP receivers on
127.0.0.1 (port 0) on a real SQLite file — a unit that is down does not delay a healthy one,
backoff per destination, a slow receiver, a refused message, a restart, no eviction, dead after
give-up — and the admin routes and metrics of a running service."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from cti.cases.catalogue import HandlingUnit
from cti.cases.model import CaseError
from cti.cases.service import CaseService
from cti.configuration import load_configuration
from cti.settings import Settings, WebhookSettings
from cti.store.database import Database
from cti.webhooks import WebhookSender, backoff
from tests.conftest import REPO_PATHS
from tests.desk_harness import running_desk
from tests.fakeami import until
from tests.test_outbox import note

FAST = WebhookSettings(timeout=0.5, retry_min=0.05, retry_max=0.4)


class Receiver:
    """A unit's system on 127.0.0.1, port 0. ``answer(key, n)`` gives the status and the seconds to
    wait before answering the ``n``-th request (from 1) with that key; 204 at once by default."""

    def __init__(self, answer: Callable[[str, int], tuple[int, float]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.answer = answer or (lambda key, n: (204, 0.0))
        self.headers = headers or {}  # sent with every answer
        self.requests: list[tuple[float, str, dict[str, Any], dict[str, str]]] = []  # at, key, body, headers
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)  # a handler still sleeping is cut short
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        self.requests.append((asyncio.get_running_loop().time(), key, await request.json(), dict(request.headers)))
        status, delay = self.answer(key, self.keys.count(key))
        await asyncio.sleep(delay)
        return web.Response(status=status, headers=self.headers)

    @property
    def keys(self) -> list[str]:
        return [key for _, key, _, _ in self.requests]


def refused_url() -> str:
    """A URL nothing listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@pytest.fixture
async def sender(sqlite_db: Database) -> AsyncIterator[Callable[..., WebhookSender]]:
    """Start senders on the SQLite database (closed at the end)."""
    started: list[WebhookSender] = []

    def start(settings: WebhookSettings = FAST, **options: Any) -> WebhookSender:
        made = WebhookSender(sqlite_db.outbox, settings, **options)
        made.start()
        started.append(made)
        return made

    yield start
    for made in started:
        await made.close(grace=0.1)


# -- a case's notice ---------------------------------------------------------------------------------

async def test_a_case_notice_is_saved_with_its_transition(database: Database) -> None:
    configuration = load_configuration(Settings(paths=REPO_PATHS))
    units = dict(configuration.catalogue.units)
    units["yanhu-district"] = HandlingUnit("yanhu-district", "盐湖区人民政府", "http://yanhu/hook")
    catalogue = dataclasses.replace(configuration.catalogue, units=units)
    cases = CaseService(database.cases, lambda: catalogue, configuration.trunk_map.zone)
    case = await cases.open(caller_number="13800000003", category="consultation", content="办证需要什么材料",
                            actor="1001", role="agent", unit="yanhu-district")
    [notice] = await database.outbox.messages()
    assert (notice.event, notice.unit, notice.destination, notice.key) == (
        "case.dispatch", "yanhu-district", "http://yanhu/hook", f"case.dispatch:{case.id}:{case.version}")
    assert notice.headers == {"X-CTI-Case": str(case.id), "X-CTI-Event": "case.dispatch"}
    stale = dataclasses.replace(case, version=case.version - 1)  # someone acted meanwhile: neither is written
    after = dataclasses.replace(case, version=case.version + 1)
    with pytest.raises(CaseError, match="changed by someone else"):
        await database.cases.save(stale, after, (await database.cases.events(case.id))[-1],
                                  [note("http://yanhu/hook", "case.remind:x")])
    assert len(await database.outbox.messages()) == 1


# -- the sender, on a SQLite file -------------------------------------------------------------------------

async def test_a_unit_that_is_down_does_not_delay_a_healthy_one(sqlite_db: Database, sender) -> None:
    async with Receiver() as healthy, Receiver(lambda key, n: (204, 5.0)) as hanging:
        refused = refused_url()
        webhooks = sender()
        start = asyncio.get_running_loop().time()
        for i in range(5):  # the down units' messages first, as the old shared queue had them
            await sqlite_db.outbox.add([note(hanging.url, f"hang{i}", "unit-h"), note(refused, f"ref{i}", "unit-r"),
                                        note(healthy.url, f"ok{i}")])
        await until(lambda: len(healthy.requests) == 5, timeout=1, what="the healthy unit's five messages")
        assert healthy.requests[-1][0] - start < 1.0
        assert healthy.keys == [f'"ok{i}"' for i in range(5)]  # in order
        await asyncio.sleep(0.7)
        assert hanging.keys[:2] == ['"hang0"', '"hang0"']  # one request at a time, the oldest again
        assert len(hanging.requests) <= 2 and webhooks.failed >= 2
        pending = {m.key for m in await sqlite_db.outbox.messages(state="pending")}
        assert pending == {f"hang{i}" for i in range(5)} | {f"ref{i}" for i in range(5)}


async def test_each_destination_backs_off_on_its_own_and_a_success_resets_it(sqlite_db: Database, sender) -> None:
    settings = WebhookSettings(timeout=0.5, retry_min=0.1, retry_max=0.4)
    async with Receiver(lambda key, n: (503 if n <= 4 else 204, 0.0)) as flaky, Receiver() as healthy:
        sender(settings, rng=lambda: 1.0)  # no jitter: the waits are 0.1, 0.2, 0.4, 0.4
        await sqlite_db.outbox.add([note(flaky.url, "f0", "unit-f"), note(flaky.url, "f1", "unit-f")])
        await until(lambda: len(flaky.requests) >= 2, what="the flaky unit's first failures")
        await sqlite_db.outbox.add([note(healthy.url, "h0")])
        added = asyncio.get_running_loop().time()
        await until(lambda: healthy.requests, timeout=1, what="the healthy unit, meanwhile")
        assert healthy.requests[0][0] - added < 0.3
        await until(lambda: len(flaky.requests) == 6, timeout=5, what="f0 through, then f1")
        times = [at for at, _, _, _ in flaky.requests]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        for gap, wait in zip(gaps, (0.1, 0.2, 0.4, 0.4), strict=False):
            assert wait - 0.02 <= gap < wait + 0.3, gaps
        assert gaps[4] < 0.1  # f0 delivered: f1 goes at once
        assert flaky.keys == ['"f0"'] * 5 + ['"f1"']  # the oldest first, through the outage
    assert [backoff(n, 1, 300, lambda: 1.0) for n in (1, 2, 3, 10)] == [1, 2, 4, 300]
    assert backoff(1, 1, 300, lambda: 0.0) == 0.5


async def test_a_unit_that_asks_for_time_gets_it(sqlite_db: Database, sender) -> None:
    async with Receiver(lambda key, n: (429 if n == 1 else 204, 0.0), headers={"Retry-After": "1"}) as busy:
        sender(WebhookSettings(timeout=0.5, retry_min=0.05, retry_max=5))
        await sqlite_db.outbox.add([note(busy.url, "k")])
        await until(lambda: len(busy.requests) == 2, timeout=3, what="the second attempt")
    assert busy.requests[1][0] - busy.requests[0][0] >= 0.95  # Retry-After, not the 0.05 s backoff


async def test_a_slow_receiver_gets_the_same_key_again_and_the_message_ends_delivered(sqlite_db: Database,
                                                                                        sender) -> None:
    async with Receiver(lambda key, n: (204, 0.8 if n == 1 else 0.0)) as slow:
        webhooks = sender(WebhookSettings(timeout=0.3, retry_min=0.05, retry_max=0.1))
        await sqlite_db.outbox.add([note(slow.url, "call.ended:1795281884.19")])
        await until(lambda: webhooks.delivered == 1, timeout=3, what="the answer in time")
        await asyncio.sleep(0.3)
        [(_, first, body1, headers1), (_, second, body2, headers2)] = slow.requests  # and no third
    assert first == second == '"call.ended:1795281884.19"'
    assert body1 == body2 and headers1["X-CTI-Linkedid"] == headers2["X-CTI-Linkedid"] == "call.ended:1795281884.19"
    [stored] = await sqlite_db.outbox.messages()
    assert (stored.state, stored.attempts) == ("delivered", 2)
    assert stored.last_error == "no answer within 0.3 s"


async def test_a_message_the_unit_refuses_steps_aside(sqlite_db: Database, sender) -> None:
    async with Receiver(lambda key, n: (422 if key == '"bad"' else 204, 0.0)) as unit:
        webhooks = sender()
        await sqlite_db.outbox.add([note(unit.url, "bad")] + [note(unit.url, f"good{i}") for i in range(3)])
        await until(lambda: webhooks.delivered == 3, timeout=2, what="the good ones past the bad one")
    [bad] = await sqlite_db.outbox.messages(state="pending")
    assert bad.key == "bad" and bad.last_error == "HTTP 422 Unprocessable Entity"


async def test_a_restart_delivers_what_was_pending(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    down = {"down": True}
    async with Receiver(lambda key, n: (503 if down["down"] else 204, 0.0)) as unit:
        database = await Database.open(url)
        first = WebhookSender(database.outbox, FAST)
        first.start()
        await database.outbox.add([note(unit.url, f"k{i}") for i in range(10)])
        await until(lambda: first.failed >= 2, what="the unit failing")
        await first.close(grace=1)
        await database.close()
        down["down"] = False
        tried = len(unit.requests)
        reopened = await Database.open(url)  # a new process, as far as the outbox can tell
        second = WebhookSender(reopened.outbox, FAST)
        second.start()
        await until(lambda: second.delivered == 10, timeout=5, what="the ten, after the restart")
        await second.close()
        stored = await reopened.outbox.messages()
        await reopened.close()
    assert {m.state for m in stored} == {"delivered"}
    assert unit.keys[tried:] == [f'"k{i}"' for i in range(10)]  # each once, oldest first


CRASHING_SENDER = """
import asyncio, sys
from cti.settings import WebhookSettings
from cti.store.database import Database
from cti.webhooks import WebhookSender

async def main():
    database = await Database.open(sys.argv[1])
    WebhookSender(database.outbox, WebhookSettings(timeout=2, retry_min=0.05, retry_max=0.2), lease_margin=0.5).start()
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_crash_mid_request_loses_nothing(tmp_path: Path) -> None:
    """A sender killed (SIGKILL) with a request in flight: the next sender delivers the others at
    once and the one in flight when its lease ends, under the same key (the unit sees it twice)."""
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    async with Receiver(lambda key, n: (204, 30.0 if (key, n) == ('"k0"', 1) else 0.0)) as unit:
        database = await Database.open(url)
        await database.outbox.add([note(unit.url, f"k{i}") for i in range(5)])
        crashing = await asyncio.create_subprocess_exec(sys.executable, "-c", CRASHING_SENDER, url,
                                                        cwd=Path(__file__).parent.parent)
        try:
            await until(lambda: unit.requests, timeout=10, what="the first request, in flight")
        finally:
            crashing.kill()
            await crashing.wait()
        after = WebhookSender(database.outbox, dataclasses.replace(FAST, timeout=2), lease_margin=0.5)
        after.start()
        await until(lambda: after.delivered == 5, timeout=10, what="all five, k0 once its lease ended")
        await after.close()
        assert {m.state for m in await database.outbox.messages()} == {"delivered"}
        await database.close()
    assert unit.keys == ['"k0"', '"k1"', '"k2"', '"k3"', '"k4"', '"k0"']


async def test_nothing_evicts_anything_however_much_is_pending(sqlite_db: Database, sender) -> None:
    refused = refused_url()
    many = 12_000  # past the old in-memory queue's 10,000
    await sqlite_db.outbox.add([note(refused, f"r{i}", "unit-r") for i in range(many)])
    async with Receiver() as healthy:
        webhooks = sender()
        await sqlite_db.outbox.add([note(healthy.url, f"ok{i}") for i in range(20)])
        await until(lambda: webhooks.delivered == 20, timeout=5, what="the healthy unit's twenty")
        await until(lambda: webhooks.pending_by_unit() == {"unit-r": many}, what="the sender's view")
    backlog = {b.unit: b.count for b in await sqlite_db.outbox.backlog()}
    assert backlog == {"unit-r": many}
    assert webhooks.backlog == many and webhooks.oldest_by_unit()["unit-r"] > 0


async def test_a_message_is_dead_after_give_up_until_an_admin_retries_it(sqlite_db: Database, sender) -> None:
    down = {"down": True}
    async with Receiver(lambda key, n: (503 if down["down"] else 204, 0.0)) as unit:
        week_ago = datetime.now(UTC) - timedelta(days=7, minutes=1)
        await sqlite_db.outbox.add([note(unit.url, "old", "unit-o")], at=week_ago)
        webhooks = sender(dataclasses.replace(FAST, give_up_after_days=7))
        await until(lambda: webhooks.dead == {"unit-o": 1}, what="the message given up")
        await asyncio.sleep(0.5)
        assert unit.keys == ['"old"']  # tried once, then left alone
        [dead] = await sqlite_db.outbox.messages(state="dead")
        assert dead.last_error == "HTTP 503 Service Unavailable" and dead.dead_at is not None
        down["down"] = False
        await sqlite_db.outbox.retry(dead.id, datetime.now(UTC))
        await until(lambda: webhooks.delivered == 1, what="the retried message")
    [delivered] = await sqlite_db.outbox.messages(state="delivered")
    assert delivered.key == "old" and delivered.dead_at is None


# -- the admin routes and the metrics of a running service -------------------------------------------------

def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_admins_list_and_retry_webhooks_and_the_metrics_count_them(tmp_path: Path, unit_endpoint) -> None:
    url, received = unit_endpoint
    async with running_desk(tmp_path, []) as desk:
        admin = await desk.user("root", "admin")
        supervisor = await desk.user("boss", "supervisor")
        agent = await desk.user("1001", "agent", "1001")
        refused = refused_url()
        outbox = desk.database.outbox
        await outbox.add([note(url, "sent", "unit-ok")])
        await outbox.add([note(refused, "gone", "unit-down")], at=datetime.now(UTC) - timedelta(days=8))
        await outbox.add([note(refused, f"wait{i}", "unit-down") for i in range(2)])
        secret = refused.replace("http://", "http://user:secret@") + "?token=abc"
        await outbox.add([note(secret, "secret", "unit-secret")])
        webhooks = desk.service.webhooks
        await until(lambda: received and webhooks.dead == {"unit-down": 1}
                    and webhooks.pending_by_unit() == {"unit-down": 2, "unit-secret": 1}, timeout=5,
                    what="the sender's view")

        pending = await desk.request("GET", "/api/admin/webhooks?state=pending&unit=unit-down", supervisor)
        assert [m["idempotency_key"] for m in pending] == ["wait0", "wait1"]
        assert pending[0]["destination"] == refused and pending[0]["next_attempt_at"]
        [hidden] = await desk.request("GET", "/api/admin/webhooks?unit=unit-secret", admin)
        assert hidden["destination"] == refused + "?…"  # neither the password nor the token
        [dead] = await desk.request("GET", "/api/admin/webhooks?state=dead", admin)
        assert (dead["idempotency_key"], dead["state"], dead["attempts"]) == ("gone", "dead", 1)
        [sent] = await desk.request("GET", "/api/admin/webhooks?state=delivered&limit=1&offset=0", admin)
        assert sent["idempotency_key"] == "sent" and sent["delivered_at"]
        await desk.request("GET", "/api/admin/webhooks", agent, expect=403)
        await desk.request("GET", "/api/admin/webhooks", expect=401)
        for query in ("limit=-1", "limit=0", "limit=501", "offset=-1", "state=lost", "limit=x"):
            await desk.request("GET", f"/api/admin/webhooks?{query}", admin, expect=422)

        async with desk.http.get(desk.base + "/api/metrics", headers={"Authorization": f"Bearer {admin}"}) as reply:
            exposition = await reply.text()
        found = samples(exposition)
        assert found[("cti_webhooks_pending", (("unit", "unit-down"),))] == 2
        assert found[("cti_webhooks_dead", (("unit", "unit-down"),))] == 1
        assert found[("cti_webhooks_oldest_pending_seconds", (("unit", "unit-down"),))] > 0
        assert found[("cti_webhooks_waiting", ())] == 3
        assert "user:secret" not in exposition and "token" not in exposition  # units label the metrics, not URLs
        assert found[("cti_webhooks_delivered_total", ())] == 1
        assert found[("cti_webhook_attempts_failed_total", ())] >= 2

        await desk.request("POST", f"/api/admin/webhooks/{dead['id']}/retry", supervisor, expect=403)
        retried = await desk.request("POST", f"/api/admin/webhooks/{dead['id']}/retry", admin)
        assert retried["state"] == "pending" and retried["dead_at"] is None
        await desk.request("POST", f"/api/admin/webhooks/{sent['id']}/retry", admin, expect=409)
        for missing in ("999999", "x", "-1", "99999999999999999999"):
            await desk.request("POST", f"/api/admin/webhooks/{missing}/retry", admin, expect=404)


@pytest.mark.parametrize("confidential", [True, False])
async def test_a_confidential_callers_number_does_not_reach_the_unit_by_webhook(tmp_path: Path,
                                                                                confidential: bool) -> None:
    """Review: the unit's API masked a caller whose case the agent made confidential during the call, but
    the call.ended message gave the unit the whole number and name. The message a call ends with is made
    knowing its case."""
    from tests.fakeami import Session
    from tests.test_store import make_record

    record = make_record("1795281300.4", caller_number="13912345678", caller_name="王五", unit_id="shouchuang-water")
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        await desk.service.cases.open(caller_number=record.caller_number, caller_name="王五", category="request",
                                      content="停水", actor="1001", role="agent", confidential=confidential,
                                      linkedid=record.linkedid)
        await desk.service._share(record, "http://127.0.0.1:9/hook", "shouchuang-water")
        await desk.service.writer.flush()
        await until(lambda: desk.service.writer.written == 1, what="the record")
        [stored] = [m for m in await desk.database.outbox.messages() if m.key == f"call.ended:{record.linkedid}"]
    call = json.loads(stored.body)["call"]
    if confidential:
        assert (call["caller_number"], call["caller_name"]) == ("139****5678", "")
    else:
        assert (call["caller_number"], call["caller_name"]) == ("13912345678", "王五")
