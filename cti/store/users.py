"""Users and their tokens in the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from cti.auth import ROLES, hash_password, new_token, token_digest, verify_password
from cti.store.models import TokenRow, UserRow


class UserError(Exception):
    pass


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
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def add(self, user_id: str, name: str, role: str, password: str | None = None,
                  agent_id: str | None = None, unit_id: str | None = None) -> User:
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        if role == "agent" and not agent_id:
            raise UserError("an agent user works as an agent of agents.yaml: give its id")
        if unit_id and role != "integrator":
            raise UserError("only an integrator user acts for a unit")
        row = UserRow(id=user_id, name=name, role=role, agent_id=agent_id, unit_id=unit_id, disabled=False,
                      password_hash=hash_password(password) if password else None, created_at=datetime.now(UTC))
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise UserError(f"user {user_id!r} already exists") from None
        return _user(row)

    async def set_password(self, user_id: str, password: str) -> None:
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(UserRow).where(UserRow.id == user_id).values(password_hash=hash_password(password)))
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
        async with self._sessions() as session:
            row = await session.get(UserRow, user_id)
        if row is None or row.disabled or not row.password_hash:
            return None
        return _user(row) if verify_password(password, row.password_hash) else None

    async def issue_token(self, user_id: str, label: str, lifetime: timedelta | None) -> str:
        token = new_token()
        now = datetime.now(UTC)
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
        if row.revoked or user.disabled or (row.expires_at is not None and row.expires_at <= datetime.now(UTC)):
            return None
        return _user(user)

    async def revoke(self, token: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(update(TokenRow).where(TokenRow.digest == token_digest(token)).values(revoked=True))
