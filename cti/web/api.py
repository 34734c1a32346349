"""The REST API of the desk, supervisors, admins and integrators."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from cti.agents.board import AgentBoard
from cti.agents.directory import PAUSE_REASON_BYTES, Agent
from cti.auth_throttle import AddressThrottle, SignInThrottle, ThrottlePolicy
from cti.calls.record import CallRecord, LiveCall, iso_time
from cti.cases.service import CaseService
from cti.configuration import Configuration
from cti.desk.actions import KINDS, SPY_MODES, Desk
from cti.privacy import without_caller
from cti.routing.router import decide, guidance_list
from cti.settings import SmsSettings
from cti.store.database import Database
from cti.store.outbox import STATES, Stored
from cti.store.users import PasswordsBusy
from cti.web.hub import PopHub
from cti.web.routes import (
    ANYONE,
    DAYS_HINT,
    FIRST_DAY,
    LAST_DAY,
    PBX_ERRORS,
    PUBLIC,
    ApiError,
    Call,
    Field,
    Routes,
    number_field,
    paging,
)
from cti.web.schemas import BINARY, PLAIN_TEXT, array, ref
from cti.web.wallboard import Wallboard
from cti.webhooks import shown_url

SESSION_LIFETIME = timedelta(hours=12)
# the public web form, per client address: 5 requests, then 1 minute's wait doubling up to an hour; an hour
# without one and the address starts again
FORM_BOUND = ThrottlePolicy(free_failures=5, window=3600.0, first_delay=60.0, max_delay=3600.0)
routes = Routes()
AGENT_PARAM = Field(max_length=64, description="an agent of agents.yaml", example="1001")
LINKEDID_PARAM = Field(max_length=64, description="the call's Linkedid", example="1795281884.19")
NO_AGENT = {404: "no_such_agent: no agent of that id in agents.yaml",
            403: "forbidden: an agent acts only for themselves"}
NOT_LINKED = "forbidden: the agent user is linked to no agent of agents.yaml"
LIVE_ERRORS = {404: "no_such_call: no such call in progress",
               409: "not_answered: the call has no agent on it; pbx_refused: Asterisk refused the action",
               403: f"not_your_call: an agent acts on the calls they answered only; {NOT_LINKED}",
               503: PBX_ERRORS[503], 504: PBX_ERRORS[504]}


@dataclass
class WebContext:
    """What the web layer needs from the running service."""

    database: Database
    desk: Desk
    board: AgentBoard
    hub: PopHub
    live: Callable[[str], LiveCall | None]
    live_calls: Callable[[], list[LiveCall]]
    configuration: Callable[[], Configuration]
    reload: Callable[[], bool]
    zone: ZoneInfo
    recording_file: Callable[[str], Path | None]  # Asterisk's path of a recording -> the file cti can read
    link_up: Callable[[], bool]
    cases: CaseService
    metrics: Callable[[], bytes]  # the Prometheus exposition of the running service
    # the demo's softphone: (device, linkedid) -> whether a ringing phone picked up; None with a real PBX,
    # where agents answer on their SIP phones
    softphone: Callable[[str, str], bool] | None = None
    throttle: SignInThrottle = field(default_factory=lambda: SignInThrottle(clock=time.monotonic))
    forwarded_for: bool = False  # settings web.forwarded_for: the client is the proxy's last X-Forwarded-For
    # seconds a sign-in's 429 or 503 is held before it is sent (up to half as long again, at random, so that
    # a flood's answers do not all fall due together): a client waiting for its answers guesses at most once a
    # second per connection, and a held answer costs a sleeping coroutine, no CPU
    refusal_hold: float = 1.0
    wallboard: Wallboard | None = None  # the supervisors' board: a snapshot for each of their sockets as it opens
    sms: SmsSettings = field(default_factory=SmsSettings)  # the SMS gateway's secret (its webhook's signature)
    form_throttle: AddressThrottle = field(
        default_factory=lambda: AddressThrottle(FORM_BOUND, clock=time.monotonic))


CONTEXT = web.AppKey("cti", WebContext)
TOKEN = web.RequestKey("token", str)  # the bearer token of the request, for sign-out


def ctx(call: Call) -> WebContext:
    return call.request.app[CONTEXT]


def agent_of(call: Call, agent_id: str) -> Agent:
    """The agent ``agent_id``, if the caller may act for them: themselves, or a supervisor or admin."""
    person = ctx(call).configuration().directory.get(agent_id)
    if not isinstance(person, Agent):
        raise ApiError(404, "no_such_agent", f"no agent {agent_id!r} in agents.yaml")
    if call.user.role == "agent" and call.user.agent_id != agent_id:
        raise ApiError(403, "forbidden", "an agent acts only for themselves")
    return person


def acting_agent(call: Call) -> Agent | None:
    """The agent the signed-in user works as, or None for a supervisor or admin."""
    if call.user.role != "agent":
        return None
    person = ctx(call).configuration().directory.get(call.user.agent_id or "")
    if not isinstance(person, Agent):
        raise ApiError(403, "forbidden", "your user is not linked to an agent of agents.yaml")
    return person


async def hold(seconds: float) -> None:
    await asyncio.sleep(seconds * (1 + random.random() / 2))


def client_address(request: web.Request, forwarded_for: bool) -> str:
    """Who is signing in: the TCP peer; behind a trusted proxy (``forwarded_for``), the address
    that proxy appended last to X-Forwarded-For (earlier ones the client could have written)."""
    if forwarded_for:
        hops = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
        if hops[-1].strip():
            return hops[-1].strip()
    return request.remote or ""


# -- sessions -------------------------------------------------------------------------

@routes.add("POST", "/api/session", roles=PUBLIC, summary="Sign in with a user id and password; returns a token",
            body={"user": Field(required=True, max_length=64), "password": Field(required=True, max_length=1024)},
            response=ref("Session"),
            errors={401: "unauthorized: wrong user or password",
                    429: "too_many_attempts: too many failed sign-ins for the user or the address (Retry-After, "
                         "details.retry_after)",
                    503: "busy: too many sign-ins at once (Retry-After)"})
async def sign_in(call: Call) -> dict[str, Any]:
    """Throttled per user id and per client address (cti.auth_throttle): while either must
    wait, 429 without checking the password at all (held ``refusal_hold``, as a 503 is)."""
    users, throttle = ctx(call).database.users, ctx(call).throttle
    user_id, address = call.body["user"], client_address(call.request, ctx(call).forwarded_for)
    wait = throttle.attempt(user_id, address)
    if wait > 0:
        seconds = math.ceil(wait)
        await hold(min(ctx(call).refusal_hold, wait))
        raise ApiError(429, "too_many_attempts", f"too many failed sign-ins: try again in {seconds} s",
                       {"retry_after": seconds}, headers={"Retry-After": str(seconds)})
    try:
        user = await users.authenticate(user_id, call.body["password"])
    except PasswordsBusy:
        throttle.refund(user_id, address)
        await hold(ctx(call).refusal_hold)
        raise ApiError(503, "busy", "too many sign-ins at once: try again in a second", {"retry_after": 1},
                       headers={"Retry-After": "1"}) from None
    if user is None:
        raise ApiError(401, "unauthorized", "wrong user or password")
    throttle.succeeded(user_id, address)
    token = await users.issue_token(user.id, "desk session", SESSION_LIFETIME)
    return {"token": token, "user": user.to_json(), "expires_in": int(SESSION_LIFETIME.total_seconds())}


@routes.add("DELETE", "/api/session", roles=ANYONE, summary="Sign out: revoke the token used",
            response=ref("SignedOut"))
async def sign_out(call: Call) -> dict[str, Any]:
    await ctx(call).database.users.revoke(call.request[TOKEN])
    await ctx(call).hub.revoke(call.request[TOKEN])  # its desks close too
    return {"signed_out": True}


@routes.add("GET", "/api/me", roles=ANYONE,
            summary="Who the token belongs to, their agent state, the service's time zone (every time the API "
                    "gives is in it) and the pause reasons of agents.yaml (empty: any short one-line text)",
            response=ref("Me"))
async def me(call: Call) -> dict[str, Any]:
    status = ctx(call).board.status(call.user.agent_id or "")
    return {"user": call.user.to_json(), "agent": status.to_json() if status else None,
            "pbx": "up" if ctx(call).link_up() else "down", "softphone": ctx(call).softphone is not None,
            "timezone": ctx(call).zone.key,
            "pause_reasons": list(ctx(call).configuration().directory.pause_reasons)}


# -- agents -----------------------------------------------------------------------------

@routes.add("GET", "/api/agents", roles=("supervisor", "admin"), summary="Every agent's state (wallboard)",
            response=array(ref("AgentStatus")))
async def agents(call: Call) -> list[dict[str, Any]]:
    return [s.to_json() for s in ctx(call).board.all()]


@routes.add("GET", "/api/agents/{agent_id}", roles=("agent", "supervisor", "admin"), summary="An agent's state",
            params={"agent_id": AGENT_PARAM}, response=ref("AgentStatus"), errors=NO_AGENT)
async def agent_state(call: Call) -> dict[str, Any]:
    agent = agent_of(call, call.path("agent_id"))
    status = ctx(call).board.status(agent.id)
    assert status is not None
    return status.to_json()


@routes.add("POST", "/api/agents/{agent_id}/login", roles=("agent", "supervisor"),
            summary="Log the agent into their queues (QueueAdd)", params={"agent_id": AGENT_PARAM},
            response=ref("AgentQueues"), errors=NO_AGENT | PBX_ERRORS)
async def log_in(call: Call) -> dict[str, Any]:
    agent = agent_of(call, call.path("agent_id"))
    await ctx(call).desk.log_in(agent)
    return {"agent_id": agent.id, "queues": list(agent.queues)}


@routes.add("POST", "/api/agents/{agent_id}/logout", roles=("agent", "supervisor"),
            summary="Log the agent out of their queues (QueueRemove)", params={"agent_id": AGENT_PARAM},
            response=ref("AgentQueues"), errors=NO_AGENT | PBX_ERRORS)
async def log_out(call: Call) -> dict[str, Any]:
    agent = agent_of(call, call.path("agent_id"))
    await ctx(call).desk.log_out(agent)
    return {"agent_id": agent.id, "queues": []}


@routes.add("POST", "/api/agents/{agent_id}/pause", roles=("agent", "supervisor"),
            summary="Pause the agent with a reason (QueuePause); one of agents.yaml's pause_reasons when it "
                    "lists them", body={"reason": Field(required=True, max_length=PAUSE_REASON_BYTES)},
            params={"agent_id": AGENT_PARAM}, response=ref("AgentPause"), errors=NO_AGENT | PBX_ERRORS)
async def pause(call: Call) -> dict[str, Any]:
    agent = agent_of(call, call.path("agent_id"))
    reason = call.body["reason"]
    allowed = ctx(call).configuration().directory.pause_reasons
    if allowed and reason not in allowed:
        problem = f"one of {', '.join(allowed)}"
    elif len(reason.encode()) > PAUSE_REASON_BYTES:
        problem = f"at most {PAUSE_REASON_BYTES} bytes of UTF-8 (app_queue cuts a longer one)"
    else:
        problem = ""
    if problem:
        raise ApiError(422, "invalid", "invalid body", {"fields": {"reason": problem}})
    await ctx(call).desk.pause(agent, reason)
    return {"agent_id": agent.id, "paused": True, "reason": reason}


@routes.add("POST", "/api/agents/{agent_id}/ready", roles=("agent", "supervisor"),
            summary="End the agent's pause (QueuePause Paused=false)", params={"agent_id": AGENT_PARAM},
            response=ref("AgentPause"), errors=NO_AGENT | PBX_ERRORS)
async def ready(call: Call) -> dict[str, Any]:
    agent = agent_of(call, call.path("agent_id"))
    await ctx(call).desk.ready(agent)
    return {"agent_id": agent.id, "paused": False}


# -- live calls and transfers ---------------------------------------------------------------

@routes.add("GET", "/api/targets", roles=("agent", "supervisor"),
            summary="One-key transfer targets: emergency lines and departments' remote seats",
            response=array(ref("Target")))
async def targets(call: Call) -> list[dict[str, str]]:
    return [t.to_json() for t in ctx(call).desk.targets()]


@routes.add("GET", "/api/guidance", roles=ANYONE, summary="Lines outside the integration (暂不纳入), for guidance",
            response=array(ref("Guidance")))
async def guidance(call: Call) -> list[dict[str, str]]:
    return guidance_list(ctx(call).configuration().trunk_map)


@routes.add("GET", "/api/live", roles=("supervisor", "admin"), summary="Calls in progress",
            response=array(ref("LiveCall")))
async def live(call: Call) -> list[dict[str, Any]]:
    return [c.to_json(ctx(call).zone) for c in ctx(call).live_calls()]


@routes.add("POST", "/api/calls/{linkedid}/transfer", roles=("agent", "supervisor"),
            summary="Hand the citizen over: blind, attended, or a three-way call (conference)",
            body={"target": Field(required=True, max_length=64,
                                  description="110, 119, 120, 122, 12122 or a remote seat id"),
                  "kind": Field(required=True, choices=KINDS)},
            params={"linkedid": LINKEDID_PARAM}, response=ref("AmiActions"),
            errors=LIVE_ERRORS | {404: f"{LIVE_ERRORS[404]}; unknown_target: no such transfer target"})
async def transfer(call: Call) -> dict[str, Any]:
    return await ctx(call).desk.transfer(call.path("linkedid"), call.body["target"], call.body["kind"],
                                         acting_agent(call))


@routes.add("POST", "/api/calls/{linkedid}/answer", roles=("agent",),
            summary="Answer the call ringing on your phone from the desk (simulated PBX only: `cti demo`)",
            params={"linkedid": LINKEDID_PARAM}, response=ref("Answered"),
            errors={403: NOT_LINKED, 404: "no_softphone: the PBX is a real one: answer on the phone",
                    409: "not_ringing: the call is not ringing on your phone"})
async def answer(call: Call) -> dict[str, Any]:
    softphone = ctx(call).softphone
    if softphone is None:
        raise ApiError(404, "no_softphone", "this PBX has no desk softphone: answer on your phone")
    agent = acting_agent(call)
    assert agent is not None
    if not softphone(agent.device, call.path("linkedid")):
        raise ApiError(409, "not_ringing", f"call {call.path('linkedid')} is not ringing on {agent.device}")
    return {"answered": call.path("linkedid")}


@routes.add("POST", "/api/calls/{linkedid}/hangup", roles=("agent", "supervisor"),
            summary="Hang up the agent's leg of the call (AMI Hangup); an agent, their own call only",
            params={"linkedid": LINKEDID_PARAM}, response=ref("AmiActions"), errors=LIVE_ERRORS)
async def hang_up(call: Call) -> dict[str, Any]:
    return await ctx(call).desk.hang_up(call.path("linkedid"), acting_agent(call))


@routes.add("POST", "/api/calls/{linkedid}/transfer/complete", roles=("agent", "supervisor"),
            summary="Complete an attended transfer", params={"linkedid": LINKEDID_PARAM}, response=ref("AmiActions"),
            errors=LIVE_ERRORS)
async def complete_transfer(call: Call) -> dict[str, Any]:
    return await ctx(call).desk.finish_attended(call.path("linkedid"), acting_agent(call), complete=True)


@routes.add("POST", "/api/calls/{linkedid}/transfer/cancel", roles=("agent", "supervisor"),
            summary="Cancel an attended transfer and return to the citizen", params={"linkedid": LINKEDID_PARAM},
            response=ref("AmiActions"), errors=LIVE_ERRORS)
async def cancel_transfer(call: Call) -> dict[str, Any]:
    return await ctx(call).desk.finish_attended(call.path("linkedid"), acting_agent(call), complete=False)


@routes.add("POST", "/api/calls/{linkedid}/listen", roles=("supervisor",),
            summary="Listen to (监听), whisper to (耳语) or barge into (强插) the agent's call from your own phone: "
                    "AMI Originate of it into [cti-spy], where ChanSpy runs on the agent's leg; in the call's timeline",
            body={"mode": Field(required=True, choices=SPY_MODES,
                                description="listen: hear both sides; whisper: the agent hears you; barge: both do")},
            params={"linkedid": LINKEDID_PARAM}, response=ref("AmiActions"),
            errors={404: LIVE_ERRORS[404], 503: PBX_ERRORS[503], 504: PBX_ERRORS[504],
                    409: "not_answered: the call has no agent on it; no_phone: your user has no phone in "
                         "agents.yaml's supervisors; pbx_refused: Asterisk refused the action"})
async def listen(call: Call) -> dict[str, Any]:
    supervisor = ctx(call).configuration().directory.supervisor(call.user.id)
    if supervisor is None:
        raise ApiError(409, "no_phone", f"no phone for {call.user.id!r}: add it to agents.yaml's supervisors")
    return await ctx(call).desk.listen(call.path("linkedid"), call.body["mode"], supervisor, call.user.id)


# -- call records -------------------------------------------------------------------------

NO_UNIT = "forbidden: an integrator bound to no unit reads no calls or cases"
RECORD_ERRORS = {404: "no_such_call: no such call record (for an integrator: none of its unit's)",
                 403: f"forbidden: an agent reads only the calls they answered; {NOT_LINKED}; {NO_UNIT}"}


def unit_view(call: Call) -> str | None:
    """The unit whose calls and cases an integrator sees (None: everyone's); an integrator of no unit sees
    none of either."""
    if call.user.role != "integrator":
        return None
    if not call.user.unit_id:
        raise ApiError(403, "forbidden", "this integrator acts for no unit: it reads no calls or cases")
    return str(call.user.unit_id)


async def _hidden(call: Call, records: list[CallRecord]) -> set[str]:
    """The calls whose caller an integrator may not see: those of a confidential case."""
    if unit_view(call) is None or not records:
        return set()
    return await ctx(call).cases.store.confidential_calls([r.linkedid for r in records])


@routes.add("GET", "/api/calls", roles=("supervisor", "admin", "integrator"),
            summary="Call records, newest first (an integrator of a unit: its unit's, confidential callers masked)",
            query={"caller": number_field("only calls from this number")} | paging(50),
            response=array(ref("CallRecord")), errors={403: NO_UNIT})
async def calls(call: Call) -> list[dict[str, Any]]:
    records = await ctx(call).database.calls.calls(
        caller_number=call.query.get("caller"), unit_id=unit_view(call),
        limit=call.query.get("limit", 50), offset=call.query.get("offset", 0))
    hidden = await _hidden(call, records)
    if hidden and "caller" in call.query:  # a masked row found by its number would confirm the number
        records = [r for r in records if r.linkedid not in hidden]
    zone = ctx(call).zone
    return [without_caller(r.to_json(zone), r.direction) if r.linkedid in hidden else r.to_json(zone)
            for r in records]


async def _record_for(call: Call) -> CallRecord:
    """The call of the path, if the user may see it: another unit's call is not found, for an integrator."""
    [record] = await ctx(call).database.calls.calls(linkedids=[call.path("linkedid")], unit_id=unit_view(call),
                                                     limit=1) or (None,)
    if record is None:
        raise ApiError(404, "no_such_call", f"no call record {call.path('linkedid')}")
    agent = acting_agent(call)
    if agent is not None and record.answered_by not in (agent.member, agent.device):
        raise ApiError(403, "forbidden", "an agent sees only the calls they answered")
    return record


@routes.add("GET", "/api/calls/{linkedid}", roles=("agent", "supervisor", "admin", "integrator"),
            summary="A call record with its timeline", params={"linkedid": LINKEDID_PARAM},
            response=ref("CallRecordDetail"), errors=RECORD_ERRORS)
async def call_record(call: Call) -> dict[str, Any]:
    record = await _record_for(call)
    timeline = await ctx(call).database.calls.timeline(record.linkedid)
    zone = ctx(call).zone
    data = record.to_json(zone) | {
        "timeline": [{"kind": e.kind, "at": iso_time(e.at, zone), **e.data()} for e in timeline]}
    if await _hidden(call, [record]):  # the timeline's offered event carries the caller too
        data = without_caller(data, record.direction) | {
            "timeline": [without_caller(e, record.direction) for e in data["timeline"]]}
    return data


@routes.add("GET", "/api/calls/{linkedid}/recording", roles=("agent", "supervisor", "admin"),
            summary="The call's recording (WAV)", produces="audio/wav", params={"linkedid": LINKEDID_PARAM},
            response=BINARY, errors=RECORD_ERRORS | {
                404: f"{RECORD_ERRORS[404]}; no_recording: the call has no recording (yet)"})
async def recording(call: Call) -> web.FileResponse:
    record = await _record_for(call)
    path = ctx(call).recording_file(record.recording) if record.recording else None
    if path is None or not path.is_file():
        raise ApiError(404, "no_recording", f"no recording of call {record.linkedid} to play")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


# -- routing and administration --------------------------------------------------------------

@routes.add("GET", "/api/route/{number}", roles=("integrator", "supervisor", "admin"),
            summary="What the router decides for a call to a number", query={"at": Field(
                max_length=64, format="date-time", description="ISO 8601 moment; default now")},
            params={"number": Field(max_length=64, description="the number dialled", example="12315")},
            response=ref("Decision"))
async def route(call: Call) -> dict[str, Any]:
    configuration = ctx(call).configuration()
    zone = configuration.trunk_map.zone
    at_text = call.query.get("at")
    try:
        at = datetime.fromisoformat(at_text) if at_text else datetime.now(zone)
    except ValueError:
        raise ApiError(422, "invalid", "invalid query", {"fields": {"at": "expected ISO 8601"}}) from None
    if not FIRST_DAY <= at.date() <= LAST_DAY:  # in the trunk map's zone it would be no datetime
        raise ApiError(422, "invalid", "invalid query", {"fields": {"at": f"a moment of {DAYS_HINT}"}})
    at = at if at.tzinfo else at.replace(tzinfo=zone)
    return decide(configuration.trunk_map, call.path("number"), at).to_json() | {"at": at.isoformat()}


@routes.add("GET", "/api/metrics", roles=("admin", "supervisor", "integrator"), produces="text/plain",
            summary="Prometheus metrics (scrape with a bearer token)", response=PLAIN_TEXT)
async def metrics(call: Call) -> web.Response:
    return web.Response(body=ctx(call).metrics(), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


@routes.add("POST", "/api/admin/reload", roles=("admin",),
            summary="Reload trunk map, agents, flows and prompts; keeps the last good ones on error",
            response=ref("Reloaded"),
            errors={422: "invalid_configuration: the new configuration has problems (in the log); the last good "
                         "one stays"})
async def reload(call: Call) -> dict[str, Any]:
    if not ctx(call).reload():
        raise ApiError(422, "invalid_configuration", "the new configuration has problems; see the log")
    return {"reloaded": ctx(call).configuration().summary()}



# -- webhooks to units ----------------------------------------------------------------------------

@routes.add("GET", "/api/admin/webhooks", roles=("admin", "supervisor"),
            summary="Webhook messages to units: pending (oldest first, the order they go in), delivered or "
                    "dead (newest first)",
            query={"state": Field(choices=STATES), "unit": Field(max_length=64, description="a unit's id")}
            | paging(100), response=array(ref("WebhookMessage")))
async def webhooks(call: Call) -> list[dict[str, Any]]:
    q = call.query
    found = await ctx(call).database.outbox.messages(state=q.get("state"), unit=q.get("unit"),
                                                    limit=q.get("limit", 100), offset=q.get("offset", 0))
    return [_webhook_json(m, ctx(call).zone) for m in found]


@routes.add("POST", "/api/admin/webhooks/{message_id}/retry", roles=("admin",),
            summary="Send a pending or dead webhook message now (a dead one is pending again)",
            params={"message_id": Field(int, min=1, description="GET /api/admin/webhooks's id", example=1)},
            response=ref("WebhookMessage"),
            errors={404: "no_such_message: no webhook message of that id",
                    409: "delivered: the message was delivered already"})
async def retry_webhook(call: Call) -> dict[str, Any]:
    text = call.path("message_id")
    number = int(text) if text.isascii() and text.isdigit() and len(text) < 10 else 0
    stored = await ctx(call).database.outbox.retry(number, datetime.now(UTC)) if number else None
    if stored is None:
        raise ApiError(404, "no_such_message", f"no webhook message {text}")
    if stored.state == "delivered":
        raise ApiError(409, "delivered", f"webhook message {number} was delivered already")
    return _webhook_json(stored, ctx(call).zone)


def _webhook_json(m: Stored, zone: ZoneInfo) -> dict[str, Any]:
    def at(value: datetime | None) -> str | None:
        return value.astimezone(zone).isoformat() if value is not None else None

    return {"id": m.id, "state": m.state, "unit": m.unit, "event": m.event, "idempotency_key": m.key,
            "destination": shown_url(m.destination), "created_at": at(m.created_at),
            "attempts": m.attempts, "next_attempt_at": at(m.next_attempt_at) if m.state == "pending" else None,
            "last_error": m.last_error, "delivered_at": at(m.delivered_at), "dead_at": at(m.dead_at)}
