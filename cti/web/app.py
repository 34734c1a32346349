"""The aiohttp application: the REST API, the screen-pop WebSocket and the desk page."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

from cti.ami.action import UnsafeAction
from cti.ami.client import AmiActionError, AmiDisconnected, AmiTimeout
from cti.desk.actions import DeskError
from cti.refusal import Refusal
from cti.web import (
    case_api,  # noqa: F401 - registers the case routes
    channel_api,  # noqa: F401 - registers the web form's and the SMS gateway's routes
    hotspot_api,  # noqa: F401 - registers the hotspot routes
    kb_api,  # noqa: F401 - registers the knowledge base's routes
    ledger_api,  # noqa: F401 - registers the number ledger's route
)
from cti.web.api import CONTEXT, TOKEN, WebContext, routes
from cti.web.hub import Connection
from cti.web.routes import PUBLIC, ApiError, Call, Route, check_path, validate
from cti.web.schemas import WEBSOCKET, ref

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
AUTH_TIMEOUT = 5.0  # seconds a WebSocket may take to send its token
TOKEN_CHECK = 30.0  # seconds between checks that an open desk's token still holds (expiry, a disabled user)


def make_app(context: WebContext) -> web.Application:
    app = web.Application(middlewares=[errors])
    app[CONTEXT] = context
    for route in routes.table:
        app.router.add_route(route.method, route.path, _endpoint(route))
    app.router.add_get("/", desk_page)
    app.router.add_get("/wallboard", wallboard_page)
    app.router.add_get("/stats", stats_page)
    app.router.add_get("/ledger", ledger_page)
    app.router.add_get("/submit", submit_page)
    app.router.add_static("/static/", STATIC)
    app.on_shutdown.append(_close_sockets)
    return app


def error_body(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "details": details or {}}},
                             status=status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error in one JSON shape: {"error": {"code", "message", "details"}}."""
    try:
        return await handler(request)
    except (ApiError, DeskError, Refusal) as exc:  # a case's workflow or the knowledge base said no
        response = error_body(exc.status, exc.code, exc.message, getattr(exc, "details", None))
        response.headers.update(getattr(exc, "headers", {}))
        return response
    except AmiActionError as exc:  # Asterisk said no: its own words reach the desk
        return error_body(409, "pbx_refused", exc.reason, {"action": exc.action})
    except AmiDisconnected as exc:
        return error_body(503, "pbx_unavailable", str(exc))
    except AmiTimeout as exc:
        return error_body(504, "pbx_timeout", str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        return error_body(exc.status, code, exc.reason)
    except UnsafeAction as exc:  # a value of the configuration (agents.yaml…) the guard refused to send
        log.error("%s %r: %s", request.method, request.path, exc)
        return error_body(500, "unsafe_action", str(exc), {"action": exc.action, "header": exc.header})
    except Exception:
        log.exception("%s %r failed", request.method, request.path)  # %r: a path's line breaks stay escaped
        return error_body(500, "internal", "internal error; see the service log")


def _endpoint(route: Route) -> Any:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        user = None
        if route.roles:
            user = await _authenticate(request)
            if user.role not in route.roles:
                raise ApiError(403, "forbidden", f"{route.method} {route.path} is for {', '.join(route.roles)}, "
                                                 f"not {user.role}")
        check_path(route.params, request.match_info)
        if route.guard is not None:
            await route.guard(request)
        body: dict[str, Any] = {}
        if route.body:
            try:
                data = await request.json()
            except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past Python's limit
                raise ApiError(400, "bad_request", "the body is not JSON") from None
            body = validate(route.body, data, "body")
        query = validate(route.query, dict(request.query), "query") if route.query else {}
        result = await route.handler(Call(request, user, body, query))
        return result if isinstance(result, web.StreamResponse) else web.json_response(result)
    endpoint.__name__ = route.handler.__name__
    return endpoint


async def _authenticate(request: web.Request) -> Any:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "sign in: Authorization: Bearer <token>")
    user = await request.app[CONTEXT].database.users.user_for_token(token.strip())
    if user is None:
        raise ApiError(401, "unauthorized", "the token is unknown, expired or revoked")
    request[TOKEN] = token.strip()
    return user


@routes.add("GET", "/api/openapi.json", roles=PUBLIC, summary="This document", response=ref("OpenApiDocument"))
async def openapi(call: Call) -> dict[str, Any]:
    return routes.openapi("cti — 12345 hotline desk and integration API", "0.1.0")


async def desk_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "desk.html")


async def stats_page(request: web.Request) -> web.FileResponse:
    """The statistics page: trends, the category × district table, hotspots and alerts (its data: the API)."""
    return web.FileResponse(STATIC / "stats.html")


async def ledger_page(request: web.Request) -> web.FileResponse:
    """The public number ledger (号码台账): no sign-in, its data from GET /api/ledger."""
    return web.FileResponse(STATIC / "ledger.html")


async def submit_page(request: web.Request) -> web.FileResponse:
    """The public web form (网上诉求): no sign-in, it posts to POST /api/requests."""
    return web.FileResponse(STATIC / "submit.html")


async def wallboard_page(request: web.Request) -> web.FileResponse:
    """The supervisors' wallboard (its data comes over the WebSocket, to supervisors and admins only)."""
    return web.FileResponse(STATIC / "wallboard.html")


@routes.add("GET", "/api/ws", roles=PUBLIC, status=101, extensions={"x-websocket": WEBSOCKET},
            summary="The screen-pop WebSocket: send {\"type\": \"auth\", \"token\": …} first (x-websocket has "
                    "every message)",
            errors={400: "http_error: not a WebSocket upgrade request"})
async def websocket(call: Call) -> web.WebSocketResponse:
    """Screen-pops. The first message must be {"type": "auth", "token": …}: browsers cannot set headers."""
    request = call.request
    context = request.app[CONTEXT]
    socket = web.WebSocketResponse(heartbeat=20)
    await socket.prepare(request)
    try:
        first = await socket.receive(timeout=AUTH_TIMEOUT)
        token = json.loads(first.data).get("token", "") if first.type == WSMsgType.TEXT else ""
    except (TimeoutError, json.JSONDecodeError, AttributeError):
        token = ""
    if not isinstance(token, str) or not token.isprintable():  # 5, [], "\ud800": no token at all
        token = ""
    user = await context.database.users.user_for_token(token) if token else None
    if user is None:
        await socket.send_json({"type": "error", "error": {"code": "unauthorized", "message": "send a valid token"}})
        await socket.close(code=4401, message=b"unauthorized")
        return socket
    connection = Connection(user, socket.send_str, lambda: socket.close(code=4401, message=b"unauthorized"),
                            token=token)
    # a supervisor's or admin's socket gets the wallboard whole after hello, then its updates: the snapshot is
    # taken before the socket joins, with nothing awaited between, so no update falls between the two
    board = context.wallboard.snapshot_text() if context.wallboard and user.role in ("supervisor", "admin") else ""
    context.hub.attach(connection)
    watch = asyncio.create_task(_watch_token(context, connection), name=f"token-{user.id}")
    status = context.board.status(user.agent_id or "")
    connection.queue.put_nowait(json.dumps({
        "type": "hello", "user": user.to_json(), "agent": status.to_json() if status else None,
        "pbx": "up" if context.link_up() else "down"}, ensure_ascii=False))
    if board:
        connection.queue.put_nowait(board)
    try:
        async for message in socket:
            if message.type == WSMsgType.ERROR:
                break
    finally:
        watch.cancel()
        await context.hub.detach(connection)
    return socket


async def _watch_token(context: WebContext, connection: Connection) -> None:
    """A desk stays open only while its token would still sign in a REST request: past its expiry, or
    once its user is disabled, it is closed. (A sign-out closes it at once: PopHub.revoke.)"""
    while True:
        await asyncio.sleep(TOKEN_CHECK)
        try:
            user = await context.database.users.user_for_token(connection.token)
        except Exception:  # the database is away: the desk stays as it is, checked again later
            log.warning("could not check the token of %s's desk", connection.user.id, exc_info=True)
            continue
        if user is None:
            await context.hub.end(connection, "the sign-in expired or the user was disabled: sign in again")
            return


async def _close_sockets(app: web.Application) -> None:
    await app[CONTEXT].hub.close()


async def start_web(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    log.info("desk and API on http://%s:%d/", host, bound)
    return runner, bound

