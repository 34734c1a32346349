"""The lease (cti.store.leases) and the duties under it (cti.leader), on SQLite and PostgreSQL; the bus (cti.bus)
on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cti.bus import CHANNEL, NoPeers, PostgresBus, make_bus
from cti.leader import LEASE, Leadership
from cti.store.database import Database
from cti.store.leases import LeaseStore
from tests.conftest import _PG, PG_URL
from tests.fakeami import until

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


async def test_one_holder_at_a_time_renewed_by_it_taken_over_once_expired(database: Database) -> None:
    leases = LeaseStore(database.engine)
    assert await leases.take("duties", "a", 6, T0)
    assert not await leases.take("duties", "b", 6, T0 + timedelta(seconds=1))
    assert await leases.take("duties", "a", 6, T0 + timedelta(seconds=5))  # renewed: now until 0:11
    assert not await leases.take("duties", "b", 6, T0 + timedelta(seconds=10))
    assert await leases.take("duties", "b", 6, T0 + timedelta(seconds=11, microseconds=1))  # a went silent
    assert not await leases.take("duties", "a", 6, T0 + timedelta(seconds=12))
    holder, until_at, taken = await leases.holder("duties") or ("", T0, T0)
    assert (holder, until_at, taken) == ("b", T0 + timedelta(seconds=17, microseconds=1),
                                         T0 + timedelta(seconds=11, microseconds=1))
    await leases.release("duties", "a")  # not a's: nothing happens
    assert not await leases.take("duties", "a", 6, T0 + timedelta(seconds=13))
    await leases.release("duties", "b")
    assert await leases.take("duties", "a", 6, T0 + timedelta(seconds=13))


async def test_many_asking_at_once_one_gets_it(database: Database) -> None:
    leases = LeaseStore(database.engine)
    got = await asyncio.gather(*(leases.take("duties", f"i{n}", 6) for n in range(8)))
    assert got.count(True) == 1


class Flaky(LeaseStore):
    """A lease store whose database can be taken away."""

    def __init__(self, inner: LeaseStore) -> None:
        self.inner = inner
        self.away = False

    async def take(self, name: str, holder: str, ttl: float, now: datetime | None = None) -> bool:
        if self.away:
            raise ConnectionError("the database is away")
        return await self.inner.take(name, holder, ttl, now)

    async def release(self, name: str, holder: str) -> None:
        if self.away:
            raise ConnectionError("the database is away")
        await self.inner.release(name, holder)


async def test_the_duties_run_in_one_instance_and_move_when_it_cannot_renew(database: Database,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    """Two instances; the first loses its database: it stops its duties before its lease can expire, the
    second takes them over once it has; at no moment do both run them. Then the first stops for good and
    gives nothing back (it holds nothing), and the second's stop gives the lease up at once."""
    spans: dict[str, list[list[float]]] = {"a": [], "b": []}

    def duty(name: str) -> Any:
        async def run(stop: asyncio.Event) -> None:
            spans[name].append([time.monotonic(), float("inf")])
            await stop.wait()
            spans[name][-1][1] = time.monotonic()
        return run

    flaky = Flaky(LeaseStore(database.engine))
    a = Leadership(flaky, "a", [duty("a")], ttl=0.8, renew=0.1)
    b = Leadership(LeaseStore(database.engine), "b", [duty("b")], ttl=0.8, renew=0.1)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    running_a = asyncio.create_task(a.run(stop_a))
    await until(lambda: a.held, 5, "a to take the lease")
    running_b = asyncio.create_task(b.run(stop_b))
    await asyncio.sleep(0.5)
    assert a.held and not b.held and len(spans["a"]) == 1 and not spans["b"]
    flaky.away = True
    with caplog.at_level(logging.ERROR, "cti.leader"):
        await until(lambda: b.held, 5, "b to take the lease over")
    assert "could not be renewed" in caplog.text
    [(_, a_end)], [(b_start, _)] = spans["a"], spans["b"]
    assert a_end < b_start  # a stopped before b started: never both
    stop_a.set()
    await asyncio.wait_for(running_a, 5)
    stop_b.set()
    await asyncio.wait_for(running_b, 5)
    assert spans["b"][0][1] < float("inf")
    holder = await LeaseStore(database.engine).holder(LEASE)
    assert holder is not None and holder[0] == "b" and holder[1] < datetime.now(UTC)  # given up: free at once
    assert (a.tenures, b.tenures) == (1, 1)


async def test_sqlite_has_no_bus_peers() -> None:
    bus = make_bus("sqlite:///x.db", "me", lambda kind, body: None)
    assert isinstance(bus, NoPeers)
    bus.publish("note", {"a": 1})  # nobody to tell: nothing happens
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(bus.run(stop), 1)


@pytest.mark.skipif(not _PG, reason=f"PostgreSQL not reachable at {PG_URL}")
async def test_the_bus_tells_the_others_not_itself_and_comes_back_after_its_connection_is_cut(
        caplog: pytest.LogCaptureFixture) -> None:
    import asyncpg

    heard: dict[str, list[tuple[str, dict[str, Any]]]] = {"a": [], "b": []}
    buses = {name: PostgresBus(PG_URL, f"test-{name}-{time.time_ns()}",
                               lambda kind, body, name=name: heard[name].append((kind, body)), retry_max=0.2)
             for name in ("a", "b")}
    stop = asyncio.Event()
    running = [asyncio.create_task(bus.run(stop)) for bus in buses.values()]
    try:
        await until(lambda: all(bus.connected.is_set() for bus in buses.values()), 10, "both buses listening")
        buses["a"].publish("alert", {"title": "供水 爆管 3 起", "n": 1})
        await until(lambda: heard["b"], 5, "b to hear a")
        assert heard == {"a": [], "b": [("alert", {"title": "供水 爆管 3 起", "n": 1})]}
        buses["a"].publish("note", {"x": "y" * 8000})  # over NOTIFY's limit: refused here, not by PostgreSQL
        assert buses["a"].dropped == 1
        admin = await asyncpg.connect(PG_URL)
        try:
            with caplog.at_level(logging.ERROR, "cti.bus"):
                await admin.execute("SELECT pg_notify($1, $2)", CHANNEL, "not json")
                await admin.execute("SELECT pg_notify($1, $2)", CHANNEL, json.dumps({"from": "x", "kind": "k"}))
                await until(lambda: caplog.text.count("a message that is not cti's") >= 4, 5, "both refused")
            # b's connection is cut (a failover, an idle timeout): it listens again, and hears what follows
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' "
                                "AND pid <> pg_backend_pid()")
        finally:
            await admin.close()
        await until(lambda: buses["b"].connections == 2 and buses["b"].connected.is_set(), 10, "b listening again")
        buses["a"].publish("alert", {"n": 2})
        await until(lambda: len(heard["b"]) == 2, 10, "b to hear a again")
        assert heard["b"][1] == ("alert", {"n": 2}) and heard["a"] == []
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), 10)
