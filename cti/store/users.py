"""Users and their tokens in the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cti.auth import DUMMY_HASH, ROLES, hash_password, new_token, token_digest, verify_password
from cti.store.models import TokenRow, UserRow

log = logging.getLogger(__name__)
T = TypeVar("T")
LAST_USE_PRECISION = timedelta(minutes=1)  # a token's last use is written at most this often


class UserError(Exception):
    pass


class PasswordsBusy(Exception):
    """Too many password checks are waiting already: try again shortly."""


class PasswordHasher:
    """scrypt (about 55 ms of a core each) off the event loop, on threads of its own.

    hashlib.scrypt releases the GIL, so a hash in a thread leaves the loop free to route
    calls. At most ``workers`` hashes run at once: the cores less one (at least one), so a
    core stays with the event loop (FastAGI, AMI, screen-pops) through a sign-in flood;
    on two cores sign-ins are checked one at a time, about 18 a second, plenty for a
    shift change. Its own executor, not asyncio's default one, so a flood does not hold
    up the default executor's other work (name lookups). At most ``max_waiting`` checks
    wait for a thread; beyond that PasswordsBusy is raised at once (the API answers
    503): a flood cannot queue unbounded work, nor make a sign-in wait more than about
    ``max_waiting`` hashes. The threads run at a lower priority (nice 10, on Linux), so that
    the event loop wins a core it shares with them. One per process (HASHER): the cores are
    the process's."""

    def __init__(self, workers: int | None = None, max_waiting: int = 32) -> None:
        self.workers = workers or max(1, (os.cpu_count() or 1) - 1)
        self.max_waiting = max_waiting
        self.hashes = 0  # hashes computed, for tests and metrics
        self._pending = 0  # running and waiting
        self._lock = threading.Lock()  # _pending goes down in the worker threads
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, function: Callable[..., T], *args: str) -> T:
        with self._lock:
            if self._pending >= self.workers + self.max_waiting:
                raise PasswordsBusy(f"{self._pending} password checks under way")
            self._pending += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="cti-scrypt",
                                                    initializer=_lower_priority)
        future = self._executor.submit(function, *args)
        future.add_done_callback(self._done)  # counted until the thread is done, even if the caller gave up
        return await asyncio.wrap_future(future)

    def _done(self, _: Future[T]) -> None:
        with self._lock:
            self._pending -= 1
            self.hashes += 1


def _lower_priority() -> None:
    """Nice the calling thread (Linux schedules threads one by one); elsewhere, nothing."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


HASHER = PasswordHasher()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What ``cti token list`` shows of a token (never the token itself)."""

    user_id: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    role: str
    agent_id: str | None = None
    unit_id: str | None = None  # an integrator acting for a handling unit (its cases only)

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "role": self.role, "agent_id": self.agent_id,
                "unit_id": self.unit_id}


def _user(row: UserRow) -> User:
    return User(row.id, row.name, row.role, row.agent_id, row.unit_id)


class UserStore:
    def __init__(self, engine: AsyncEngine, hasher: PasswordHasher = HASHER) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.hasher = hasher
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)  # tests move it

    async def add(self, user_id: str, name: str, role: str, password: str | None = None,
                  agent_id: str | None = None, unit_id: str | None = None) -> User:
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        if role == "agent" and not agent_id:
            raise UserError("an agent user works as an agent of agents.yaml: give its id")
        if unit_id and role != "integrator":
            raise UserError("only an integrator user acts for a unit")
        password_hash = await self.hasher.run(hash_password, password) if password else None
        row = UserRow(id=user_id, name=name, role=role, agent_id=agent_id, unit_id=unit_id, disabled=False,
                      password_hash=password_hash, created_at=datetime.now(UTC))
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise UserError(f"user {user_id!r} already exists") from None
        return _user(row)

    async def set_password(self, user_id: str, password: str) -> None:
        password_hash = await self.hasher.run(hash_password, password)
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(UserRow).where(UserRow.id == user_id).values(password_hash=password_hash))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise UserError(f"no user {user_id!r}")

    async def get(self, user_id: str) -> User | None:
        async with self._sessions() as session:
            row = await session.get(UserRow, user_id)
        return None if row is None or row.disabled else _user(row)

    async def all(self) -> list[User]:
        async with self._sessions() as session:
            return [_user(r) for r in await session.scalars(select(UserRow).order_by(UserRow.id))]

    async def authenticate(self, user_id: str, password: str) -> User | None:
        """The user, if the password is theirs. Off the event loop (raises PasswordsBusy when
        too many checks wait); an unknown, disabled or passwordless user costs the same check,
        against DUMMY_HASH, so how long the answer takes says nothing of who exists."""
        async with self._sessions() as session:
            row = await session.get(UserRow, user_id)
        stored = row.password_hash if row is not None and not row.disabled else None
        matches = await self.hasher.run(verify_password, password, stored or DUMMY_HASH)
        return _user(row) if row is not None and stored and matches else None

    async def issue_token(self, user_id: str, label: str, lifetime: timedelta | None) -> str:
        token = new_token()
        now = self.now()
        try:
            async with self._sessions.begin() as session:
                session.add(TokenRow(digest=token_digest(token), user_id=user_id, label=label, created_at=now,
                                     expires_at=now + lifetime if lifetime else None, revoked=False))
        except IntegrityError:
            raise UserError(f"no user {user_id!r}") from None
        return token

    async def user_for_token(self, token: str) -> User | None:
        """The user a token signs in, unless it is unknown, expired or revoked, or the user disabled."""
        async with self._sessions() as session:
            found = (await session.execute(
                select(TokenRow, UserRow).join(UserRow, TokenRow.user_id == UserRow.id)
                .where(TokenRow.digest == token_digest(token)))).first()
        if found is None:
            return None
        row, user = found
        now = self.now()
        if row.revoked or user.disabled or (row.expires_at is not None and row.expires_at <= now):
            return None
        if row.last_used_at is None or now - row.last_used_at >= LAST_USE_PRECISION:
            await self._used(row.digest, now)
        return _user(user)

    async def _used(self, digest: str, now: datetime) -> None:
        """Note a token's use, at most once a LAST_USE_PRECISION (the condition holds when two
        requests race); a failed write costs the request nothing but the note."""
        try:
            async with self._sessions.begin() as session:
                await session.execute(update(TokenRow).where(
                    TokenRow.digest == digest,
                    or_(TokenRow.last_used_at.is_(None), TokenRow.last_used_at <= now - LAST_USE_PRECISION))
                    .values(last_used_at=now))
        except SQLAlchemyError:
            log.warning("could not note the use of a token", exc_info=True)

    async def tokens(self, user_id: str | None = None) -> list[TokenInfo]:
        """Every token (of one user), oldest first."""
        query = select(TokenRow).order_by(TokenRow.created_at, TokenRow.user_id)
        if user_id is not None:
            query = query.where(TokenRow.user_id == user_id)
        async with self._sessions() as session:
            return [TokenInfo(r.user_id, r.label, r.created_at, r.expires_at, r.last_used_at, r.revoked)
                    for r in await session.scalars(query)]

    async def revoke(self, token: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(update(TokenRow).where(TokenRow.digest == token_digest(token)).values(revoked=True))
