"""A route table that every API route must go through: each route names the
roles allowed to call it (or says it is public), its body and query fields,
and the same table produces the OpenAPI document. A route cannot forget its
role check, and the document cannot drift from the code."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cti.auth import ROLES
from cti.calls.channels import DIALABLE, NUMBER_LIMIT

ANYONE = ROLES  # every signed-in role
PUBLIC: tuple[str, ...] = ()
MAX_LIMIT = 500  # rows a list answers at most
MAX_OFFSET = 1_000_000  # rows a list skips at most


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


def paging(default: int) -> dict[str, Field]:
    """The ``limit`` and ``offset`` query fields of a list route."""
    return {"limit": Field(int, min=1, max=MAX_LIMIT, description=f"how many (default {default})"),
            "offset": Field(int, min=0, max=MAX_OFFSET, description="how many to skip (default 0)")}


def number_field(description: str = "", *, required: bool = False) -> Field:
    """A telephone number: what cti may dial or put into an AMI header."""
    return Field(required=required, max_length=NUMBER_LIMIT, pattern=DIALABLE.pattern,
                 pattern_hint="a telephone number: digits, optionally a leading +", description=description)


Handler = Callable[["Call"], Awaitable[Any]]


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
            produces: str = "application/json") -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.table.append(Route(method, path, handler, roles, summary, body or {}, query or {}, produces))
            return handler
        return register

    def openapi(self, title: str, version: str) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        for route in self.table:
            operation: dict[str, Any] = {
                "operationId": route.handler.__name__, "summary": route.summary,
                "x-roles": list(route.roles) or "public",
                "responses": {"200": {"description": "OK", "content": {route.produces: {}}},
                              "default": {"description": "An error",
                                          "content": {"application/json": {
                                              "schema": {"$ref": "#/components/schemas/Error"}}}}},
            }
            if route.roles:
                operation["security"] = [{"bearer": []}]
            parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                          for name in _path_names(route.path)]
            parameters += [{"name": name, "in": "query", "required": f.required, "description": f.description,
                            "schema": _schema(f)} for name, f in route.query.items()]
            if parameters:
                operation["parameters"] = parameters
            if route.body:
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {n: _schema(f) for n, f in route.body.items()},
                    "required": [n for n, f in route.body.items() if f.required]}}}}
            paths.setdefault(route.path, {})[route.method.lower()] = operation
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                   "details": {"type": "object"}}}}}},
            },
        }


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
    if spec.pattern is not None:
        schema["pattern"] = f"^{spec.pattern}$"
    if spec.description:
        schema["description"] = spec.description
    return schema


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
