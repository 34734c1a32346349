"""An open desk holds only as long as its sign-in: a sign-out closes its WebSockets at once, an expired or
revoked token (or a disabled user) within TOKEN_CHECK; and a body no JSON parser takes is a 400."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import update

import cti.web.app
from cti.store.models import UserRow
from tests.desk_harness import running_desk
from tests.fakeami import Session


async def closed(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[dict[str, object]], int | None]:
    """What a socket received until it closed, and its close code."""
    seen = []
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            seen.append(json.loads(message.data))
    return seen, ws.close_code


async def test_a_sign_out_closes_the_desks_it_opened_and_no_other(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        token = await desk.user("1001", "agent", "1001")
        other = (await desk.request("POST", "/api/session", json={"user": "1001", "password": "correct horse battery"}))
        async with desk.socket(token) as mine, desk.socket(other["token"]) as theirs:
            await desk.request("DELETE", "/api/session", token)
            seen, code = await closed(mine.ws)
            assert code == 4401 and [m["type"] for m in seen] == ["error"]
            assert seen[0]["error"] == {"code": "unauthorized", "message": "signed out"}
            assert not theirs.ws.closed  # the same user's other sign-in holds
        assert desk.service.hub.connections == set()


@pytest.mark.parametrize("how", ["revoked", "disabled"])
async def test_a_desk_whose_token_no_longer_signs_in_is_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               how: str) -> None:
    monkeypatch.setattr(cti.web.app, "TOKEN_CHECK", 0.05)
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        token = await desk.user("1001", "agent", "1001")
        async with desk.socket(token) as mine:
            if how == "revoked":  # as `cti user tokens --revoke` or an expiry would
                await desk.database.users.revoke(token)
            else:
                async with desk.database.engine.begin() as connection:
                    await connection.execute(update(UserRow).where(UserRow.id == "1001").values(disabled=True))
            seen, code = await closed(mine.ws)
        assert code == 4401 and seen[-1]["type"] == "error"
        await desk.request("GET", "/api/me", token, expect=401)  # as REST already said


async def test_a_body_nested_past_the_parsers_limit_is_a_bad_request(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        async with desk.http.post(desk.base + "/api/session", data="[" * 100_000,
                                  headers={"Content-Type": "application/json"}) as answer:
            status, reply = answer.status, await answer.json()
    assert (status, reply["error"]["code"]) == (400, "bad_request")
