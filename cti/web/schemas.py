"""What the API answers, what the WebSocket sends and what the units' webhooks carry, as JSON
Schema (2020-12, the dialect of OpenAPI 3.1): the one description of the API's data. The route
table (cti.web.routes) names each route's answer with ``ref()`` and puts COMPONENTS into the
OpenAPI document's components/schemas, WEBSOCKET into its ``x-websocket`` and WEBHOOKS into its
``webhooks``.

Every object is closed (``additionalProperties: false``) and lists as required every key the
code sends, always: a key added to an answer and not here fails the contract tests
(tests/test_api_contract.py), which validate real answers, pops and webhooks against these.
Where the code's own dataclasses say the fields (the call timeline's events, the statistics'
rows), the schema is made from them, so the two cannot differ.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cti.agents.board import DEVICE_STATES
from cti.auth import ROLES
from cti.calls.events import EVENT_TYPES, CallEvent
from cti.cases.channels import CHANNELS
from cti.cases.model import CATEGORIES, STATES
from cti.cases.stats import Row
from cti.stats.rows import CallStatsRow
from cti.store.outbox import STATES as WEBHOOK_STATES

Schema = dict[str, Any]
PREFIX = "#/components/schemas/"


def ref(name: str) -> Schema:
    """A reference to the component schema ``name`` (the contract tests resolve every one)."""
    return {"$ref": PREFIX + name}


def nullable(schema: Schema) -> Schema:
    """The schema, or JSON null."""
    if "$ref" in schema or "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    widened = {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:
        widened["enum"] = [*schema["enum"], None]
    return widened


def array(items: Schema, description: str = "") -> Schema:
    return _described({"type": "array", "items": items}, description)


def obj(properties: dict[str, Schema], description: str = "", *, optional: tuple[str, ...] = ()) -> Schema:
    """A closed object: every property required but those ``optional`` (sent only sometimes)."""
    return _described({"type": "object", "properties": properties,
                       "required": [name for name in properties if name not in optional],
                       "additionalProperties": False}, description)


def text(description: str = "", **more: Any) -> Schema:
    return _described({"type": "string", **more}, description)


def integer(description: str = "", **more: Any) -> Schema:
    return _described({"type": "integer", **more}, description)


def number(description: str = "") -> Schema:
    return _described({"type": "number"}, description)


def boolean(description: str = "") -> Schema:
    return _described({"type": "boolean"}, description)


def choice(values: tuple[str, ...] | list[str], description: str = "") -> Schema:
    return _described({"type": "string", "enum": list(values)}, description)


def const(value: str, description: str = "") -> Schema:
    return _described({"type": "string", "const": value}, description)


def time(description: str = "") -> Schema:
    return text(description or "ISO 8601, with the service's offset (settings timezone)", format="date-time")


def _described(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description} if description else schema


_PLAIN: dict[str, Schema] = {
    "str": {"type": "string"}, "int": {"type": "integer"}, "float": {"type": "number"}, "bool": {"type": "boolean"},
    "dict[str, str]": {"type": "object", "additionalProperties": {"type": "string"}},
    "tuple[str, ...]": {"type": "array", "items": {"type": "string"}},
    "list[str]": {"type": "array", "items": {"type": "string"}}}


def _field_schema(annotation: Any) -> Schema:
    """A dataclass field's annotation (a string: the modules use postponed annotations) as JSON Schema;
    {} (anything) for a type not known here, which the contract tests refuse to leave so."""
    spelled = str(annotation)
    if spelled.endswith(" | None"):
        inner = _field_schema(spelled.removesuffix(" | None"))
        return nullable(inner) if inner else {}
    return dict(_PLAIN.get(spelled, {}))


def _timeline_event(cls: type[CallEvent]) -> Schema:
    """A call's timeline event as GET /api/calls/{linkedid} gives it: its kind, when, and the event's fields."""
    fields = {f.name: _field_schema(f.type) for f in dataclasses.fields(cls) if f.name not in ("linkedid", "at")}
    own = cls.__doc__ or ""  # a dataclass without one gets its signature
    return obj({"kind": const(cls.kind), "at": time(), **fields},
               "" if own.startswith(f"{cls.__name__}(") else own.strip().split("\n")[0])


def _stats_row() -> Schema:
    return obj({f.name: _field_schema(f.type) for f in dataclasses.fields(Row)},
               "One group's counts (key: the unit, category, legacy number, day or month grouped by; README: "
               "Service levels)")


def _call_stats_row() -> Schema:
    return obj({f.name: _field_schema(f.type) for f in dataclasses.fields(CallStatsRow)},
               "One group's call measures (key: the hour of the day, day, queue, unit or agent grouped by, or "
               "total; rates are fractions, null when nothing was offered; seconds; README: Service levels)")


# -- the data ----------------------------------------------------------------------------------

_AGENT_STATES = ("logged_out", "paused", "ready",
                 *sorted({s for s in DEVICE_STATES.values()} - {"idle", "unknown"}))
_TREATMENT = text("merged, remote_seat, interconnected, emergency, excluded (the trunk map's), hotline (12345 "
                  "itself) or unknown (a number not in the trunk map); empty when cti never saw the route decision")
_DIRECTION = choice(("inbound", "outbound"), "inbound: a citizen called; outbound: a callback cti placed")
_AMI_ACTION = {"type": "object", "additionalProperties": {"type": "string"},
               "description": "An AMI action as sent to Asterisk (its headers; ActionID left out)"}
_CASE_TIMES = ("created_at", "dispatched_at", "due_at", "replied_at", "escalated_at", "closed_at", "archived_at",
               "next_callback_at", "taken_at")

_CALL_RECORD: dict[str, Schema] = {
    "linkedid": text("Asterisk's Linkedid: the call's id"),
    "direction": _DIRECTION,
    "caller_number": text("the citizen's number (on a callback, cti's line); masked (138****0043) for a unit "
                          "when the caller asked for confidentiality in a case"),
    "caller_name": text("the caller's name, as the network gave it; empty for a unit when confidential"),
    "dialled_number": text("the number dialled: 12345 or a legacy number (on a callback, the citizen's)"),
    "unit": text("the name of the unit owning the dialled legacy number"),
    "unit_id": text("that unit's id (trunk_map.yaml)"),
    "treatment": _TREATMENT,
    "queue": text("the queue the call waited in, if any"),
    "arrived_at": time(),
    "queued_at": nullable(time()),
    "answered_at": nullable(time()),
    "ended_at": time(),
    "queue_wait": nullable(number("seconds in the queue")),
    "talk_time": nullable(number("seconds from answer to end")),
    "duration": number("seconds from arrival to end"),
    "answered_by": text("the queue member interface or device that answered (PJSIP/agent1001)"),
    "answered_by_name": text("its name (the queue member's)"),
    "transfers": array(obj({
        "target": text("the number, room or device the citizen was handed to"),
        "kind": text("blind, attended, redirect or conference"),
        "at": time(),
        "transferer": text("the channel that asked for it"),
        "transferee": text("the channel that was moved"),
        "outcome": text("answered, noanswer, busy, failed…, or empty when it cannot be told"),
        "reached": text("the device the citizen was put through to, when a Dial shows it"),
        "presented": text("the number that device was shown as the caller"),
    }, "The citizen handed over")),
    "legs": array(obj({
        "device": text("the queue member interface or device rung"),
        "name": text("the queue member's name"),
        "outcome": text("answered, cancel, noanswer, busy, chanunavail, congestion, gone or ringing (the last "
                        "attempt's)"),
        "attempts": integer("times it was rung", minimum=1),
        "rang_at": time(),
        "ended_at": nullable(time()),
    }, "A phone rung for the call")),
    "hangup_cause": nullable(integer("the Q.850 cause (16: normal clearing)")),
    "hangup_cause_text": text("Asterisk's text of the cause"),
    "recording": text("the recording's file as the PBX names it (GET /api/calls/{linkedid}/recording plays it); "
                      "empty when there is none"),
    "estimated": boolean("parts were inferred after the AMI link was down"),
}

_CASE: dict[str, Schema] = {
    "id": integer(minimum=1),
    "category": choice(tuple(CATEGORIES), "; ".join(f"{k}: {v}" for k, v in CATEGORIES.items())),
    "content": text("what the caller asks or reports"),
    "location": text(),
    "legacy_number": text("the number the citizen dialled on the case's first call"),
    "confidential": boolean("the caller asked not to be named to the unit"),
    "auto": boolean("opened by cti for a call that ended without a case, for an agent to complete"),
    "state": choice(STATES),
    "unit": text("the handling unit's id (GET /api/units); empty before dispatch"),
    "extension_days": integer("working days the deadline was extended by", minimum=0),
    "extension_request": nullable(obj({
        "days": integer(minimum=1), "reason": text(), "by": text("who asked"), "at": time("ISO 8601, UTC")},
        "An extension a unit asked for, awaiting a supervisor")),
    "reply": text("the unit's reply"),
    "on_time": nullable(boolean("replied by the deadline")),
    "satisfaction": choice(("", "1", "2", "3", "unreachable"),
                           "the caller's survey answer: 1 satisfied, 2 basically, 3 unsatisfied; empty: none yet"),
    "rehandled": integer("times sent back to the unit after an unsatisfied answer", minimum=0),
    "overdue_notices": integer(minimum=0),
    "callback_attempts": integer(minimum=0),
    "merged_into": nullable(integer("the case this one was merged into")),
    "version": integer("counts the case's changes (a webhook's Idempotency-Key carries it)", minimum=0),
    "category_name": text("the category in Chinese"),
    "caller_number": text("masked (138****0043) for a unit when confidential"),
    "caller_name": text("empty for a unit when confidential"),
    **{name: nullable(time()) for name in _CASE_TIMES},
    "created_by": text("the user who opened it, or cti"),
    "channel": choice(tuple(CHANNELS), "how it came: phone (a call), sms, web (the public form)"),
    "channel_name": text("the channel in Chinese: 电话, 短信, 网页"),
    "reference": nullable(text("the case number the citizen quotes (工单号, YYYYMMDD-NNNNNNN); none on cases "
                               "opened before cti gave them")),
    "taken_by": text("who answered it: the first person to take a step on it (empty: nobody yet)"),
}

_AGENT_STATUS = obj({
    "agent_id": text(), "name": text(), "device": text("the agent's phone (PJSIP/agent1001)"),
    "queues": array(text(), "the queues the agent is logged into"),
    "state": choice(_AGENT_STATES, "what the wallboard shows: logged_out, paused, ready, or the phone's state"),
    "paused": boolean(), "reason": text("the pause reason"),
    "phone": choice(sorted(set(DEVICE_STATES.values())), "the phone's device state (app_queue's)"),
    "since": number("when the agent last changed state: seconds since the epoch"),
}, "An agent's state, from app_queue's events")

_LIVE_CALL = obj({
    "linkedid": text(), "direction": _DIRECTION, "caller_number": text(), "caller_name": text(),
    "dialled_number": text(), "unit": text(), "unit_id": text(), "treatment": _TREATMENT,
    "arrived_at": time(), "queue": text(), "answered_at": nullable(time()),
    "answered_by": text("the queue member interface or device that answered; empty while it rings"),
}, "A call in progress")

_TIMELINE = {f"TimelineEvent_{kind}": _timeline_event(cls) for kind, cls in EVENT_TYPES.items()}

COMPONENTS: dict[str, Schema] = {
    "Error": obj({"error": obj({
        "code": text("for programs: invalid, unauthorized, forbidden, not_found, no_such_case, pbx_refused…"),
        "message": text("for people (English)"),
        "details": obj({
            "fields": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "invalid input: each field named, with what is wrong with it"},
            "retry_after": integer("seconds to wait (429 too_many_attempts, 503 busy)", minimum=0),
            "action": text("the AMI action Asterisk refused (409 pbx_refused), or the guard (500 unsafe_action)"),
            "header": text("the AMI header whose value, from the configuration, the guard refused (500 "
                           "unsafe_action)"),
        }, "more about the error; {} when there is nothing more",
            optional=("fields", "retry_after", "action", "header")),
    })}, "Every error the API answers, whatever the route and status"),
    "User": obj({"id": text(), "name": text(), "role": choice(ROLES),
                 "agent_id": nullable(text("the agent of agents.yaml an agent user is")),
                 "unit_id": nullable(text("the handling unit an integrator acts for"))}, "A user of cti"),
    "Session": obj({"token": text("the bearer token: Authorization: Bearer <token>"), "user": ref("User"),
                    "expires_in": integer("seconds the token lasts", minimum=1)}),
    "Me": obj({
        "user": ref("User"), "agent": nullable(ref("AgentStatus")), "pbx": choice(("up", "down"), "the AMI link"),
        "softphone": boolean("the desk can answer calls (the simulated PBX of cti demo)"),
        "timezone": text("the service's zone (IANA): every time the API gives is in it"),
        "pause_reasons": array(text(), "agents.yaml's pause_reasons; empty: any short one-line text")}),
    "AgentStatus": _AGENT_STATUS,
    "AgentQueues": obj({"agent_id": text(), "queues": array(text(), "the queues logged into (none after logout)")}),
    "AgentPause": obj({"agent_id": text(), "paused": boolean(), "reason": text()}, optional=("reason",)),
    "Target": obj({"id": text("110, 119, 120, 122, 12122 or a remote seat's id"), "name": text(),
                   "kind": choice(("emergency", "seat"))}, "A one-key transfer target"),
    "Guidance": obj({"unit": text(), "numbers": text("the unit's numbers, comma-separated"),
                     "guidance": text("what to tell the caller")}, "A line outside the integration (暂不纳入)"),
    "LiveCall": _LIVE_CALL,
    "AmiActions": obj({"sent": array(_AMI_ACTION, "the AMI actions sent, in order"),
                       "room": text("the ConfBridge room of a three-way call")}, optional=("room",)),
    "Answered": obj({"answered": text("the Linkedid answered")}),
    "CallRecord": obj(_CALL_RECORD, "A finished call's record"),
    "CallRecordDetail": obj({**_CALL_RECORD, "timeline": array({"oneOf": [ref(name) for name in _TIMELINE]},
                                                               "what happened, in order")},
                            "A call record with its timeline"),
    **_TIMELINE,
    "Decision": obj({
        "number": text(), "unit": nullable(text()), "unit_id": nullable(text()), "treatment": _TREATMENT,
        "action": text("what the dialplan does: queue, notice_then_queue, parallel_ring, not_routed, guidance, "
                       "retired_notice"),
        "prompt": nullable(text("the prompt played first")), "targets": array(text(), "queue:… or dial strings"),
        "ring_timeout": nullable(integer("seconds of parallel ringing")), "note": text(), "at": time(
            "the moment decided for, in the trunk map's zone")}, "What the router decides for a call to a number"),
    "Reloaded": obj({"reloaded": text("what was loaded")}),
    "WebhookMessage": obj({
        "id": integer(minimum=1), "state": choice(WEBHOOK_STATES), "unit": text(), "event": text(),
        "idempotency_key": text(), "destination": text("the URL without its user, password or query"),
        "created_at": time(), "attempts": integer(minimum=0),
        "next_attempt_at": nullable(time("when it is tried next (pending only)")),
        "last_error": text(), "delivered_at": nullable(time()), "dead_at": nullable(time())},
        "A webhook message to a unit, in the outbox"),
    "Case": obj(_CASE, "A case (工单)"),
    "CaseEvent": obj({
        "at": time(), "actor": text("a user id, a unit id or cti"), "role": text("agent, unit, supervisor, system"),
        "action": text(), "from": text("the state before (empty on create)"), "to": text("the state after"),
        "details": {"type": "object", "description": "what the action took or decided"}},
        "A step of a case's timeline"),
    "CaseDetail": obj({**_CASE, "events": array(ref("CaseEvent")),
                       "calls": array(text(), "the Linkedids of the case's calls")}, "A case with its timeline"),
    "CaseCall": obj({"case": integer(), "linkedid": text()}),
    "MissedCall": obj({
        "linkedid": text(), "caller_number": text(), "caller_name": text(), "dialled_number": text(), "at": time(),
        "waited": nullable(number("seconds the caller waited")),
        "state": choice(("open", "called_back", "unreachable")), "case_id": nullable(integer())},
        "A call nobody answered, to be called back"),
    "Tasks": obj({"missed_calls": array(ref("MissedCall")),
                  "callbacks": array(ref("Case"), "callbacks left to a person"),
                  "requests": array(ref("Case"), "cases that came by SMS or the web and no person has taken yet, "
                                                 "the longest waiting first")}),
    "Unit": obj({"id": text(), "name": text()}, "A handling unit of the dispatch catalogue"),
    "StatsRow": _stats_row(),
    "CallStatsRow": _call_stats_row(),
    "SignedOut": obj({"signed_out": {"type": "boolean", "const": True}}),
    "OpenApiDocument": {"type": "object", "description": "This document"},
}


# -- the WebSocket /api/ws ------------------------------------------------------------------------

ALERT_STATES = ("raised", "cleared")
ALERT_SEVERITIES = ("info", "warning", "critical")

def _pop(kind: str, description: str, fields: dict[str, Schema]) -> Schema:
    return obj({"type": const(kind), "linkedid": text("the call it is about"), **fields}, description)


_CALL_SUMMARY = obj({
    "linkedid": text(), "arrived_at": time(), "dialled_number": text(), "unit": text(), "treatment": _TREATMENT,
    "answered_by": text("who answered: the queue member's name, else the device"), "answered": boolean(),
    "recorded": boolean("a recording exists (GET /api/calls/{linkedid}/recording)"),
    "transfers": array(obj({"kind": text(), "target": text()}))}, "An earlier call of the caller")
_CASE_SUMMARY = obj({
    "id": integer(), "created_at": time(), "category": _CASE["category"],
    "category_name": text("the category in Chinese"), "state": choice(STATES), "unit": text(),
    "content": text("the first 80 characters"), "due_at": nullable(time()), "satisfaction": _CASE["satisfaction"]},
    "An earlier case of the caller")

_EPOCH = "seconds since the epoch (for the board's timers)"
_BOARD_CALL: dict[str, Schema] = {
    "linkedid": text(), "caller": text("the caller's number masked (139****5678): a wall screen is public"),
    "dialled_number": text(), "unit": text("the unit owning the number dialled"), "unit_id": text(),
    "arrived_at": number(_EPOCH), "answered_at": nullable(number(_EPOCH))}
_BOARD: dict[str, Schema] = {
    "now": number("the service's clock, seconds since the epoch: the board's timers count from it"),
    "agents": array(obj({**_AGENT_STATUS["properties"], "call": nullable(obj(_BOARD_CALL, "the call the agent "
                                                                                          "is on"))}),
                    "every agent of agents.yaml, their state (since: when it began) and call"),
    "seats": array(obj({"id": text(), "name": text(), "unit": text("its unit's id"), "device": text(),
                        "call": nullable(obj(_BOARD_CALL))}), "the remote seats (远端座席) and their calls"),
    "queue": obj({"waiting": integer("callers waiting for a person (in the queue or ringing phones)", minimum=0),
                  "longest_since": nullable(number("when the longest wait began (" + _EPOCH + ")")),
                  "calls": array(obj({**_BOARD_CALL, "since": number("when its wait began (" + _EPOCH + ")"),
                                      "queue": text()}), "the longest waits, longest first (at most 12)")}),
    "today": ref("CallStatsRow"),
    "window": obj({"minutes": integer("settings wallboard.alert_window"),
                   "offered": integer("calls of the window whose 15-second outcome is known", minimum=0),
                   "answered_in_15s": integer(minimum=0),
                   "undecided": integer("waiting, under 15 s yet", minimum=0),
                   "rate": nullable(number("the 15-second answer rate of the window"))},
                  "the calls that arrived in the last minutes (the alert's)"),
    "units": array(obj({"unit_id": text(), "name": text(), "waiting": integer(minimum=0),
                        "talking": integer(minimum=0)}), "the units whose numbers have live calls"),
    "pbx": choice(("up", "down"), "the AMI link"),
}

_BOARD_PARTS = ("queue", "today", "window", "units", "pbx")  # sent in an update only when they changed
_SEQ = ("the wallboard's sequence number: each wallboard_update has the next one; a snapshot has the last "
        "update's it already shows (0: none yet)")

WEBSOCKET_MESSAGES: dict[str, Schema] = {
    "WsAuth": obj({"type": const("auth"), "token": text("a bearer token (POST /api/session, cti token)")},
                  "The client's first message, within 5 s (browsers cannot set an Authorization header)"),
    "WsHello": obj({"type": const("hello"), "user": ref("User"), "agent": nullable(ref("AgentStatus")),
                    "pbx": choice(("up", "down"), "the AMI link")}, "The first message after a valid auth"),
    "WsError": obj({"type": const("error"), "error": obj({"code": const("unauthorized"), "message": text()})},
                   "The first message held no valid token, or the sign-in ended (signed out, expired or revoked "
                   "token, disabled user): the socket is then closed with code 4401"),
    "WsRinging": _pop("ringing", "The pop: a call rings this agent's phone (or their remote seat's); the queue "
                      "rings again after each ring timeout, with the same linkedid",
                      {"device": text("the phone that rings"), "call": ref("LiveCall")}),
    "WsHistory": _pop("history", "The caller's earlier calls and cases, after the pop",
                      {"calls": array(_CALL_SUMMARY), "cases": array(_CASE_SUMMARY)}),
    "WsAnswered": _pop("answered", "This agent answered the call",
                       {"call": nullable(ref("LiveCall")), "queue_wait": nullable(number("seconds in the queue"))}),
    "WsCleared": _pop("cleared", "The call stopped ringing this agent without their answer",
                      {"outcome": text("cancel (answered elsewhere, or the caller hung up), noanswer, busy, "
                                       "chanunavail, gone (lost while the PBX link was down)…")}),
    "WsTransferred": _pop("transferred", "The citizen was handed over",
                          {"kind": text("blind, attended, redirect or conference"), "target": text()}),
    "WsTransferFailed": _pop("transfer_failed", "The citizen handed over reached nobody",
                             {"kind": text(), "target": text(),
                              "result": text("noanswer, busy, failed, congestion…")}),
    "WsRecording": _pop("recording", "The dialplan started recording the call", {"file": text()}),
    "WsEnded": _pop("ended", "The citizen's leg is gone", {
        "cause": nullable(integer("the Q.850 cause")), "cause_text": text("Asterisk's text of it"),
        "estimated": boolean("it ended while the PBX link was down")}),
    "WsAgent": obj({"type": const("agent"), "status": ref("AgentStatus")},
                   "An agent's state changed: to the agent's own desks, and to every supervisor's and admin's"),
    "WsLink": obj({"type": const("link"), "state": choice(("up", "down"))},
                  "The PBX link went down or came back: to every desk"),
    "WsAlert": obj({
        "type": const("alert"),
        "id": text("the alert's id: the same on its raising and its clearing"),
        "state": choice(ALERT_STATES, "raised: it begins (sent once); cleared: it is over"),
        "kind": text("what raised it: spike (a category in a place above its own baseline), burst (many callers "
                     "about the same thing in one place within an hour), repeat_caller (one caller again and "
                     "again), or another part's (the wallboard's service-level alerts)"),
        "severity": choice(ALERT_SEVERITIES),
        "title": text("for people (Chinese)"),
        "details": {"type": "object", "description": "what the kind measured: place, category, topic words, "
                                                     "counts, since when… (README: Hotspots and risk alerts)"},
        "at": time("when it was raised (or cleared)"),
    }, "A risk alert raised or cleared: to every supervisor's and admin's desk"),
    "WsWallboard": obj({
        "type": const("wallboard"), "seq": integer(_SEQ, minimum=0), **_BOARD,
        "alerts": array(ref("WsAlert"), "the alerts raised and not cleared yet"),
        "thresholds": obj({"answer_rate": number("settings wallboard.alert_answer_rate (a fraction)"),
                           "wait": number("settings wallboard.alert_wait (seconds)"),
                           "min_calls": integer("settings wallboard.alert_min_calls")})},
        "The wallboard whole: to a supervisor's or admin's socket right after hello (again after every "
        "reconnect); wallboard_update messages follow, numbered from seq + 1"),
    "WsWallboardUpdate": obj(
        {"type": const("wallboard_update"), "seq": integer(_SEQ, minimum=1), **_BOARD}, optional=_BOARD_PARTS,
        description="What changed on the wallboard since the update before (coalesced, at most every settings "
                    "wallboard.interval seconds): the agents and seats that changed (replace them by agent_id, "
                    "id; the others are as they were), and of queue, today, window, units and pbx only those "
                    "that changed, each whole (one absent is as it was). Apply an update only on the board of "
                    "seq - 1: one of another number (a message missed) means the board is stale, and the client "
                    "asks for it whole again by reconnecting (a new socket gets a wallboard snapshot). To "
                    "every supervisor's and admin's socket"),
}
_SERVER_MESSAGES = [name for name in WEBSOCKET_MESSAGES if name != "WsAuth"]
WEBSOCKET_MESSAGES["WsServerMessage"] = {"oneOf": [ref(name) for name in _SERVER_MESSAGES],
                                         "description": "Any message the service sends; its type tells which"}
COMPONENTS.update(WEBSOCKET_MESSAGES)

WEBSOCKET: Schema = {
    "description": "Screen-pops and state changes. Connect, send WsAuth first (within 5 s), then receive JSON text "
                   "messages, one per frame: hello first, then as things happen. A pop reaches only the agent "
                   "whose phone rings; agent messages reach the agent and every supervisor and admin; link "
                   "messages reach everyone; alert messages reach every supervisor and admin. A supervisor's or "
                   "admin's socket gets the wallboard whole after hello, then numbered wallboard_update messages "
                   "holding only what changed (a gap in the numbers: reconnect for the board whole). The "
                   "service pings every 20 s. A desk that does not read falls 1,000 messages behind and is "
                   "disconnected.",
    "client": ref("WsAuth"),
    "server": ref("WsServerMessage"),
    "messages": {m["properties"]["type"]["const"]: ref(name)
                 for name, m in WEBSOCKET_MESSAGES.items() if name != "WsServerMessage"},
    "close_codes": {"4401": "no valid token in the first message, or the sign-in no longer holds"},
}


# -- the units' webhooks ---------------------------------------------------------------------------

CASE_NOTICES = ("case.dispatch", "case.remind", "case.overdue", "case.escalate", "case.approve_extension",
                "case.reject_extension", "case.satisfaction")
COMPONENTS["CallEndedWebhook"] = obj({"event": const("call.ended"), "call": ref("CallRecord")},
                                     "A finished call, to its interconnected unit (对接联通)")
COMPONENTS["CaseNoticeWebhook"] = obj({
    "event": choice(CASE_NOTICES, "dispatch: a case sent to the unit; remind: its deadline nears; overdue: 催办; "
                    "escalate: 督办; approve_extension, reject_extension: the unit's request decided; "
                    "satisfaction: the caller was unsatisfied and the case comes back to the unit"),
    "case": ref("Case"),
    "at": time("when it happened"),
    "details": {"type": "object", "description": "what the step decided (the unit, the days, the new deadline…)"}},
    "A case notice, to the case's unit (its webhook in cases.yaml)")


def _header(name: str, description: str, required: bool = True) -> Schema:
    return {"name": name, "in": "header", "required": required, "schema": {"type": "string"},
            "description": description}


_DELIVERY = ("Sent by HTTP POST from the webhook outbox, at least once, oldest first, one request at a time per "
             "URL. A 2xx is delivered. No connection, no answer within webhooks.timeout, a 5xx, 408, 425 or 429 "
             "(its Retry-After honoured) keeps the unit's messages waiting, in order, with exponential backoff; "
             "any other answer makes this message step aside with a backoff of its own. A message undelivered "
             "after webhooks.give_up_after_days is dead (GET /api/admin/webhooks?state=dead). Messages are not "
             "signed: authenticate cti with credentials in the webhook URL (https://user:password@… is sent as "
             "HTTP Basic, or a token in the query), which cti never logs or lists.")
_KEY = _header("Idempotency-Key", "The message's key, the same on every attempt, as a structured-field string "
                                  "(quoted): \"call.ended:<linkedid>\", \"case.<action>:<case id>:<version>\", "
                                  "\"sms.receipt:<case number>\", \"sms.survey:<case number>:<version>\" or "
                                  "\"alert.<raised|cleared>:<alert id>:<day raised>\". A "
                                  "receiver answers 2xx to a key it has seen and drops the message.")
_JSON = _header("Content-Type", "application/json; charset=utf-8")
_WEBHOOK_ANSWERS = {"2XX": {"description": "Delivered"},
                    "default": {"description": "Not delivered: tried again later (see the description)"}}


def _webhook(summary: str, component: str, headers: list[Schema]) -> Schema:
    return {"post": {
        "summary": summary, "description": _DELIVERY, "operationId": component,
        "parameters": [_KEY, *headers, _JSON],
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref(component)}}},
        "responses": _WEBHOOK_ANSWERS}}

_ALERT_FIELDS = {k: v for k, v in WEBSOCKET_MESSAGES["WsAlert"]["properties"].items() if k != "type"}
COMPONENTS["AlertWebhook"] = obj({
    "event": choice(("alert.raised", "alert.cleared")),
    "alert": obj(_ALERT_FIELDS, "The alert, as the supervisors' desks get it (a caller's number masked)")},
    "A risk alert raised or cleared, to cases.yaml's alerts.webhook")


COMPONENTS["SmsSendWebhook"] = obj({
    "event": const("sms.send"),
    "kind": choice(("receipt", "survey"), "receipt: the acknowledgement of a case that came by SMS, with its "
                   "number; survey: the satisfaction question of an SMS case's callback (cases.yaml callback.sms: "
                   "survey), answered 1, 2 or 3 by SMS to the hotline's number"),
    "to": text("the citizen's number"), "from": text("the hotline's number (sms.number)"),
    "text": text("the SMS to send, in Chinese"), "reference": text("the case's number"),
    "key": text("the message's key, as in Idempotency-Key")},
    "An SMS for the gateway to send to a citizen")


WEBHOOKS: dict[str, Schema] = {
    "call.ended": _webhook("A call of an interconnected unit ended: its record", "CallEndedWebhook",
                           [_header("X-CTI-Linkedid", "the call's Linkedid")]),
    "case": _webhook("A case notice to the case's unit", "CaseNoticeWebhook",
                     [_header("X-CTI-Case", "the case's id"), _header("X-CTI-Event", "the event: case.dispatch…")]),
    "alert": _webhook("A risk alert raised or cleared (hotspots: spike, burst, repeat caller), to cases.yaml's "
                      "alerts.webhook", "AlertWebhook",
                      [_header("X-CTI-Alert", "the alert's id"),
                       _header("X-CTI-Event", "alert.raised or alert.cleared")]),
    "sms.send": _webhook("An SMS to a citizen, to the SMS gateway (sms.gateway): a case's receipt or an SMS "
                         "survey", "SmsSendWebhook",
                         [_header("X-CTI-Reference", "the case's number"), _header("X-CTI-Event", "sms.send")]),
}

# the answers of routes that are not JSON
BINARY = {"type": "string", "contentMediaType": "audio/wav", "description": "the WAV file"}
PLAIN_TEXT = {"type": "string"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BINARY = {"type": "string", "format": "binary"}
