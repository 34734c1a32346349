"""Signing in against a running service: the failed-sign-in throttle (per user id and per
address, growing delays, 429 without a password check), the same cost and answer for unknown
users, and password checks off the event loop."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import update

from cti.auth import hash_password
from cti.auth_throttle import SignInThrottle, ThrottlePolicy
from cti.store.models import UserRow
from cti.store.users import HASHER, PasswordHasher
from cti.web.api import CONTEXT, WebContext
from tests.desk_harness import PASSWORD, Desk, running_desk
from tests.fakeami import Session


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def desk_with_clock(tmp_path: Path, policy: ThrottlePolicy | None = None) -> AsyncIterator[tuple[Desk, Clock]]:
    """A running desk whose sign-in throttle reads a clock the test moves; refusals are not held."""
    clock = Clock()
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        context(desk).throttle = SignInThrottle(policy, clock=clock)
        context(desk).refusal_hold = 0
        yield desk, clock


def context(desk: Desk) -> WebContext:
    return desk.service.web[CONTEXT]


async def sign_in(desk: Desk, user: str, password: str, source: str = "127.0.0.1",
                  headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST /api/session from the address ``source`` (any of 127.0.0.0/8 reaches the service)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http, http.post(
            desk.base + "/api/session", json={"user": user, "password": password}, headers=headers) as reply:
        return reply.status, await reply.json(), dict(reply.headers)


WRONG = "not the password"
UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "wrong user or password", "details": {}}}


async def test_a_locked_out_sign_in_is_answered_429_without_a_password_check(tmp_path: Path) -> None:
    async with desk_with_clock(tmp_path) as (desk, _):
        await desk.database.users.add("sup", "Supervisor", "supervisor", PASSWORD)
        for _ in range(5):
            status, body, _ = await sign_in(desk, "sup", WRONG)
            assert (status, body) == (401, UNAUTHORIZED)
        hashes = desk.database.users.hasher.hashes
        status, body, headers = await sign_in(desk, "sup", PASSWORD)  # the right password, unchecked
        assert status == 429
        assert body == {"error": {"code": "too_many_attempts",
                                  "message": "too many failed sign-ins: try again in 1 s",
                                  "details": {"retry_after": 1}}}
        assert headers["Retry-After"] == "1"
        assert desk.database.users.hasher.hashes == hashes
        context(desk).refusal_hold = 0.3  # a refusal is held: a waiting client guesses slowly, for no CPU
        started = time.perf_counter()
        assert (await sign_in(desk, "sup", WRONG))[0] == 429
        assert time.perf_counter() - started >= 0.3


async def test_each_further_failure_doubles_the_wait_up_to_five_minutes(tmp_path: Path) -> None:
    async with desk_with_clock(tmp_path) as (desk, clock):
        for _ in range(5):
            assert (await sign_in(desk, "sup", WRONG))[0] == 401
        waits = []
        for _ in range(11):
            status, body, headers = await sign_in(desk, "sup", WRONG)
            assert status == 429 and int(headers["Retry-After"]) == body["error"]["details"]["retry_after"]
            waits.append(body["error"]["details"]["retry_after"])
            clock.now += waits[-1] - 0.5
            assert (await sign_in(desk, "sup", WRONG))[0] == 429  # not yet; and refused tries do not count
            clock.now += 0.5
            assert (await sign_in(desk, "sup", WRONG))[0] == 401  # checked, and wrong again
        assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
        clock.now += 900.5  # a quiet window: the count starts again
        for _ in range(5):
            assert (await sign_in(desk, "sup", WRONG))[0] == 401


async def test_one_address_is_locked_out_across_user_ids_and_one_user_across_addresses(tmp_path: Path) -> None:
    async with desk_with_clock(tmp_path) as (desk, _):
        await desk.database.users.add("sup", "Supervisor", "supervisor", PASSWORD)
        await desk.database.users.add("sup2", "Supervisor 2", "supervisor", PASSWORD)
        for n in range(5):
            assert (await sign_in(desk, f"guess{n}", WRONG))[0] == 401
        assert (await sign_in(desk, "sup", PASSWORD))[0] == 429  # this address must wait
        assert (await sign_in(desk, "sup", PASSWORD, source="127.0.0.2"))[0] == 200  # another may go on
        for n in range(5):
            assert (await sign_in(desk, "sup2", WRONG, source=f"127.0.1.{n + 1}"))[0] == 401
        status, body, _ = await sign_in(desk, "sup2", PASSWORD, source="127.0.1.9")  # that user must wait
        assert (status, body["error"]["code"]) == (429, "too_many_attempts")


async def test_a_success_clears_the_users_count_but_not_the_addresss(tmp_path: Path) -> None:
    async with desk_with_clock(tmp_path) as (desk, _):
        await desk.database.users.add("sup", "Supervisor", "supervisor", PASSWORD)
        for _ in range(4):
            assert (await sign_in(desk, "sup", WRONG))[0] == 401
        status, body, _ = await sign_in(desk, "sup", PASSWORD)
        assert status == 200 and body["user"]["id"] == "sup"
        for _ in range(5):  # the user's count started again: five more before a wait
            assert (await sign_in(desk, "sup", WRONG, source="127.0.0.2"))[0] == 401
        assert (await sign_in(desk, "sup", WRONG, source="127.0.0.3"))[0] == 429
        # the first address kept its four failures: one more, then it waits
        assert (await sign_in(desk, "other", WRONG))[0] == 401
        assert (await sign_in(desk, "another", WRONG))[0] == 429


async def test_unknown_disabled_and_passwordless_users_cost_and_answer_as_a_wrong_password(tmp_path: Path) -> None:
    async with desk_with_clock(tmp_path) as (desk, _):
        users = desk.database.users
        await users.add("sup", "Supervisor", "supervisor", PASSWORD)
        await users.add("gone", "Gone", "supervisor", PASSWORD)
        await users.add("crm", "CRM", "integrator")  # tokens only, no password
        async with users._sessions.begin() as session:
            await session.execute(update(UserRow).where(UserRow.id == "gone").values(disabled=True))
        for user, password, source in (("sup", WRONG, "127.0.2.1"), ("nobody", WRONG, "127.0.2.2"),
                                       ("gone", PASSWORD, "127.0.2.3"), ("crm", "x", "127.0.2.4"),
                                       ("crm", WRONG, "127.0.2.5")):
            hashes = users.hasher.hashes
            status, body, _ = await sign_in(desk, user, password, source=source)
            assert (status, body) == (401, UNAUTHORIZED), user
            assert users.hasher.hashes == hashes + 1, f"{user}: one scrypt, as for a known user"
        # and the throttle treats an unknown id as it treats a known one
        for _ in range(5):
            await sign_in(desk, "nobody", WRONG, source="127.0.3.1")
        assert (await sign_in(desk, "nobody", WRONG, source="127.0.3.2"))[0] == 429


async def test_password_checks_leave_the_event_loop_free(tmp_path: Path) -> None:
    async with desk_with_clock(tmp_path, ThrottlePolicy(free_failures=1000)) as (desk, _):
        await desk.database.users.add("sup", "Supervisor", "supervisor", PASSWORD)
        loop = asyncio.get_running_loop()
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = loop.time()
            while not done.is_set():
                await asyncio.sleep(0.005)
                gaps.append(loop.time() - last)
                last = loop.time()

        ticking = asyncio.create_task(ticker())
        started = time.perf_counter()
        replies = await asyncio.gather(*(sign_in(desk, "sup", WRONG) for _ in range(20)))
        took = time.perf_counter() - started
        done.set()
        await ticking
        assert [status for status, _, _ in replies] == [401] * 20
        # 20 scrypts take ~1 s of a core: on the loop, a stall of ~55 ms each (~1.1 s in all)
        assert took > 0.2 and len(gaps) > 10
        assert max(gaps) < 0.2, f"the loop stalled {max(gaps) * 1000:.0f} ms"
        stalled = sum(gap for gap in gaps if gap > 0.05)
        assert stalled < 0.25, f"the loop stalled {stalled * 1000:.0f} ms in all"


async def test_a_flood_beyond_the_waiting_bound_is_answered_503_and_not_counted(tmp_path: Path) -> None:
    async with desk_with_clock(tmp_path) as (desk, _):
        await desk.database.users.add("sup", "Supervisor", "supervisor", PASSWORD)
        desk.database.users.hasher = PasswordHasher(workers=1, max_waiting=1)
        replies = await asyncio.gather(*(sign_in(desk, "sup", WRONG, source=f"127.0.4.{n + 1}")
                                         for n in range(4)))
        busy = [(body, headers["Retry-After"]) for status, body, headers in replies if status == 503]
        assert busy and busy[0] == ({"error": {"code": "busy", "message": "too many sign-ins at once: try again "
                                               "in a second", "details": {"retry_after": 1}}}, "1")
        checked = [status for status, _, _ in replies if status != 503]
        assert checked == [401] * (4 - len(busy))
        for _ in range(4 - len(checked)):  # only the checked attempts counted: sup has a fifth one left
            assert (await sign_in(desk, "sup", WRONG, source="127.0.4.9"))[0] == 401
        assert (await sign_in(desk, "sup", PASSWORD, source="127.0.4.10"))[0] == 200


async def test_behind_a_proxy_the_address_is_the_last_forwarded_one(tmp_path: Path) -> None:
    async with desk_with_clock(tmp_path) as (desk, _):
        context(desk).forwarded_for = True
        for n in range(5):  # the client wrote 6.6.6.6 itself; the proxy appended 10.0.0.7
            await sign_in(desk, f"u{n}", WRONG, headers={"X-Forwarded-For": f"6.6.6.{n}, 10.0.0.7"})
        assert (await sign_in(desk, "u9", WRONG, headers={"X-Forwarded-For": "10.0.0.7"}))[0] == 429
        assert (await sign_in(desk, "u9", WRONG, headers={"X-Forwarded-For": "10.0.0.8"}))[0] == 401
        context(desk).forwarded_for = False  # the header means nothing: the peer is 127.0.0.1
        assert (await sign_in(desk, "u9", WRONG, headers={"X-Forwarded-For": "10.0.0.7"}))[0] == 401


def test_the_throttle_is_bounded_and_counts_attempts_in_flight() -> None:
    clock = Clock()
    throttle = SignInThrottle(ThrottlePolicy(max_keys=100), clock=clock)
    for n in range(1000):
        throttle.attempt(f"user{n}", f"10.0.{n // 250}.{n % 250}")
    assert throttle.sizes() == (100, 100)
    # five guesses started together, none answered yet: the sixth waits already
    assert [throttle.attempt("target", "10.9.9.9") for _ in range(6)] == [0, 0, 0, 0, 0, 1.0]
    throttle.succeeded("target", "10.9.9.9")
    assert throttle.attempt("target", "10.9.9.8") == 0


async def test_the_hashing_threads_yield_to_the_event_loop() -> None:
    """They run niced (Linux), so that the loop wins a core it shares with them."""
    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread priorities are Linux's")
    await HASHER.run(hash_password, "a password")
    nice = {int(Path(task, "stat").read_text().rsplit(")", 1)[1].split()[16])
            for task in Path("/proc/self/task").iterdir()}
    assert 10 in nice and os.getpriority(os.PRIO_PROCESS, 0) in nice
