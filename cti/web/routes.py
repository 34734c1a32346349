"""A route table that every API route must go through: each route names the
roles allowed to call it (or says it is public), its body and query fields,
what it answers (a JSON Schema of cti.web.schemas) and the errors it can give,
and the same table produces the OpenAPI document. A route cannot forget its
role check, and the document cannot drift from the code."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from aiohttp import web

from cti.auth import ROLES
from cti.calls.channels import DIALABLE, NUMBER_LIMIT
from cti.web import schemas
from cti.web.schemas import Schema

ANYONE = ROLES  # every signed-in role
PUBLIC: tuple[str, ...] = ()
MAX_LIMIT = 500  # rows a list answers at most
MAX_OFFSET = 1_000_000  # rows a list skips at most
# the days a query may name: any zone's offset (under a day) keeps them within Python's dates, in UTC too
FIRST_DAY, LAST_DAY = date(1, 1, 2), date(9999, 12, 30)
DAYS_HINT = f"a day from {FIRST_DAY} to {LAST_DAY}"


class ApiError(Exception):
    """An error answered as {"error": {"code", "message", "details"}}."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}  # added to the answer (Retry-After)


@dataclass(frozen=True, slots=True)
class Field:
    """One input field. Numbers take ``min``/``max``; text takes ``max_length`` (characters, within
    the database column it ends in) and is ``line`` (one line: no control character at all) unless
    told otherwise (long text: newlines and tabs, no other control character)."""

    type: type = str
    required: bool = False
    choices: tuple[str, ...] = ()
    description: str = ""
    min: int | float | None = None
    max: int | float | None = None
    max_length: int | None = None
    line: bool = True
    pattern: str | None = None  # the whole text must match (a dialable number: DIALABLE)
    pattern_hint: str = ""  # what the 422 says when it does not
    format: str | None = None  # JSON Schema's format of the text (date, date-time), for the OpenAPI document
    example: Any = None  # for the OpenAPI document


def paging(default: int) -> dict[str, Field]:
    """The ``limit`` and ``offset`` query fields of a list route."""
    return {"limit": Field(int, min=1, max=MAX_LIMIT, description=f"how many (default {default})"),
            "offset": Field(int, min=0, max=MAX_OFFSET, description="how many to skip (default 0)")}


def number_field(description: str = "", *, required: bool = False) -> Field:
    """A telephone number: what cti may dial or put into an AMI header."""
    return Field(required=required, max_length=NUMBER_LIMIT, pattern=DIALABLE.pattern,
                 pattern_hint="a telephone number: digits, optionally a leading +", description=description)


Handler = Callable[["Call"], Awaitable[Any]]
# a check of the raw request before its body is read as JSON (a signature over the bytes sent): raises ApiError
Guard = Callable[[web.Request], Awaitable[None]]

# errors that many routes can give, for ``errors=``
PBX_ERRORS = {409: "pbx_refused: Asterisk refused the action (details.action names it; the message is Asterisk's)",
              503: "pbx_unavailable: the PBX link is down", 504: "pbx_timeout: Asterisk did not answer in time"}


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    roles: tuple[str, ...]
    summary: str
    body: dict[str, Field] = field(default_factory=dict)
    query: dict[str, Field] = field(default_factory=dict)
    produces: str = "application/json"
    response: Schema | None = None  # the success answer's body, as JSON Schema (of produces)
    errors: dict[int, str] = field(default_factory=dict)  # status -> "code: when", beyond those the table implies
    params: dict[str, Field] = field(default_factory=dict)  # path parameters, for the document (handlers parse them)
    also: dict[str, Schema] = field(default_factory=dict)  # the answer in other media types (CSV)
    status: int = 200  # the success status (101 for the WebSocket)
    extensions: dict[str, Any] = field(default_factory=dict)  # x-… members of the operation
    guard: Guard | None = None  # checks the request before its body is read (its errors are in ``errors``)
    headers: dict[str, Field] = field(default_factory=dict)  # request headers the route reads, for the document

    def error_statuses(self) -> dict[int, str]:
        """Every error status the route can answer, and when: those the table implies (authentication,
        roles, body and query validation) and the route's own."""
        found: dict[int, list[str]] = {}
        if self.body:
            found.setdefault(400, []).append("bad_request: the body is not JSON")
        if self.roles:
            found.setdefault(401, []).append("unauthorized: no bearer token, or one unknown, expired or revoked")
            if set(self.roles) != set(ROLES):
                found.setdefault(403, []).append(f"forbidden: for {', '.join(self.roles)} only")
        texts = {n: f for n, f in self.params.items() if f.type is str}
        if self.body or self.query or texts:
            where = " and ".join(w for w, fields in (("path", texts), ("body", self.body), ("query", self.query))
                                 if fields)
            found.setdefault(422, []).append(f"invalid: the {where} has a field unknown, missing or wrong "
                                             "(details.fields names each, with what is wrong)")
        for status, when in self.errors.items():
            found.setdefault(status, []).append(when)
        return {status: "; ".join(found[status]) for status in sorted(found)}


@dataclass
class Call:
    """What a handler gets: the request, the signed-in user, and the validated input."""

    request: web.Request
    user: Any  # cti.store.users.User, or None on a public route
    body: dict[str, Any]
    query: dict[str, Any]

    def path(self, name: str) -> str:
        return self.request.match_info[name]


class Routes:
    def __init__(self) -> None:
        self.table: list[Route] = []

    def add(self, method: str, path: str, *, roles: tuple[str, ...], summary: str,
            body: dict[str, Field] | None = None, query: dict[str, Field] | None = None,
            produces: str = "application/json", response: Schema | None = None,
            errors: dict[int, str] | None = None, params: dict[str, Field] | None = None,
            also: dict[str, Schema] | None = None, status: int = 200,
            extensions: dict[str, Any] | None = None, guard: Guard | None = None,
            headers: dict[str, Field] | None = None) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.table.append(Route(method, path, handler, roles, summary, body or {}, query or {}, produces,
                                    response, errors or {}, params or {}, also or {}, status, extensions or {},
                                    guard, headers or {}))
            return handler
        return register

    def openapi(self, title: str, version: str) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        for route in self.table:
            paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version, "description": CONVENTIONS},
            "paths": paths,
            "webhooks": schemas.WEBHOOKS,
            "components": {
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                               "description": "POST /api/session (the desk), cti token "
                                                              "(integrators)"}},
                "schemas": schemas.COMPONENTS,
            },
        }


CONVENTIONS = """\
The desk, supervisors', admins' and integrators' API of cti, generated from its route table.

- Every operation's `x-roles` lists the roles that may call it (agent, supervisor, admin, integrator), with a bearer \
token; an empty list is a public operation, called without one. Any other role gets 403 `forbidden`.
- Every error, whatever the route and status, is `{"error": {"code", "message", "details"}}` \
(components/schemas/Error); invalid input is 422 `invalid` with `details.fields` naming each field.
- Every time is ISO 8601 with the offset of the service's zone (`GET /api/me` names it), except an agent's \
`since` (seconds since the epoch) and the times inside a case's `extension_request` and events' `details` (UTC).
- `GET /api/ws` is the screen-pop WebSocket: its messages are in the operation's `x-websocket` and \
components/schemas/Ws*. What cti sends to the units' systems is under `webhooks`.
"""


def _operation(route: Route) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "OK" if route.status == 200 else "Switching Protocols"}
    if route.status != 101:
        success["content"] = {route.produces: {"schema": route.response} if route.response is not None else {}}
        success["content"].update({media: {"schema": schema} for media, schema in route.also.items()})
    responses: dict[str, Any] = {str(route.status): success}
    for status, when in route.error_statuses().items():
        responses[str(status)] = {"description": when, "content": {"application/json": {
            "schema": schemas.ref("Error")}}}
        if "Retry-After" in when:
            responses[str(status)]["headers"] = {"Retry-After": {
                "description": "seconds to wait, when the answer says to try again later",
                "schema": {"type": "integer", "minimum": 0}}}
    operation: dict[str, Any] = {"operationId": route.handler.__name__, "summary": route.summary,
                                 "x-roles": list(route.roles), "responses": responses, **route.extensions}
    if route.roles:
        operation["security"] = [{"bearer": []}]
    parameters = []
    for name in _path_names(route.path):
        spec = route.params.get(name, Field())
        parameters.append(_parameter(name, "path", dataclasses.replace(spec, required=True)))
    parameters += [_parameter(name, "query", spec) for name, spec in route.query.items()]
    parameters += [_parameter(name, "header", spec) for name, spec in route.headers.items()]
    if parameters:
        operation["parameters"] = parameters
    if route.body:
        operation["requestBody"] = {
            "required": True, "description": "A JSON object; a field given as null or \"\" is left out",
            "content": {"application/json": {"schema": {
                "type": "object", "properties": {n: _schema(f) for n, f in route.body.items()},
                "required": [n for n, f in route.body.items() if f.required], "additionalProperties": False}}}}
    return operation


def _parameter(name: str, where: str, spec: Field) -> dict[str, Any]:
    schema = _schema(spec)
    parameter: dict[str, Any] = {"name": name, "in": where, "required": spec.required, "schema": schema}
    if spec.description:
        parameter["description"] = schema.pop("description")
    if spec.example is not None:
        parameter["example"] = spec.example
    return parameter


def validate(fields: dict[str, Field], data: Any, where: str) -> dict[str, Any]:
    """Check input against its fields; every problem named in one 422 answer."""
    if not isinstance(data, dict):
        raise ApiError(422, "invalid", f"the {where} must be a JSON object")
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in data:
        if name not in fields:
            problems[name] = "unknown field"
    for name, spec in fields.items():
        if name not in data or data[name] in (None, ""):
            if spec.required:
                problems[name] = "required"
            continue
        value = data[name]
        if isinstance(value, str) and not spec.line:
            value = value.replace("\r\n", "\n")  # a Windows line ending is a line ending, not a control character
        if spec.type is bool:
            if value in ("true", "false"):  # a query string's spelling
                value = value == "true"
            if not isinstance(value, bool):
                problems[name] = "expected true or false"
                continue
        try:
            if spec.type is not bool and isinstance(value, bool):  # JSON true is no number, nor text
                raise TypeError(value)
            if spec.type is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)  # 2.5 days is not 2
            value = spec.type(value) if spec.type is not str or isinstance(value, str) else _not_text(value)
        except (TypeError, ValueError, OverflowError):
            problems[name] = f"expected {spec.type.__name__}"
            continue
        problem = _out_of_bounds(spec, value)
        if problem:
            problems[name] = problem
            continue
        if spec.choices and value not in spec.choices:
            problems[name] = f"one of {', '.join(spec.choices)}"
            continue
        values[name] = value
    if problems:
        raise ApiError(422, "invalid", f"invalid {where}", {"fields": problems})
    return values


def check_path(fields: dict[str, Field], values: Mapping[str, str]) -> None:
    """The path's text parameters, as the route table bounds them: one line, not too long (a NUL in a
    Linkedid would reach PostgreSQL, which refuses it). Numbers and names are the handlers' to parse:
    one that is no number or no name is not found."""
    problems = {name: problem for name, spec in fields.items()
                if spec.type is str and name in values and (problem := _out_of_bounds(spec, values[name]))}
    if problems:
        raise ApiError(422, "invalid", "invalid path", {"fields": problems})


def _not_text(value: Any) -> str:
    raise TypeError(value)


def _out_of_bounds(spec: Field, value: Any) -> str:
    """What is wrong with a value of the right type, or "" when nothing is."""
    if isinstance(value, str):
        if spec.max_length is not None and len(value) > spec.max_length:
            return f"at most {spec.max_length} characters"
        allowed = "" if spec.line else "\n\t"
        if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
            return "one line, without control characters" if spec.line else \
                "no control characters but newlines and tabs"
        if any("\ud800" <= c <= "\udfff" for c in value):  # JSON's "\ud800" alone: no UTF-8 for the database
            return "not Unicode text: a lone surrogate"
        if spec.pattern is not None and re.fullmatch(spec.pattern, value) is None:
            return spec.pattern_hint or f"must match {spec.pattern}"
    elif isinstance(value, int | float):
        if value != value:  # NaN is below nothing and above nothing
            return "expected a number"
        if spec.min is not None and value < spec.min:
            return f"at least {spec.min}"
        if spec.max is not None and value > spec.max:
            return f"at most {spec.max}"
    return ""


def _schema(spec: Field) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": {str: "string", int: "integer", float: "number", bool: "boolean"}[spec.type]}
    if spec.choices:
        schema["enum"] = list(spec.choices)
    if spec.min is not None:
        schema["minimum"] = spec.min
    if spec.max is not None:
        schema["maximum"] = spec.max
    if spec.max_length is not None:
        schema["maxLength"] = spec.max_length
    if spec.required and spec.type is str and not spec.choices:
        schema["minLength"] = 1  # an empty one is missing
    if spec.pattern is not None:
        schema["pattern"] = f"^{spec.pattern}$"
    if spec.format is not None:
        schema["format"] = spec.format
    if spec.description:
        schema["description"] = spec.description
    return schema


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
