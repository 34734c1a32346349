"""The webhook outbox (cti.store.outbox) on SQLite and PostgreSQL: one row per idempotency key,
written in the call record's own transaction, handed out oldest first, every state kept."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import StatementError

from cti.store.database import Database
from cti.store.outbox import Message, message
from tests.test_store import make_record


def note(url: str, key: str, unit: str = "unit-a", event: str = "call.ended") -> Message:
    return message(url, unit, event, key, {"event": event, "key": key, "text": "来电"}, {"X-CTI-Linkedid": key})


async def test_the_same_idempotency_key_is_one_row(database: Database) -> None:
    outbox = database.outbox
    assert await outbox.add([note("http://a/hook", "call.ended:1"), note("http://a/hook", "call.ended:1")]) == 1
    assert await outbox.add([note("http://a/hook", "call.ended:1"), note("http://a/hook", "call.ended:2")]) == 1
    assert await database.calls.save([make_record("1")], [note("http://a/hook", "call.ended:1")]) == 1  # with its call
    assert sorted(m.key for m in await outbox.messages()) == ["call.ended:1", "call.ended:2"]


async def test_a_call_and_its_message_are_written_together_or_not_at_all(database: Database) -> None:
    record = make_record("together")
    unwritable = dataclasses.replace(note("http://a/hook", "call.ended:together"), headers={"x": object()})
    with pytest.raises(StatementError, match="not JSON serializable"):
        await database.calls.save([record], [unwritable])
    assert await database.calls.calls() == [] and await database.outbox.messages() == []
    await database.calls.save([record], [note("http://a/hook", "call.ended:together")])
    assert [r.linkedid for r in await database.calls.calls()] == ["together"]
    assert [m.key for m in await database.outbox.messages()] == ["call.ended:together"]


async def test_the_outbox_hands_out_the_oldest_due_message_and_keeps_every_state(database: Database) -> None:
    outbox = database.outbox
    await outbox.add([note("http://a/hook", f"a{i}") for i in range(3)] + [note("http://b/hook", "b0", "unit-b")])
    now = datetime.now(UTC)
    lease = now + timedelta(seconds=90)
    first, _ = await outbox.claim("http://a/hook", now, lease)
    second, _ = await outbox.claim("http://a/hook", now, lease)  # the first is taken: the next one
    assert first is not None and second is not None and (first.key, second.key) == ("a0", "a1")
    assert first.attempts == 1 and first.next_attempt_at == lease
    await outbox.failed(first.id, "HTTP 503 Service Unavailable", now + timedelta(seconds=30), None)
    await outbox.delivered(second.id, now)
    third, _ = await outbox.claim("http://a/hook", now, lease)
    assert third is not None and third.key == "a2"
    await outbox.failed(third.id, "ClientConnectorError", now, now)  # given up: dead
    nothing, next_due = await outbox.claim("http://a/hook", now, lease)
    assert nothing is None and next_due == now + timedelta(seconds=30)  # a0 waits for its retry
    assert {m.key: m.state for m in await outbox.messages()} == {"a0": "pending", "a1": "delivered", "a2": "dead",
                                                                 "b0": "pending"}
    assert [m.key for m in await outbox.messages(state="pending")] == ["a0", "b0"]  # oldest first
    assert [m.key for m in await outbox.messages(state="pending", unit="unit-b")] == ["b0"]
    assert [m.key for m in await outbox.messages(limit=2, offset=1)] == ["a2", "a1"]  # newest first
    assert [m.last_error for m in await outbox.messages(state="dead")] == ["ClientConnectorError"]
    backlog = {b.destination: (b.unit, b.count) for b in await outbox.backlog()}
    assert backlog == {"http://a/hook": ("unit-a", 1), "http://b/hook": ("unit-b", 1)}
    assert await outbox.dead() == {"unit-a": 1}
    retried = await outbox.retry(third.id, now)
    assert retried is not None and retried.state == "pending" and await outbox.dead() == {}
    delivered = await outbox.retry(second.id, now)
    assert delivered is not None and delivered.state == "delivered"  # a delivered one is left as it is
    assert await outbox.retry(10_000, now) is None
    assert await outbox.purge(now + timedelta(seconds=1)) == 1  # the delivered one only
    assert sorted(m.key for m in await outbox.messages()) == ["a0", "a2", "b0"]
    with pytest.raises(ValueError):
        await outbox.messages(limit=-1)
    await outbox.add([note("http://c/hook", "c0", "unit-c"), note("http://c/hook", "c1", "unit-c")])
    now = datetime.now(UTC)
    c0, _ = await outbox.claim("http://c/hook", now, now + timedelta(seconds=90))
    assert c0 is not None and c0.key == "c0"
    later = now + timedelta(seconds=60)
    await outbox.failed(c0.id, "ClientConnectorError", later, None, hold="http://c/hook")  # unreachable: all wait
    assert await outbox.claim("http://c/hook", now, now) == (None, later)
    assert [(m.key, m.next_attempt_at) for m in await outbox.messages(state="pending", unit="unit-c")] == [
        ("c0", later), ("c1", later)]
    c0_again, _ = await outbox.claim("http://c/hook", later, later + timedelta(seconds=90))
    assert c0_again is not None and (c0_again.key, c0_again.attempts) == ("c0", 2)  # the oldest first again
