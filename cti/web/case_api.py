"""The case routes of the API: open, list, act on cases (工单), the agents' tasks,
missed calls, the dispatch catalogue and statistics.

Who acts as what in the workflow table (cti.cases.model): an agent as "agent",
a supervisor or admin as "supervisor", an integrator bound to a unit (``cti user
add … --role integrator --unit ID``) as that "unit", on its own cases only; an
integrator bound to no unit reads. A unit never sees a confidential caller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date
from typing import Any

from aiohttp import web

from cti.cases.channels import CHANNELS
from cti.cases.model import CATEGORIES, MOVES, STATES, Case, MissedCall, workflow_role
from cti.cases.service import case_json, event_json
from cti.cases.stats import GROUPS, NAMES, period
from cti.stats import export
from cti.stats.calls import call_statistics
from cti.stats.rows import CALL_GROUPS, CALL_NAMES
from cti.web.api import LINKEDID_PARAM, NO_UNIT, ctx, routes, unit_view
from cti.web.routes import ANYONE, DAYS_HINT, FIRST_DAY, LAST_DAY, ApiError, Call, Field, number_field, paging
from cti.web.schemas import BINARY, PLAIN_TEXT, XLSX, array, ref

READERS = ("agent", "supervisor", "admin", "integrator")
# the bounds of the case fields: within their columns (cti.store.models), the long texts within reason
CONTENT, NAME, PLACE, UNIT, LINKEDID, REASON, NOTE = 4000, 128, 256, 64, 64, 200, 1000
DAY = 10  # YYYY-MM-DD
CASE_ID = 2**31 - 1  # an INTEGER key, on PostgreSQL too
CASE_PARAM = {"case_id": Field(int, min=1, max=CASE_ID, description="the case's id", example=1)}
NO_CASE = "no_such_case: no case of that id (for an integrator: none of its unit's)"
ACTING = ("forbidden: an integrator bound to no unit reads cases but does not act on them, or the role may not "
          "take this step")
REFUSED = ("illegal_transition: the case's state does not allow it; conflict: the case changed meanwhile "
           "(reload it); call_has_case: the call belongs to another case; extension_pending")


def case_role(call: Call) -> str:
    """The user's role in the case workflow."""
    role = workflow_role(call.user.role, call.user.unit_id)
    if role is None:
        raise ApiError(403, "forbidden", "this integrator acts for no unit: it may read cases, not act on them")
    return role


async def _case(call: Call) -> Case:
    try:
        case_id = int(call.path("case_id"))
    except ValueError:
        raise ApiError(404, "no_such_case", f"no case {call.path('case_id')!r}") from None
    if not 1 <= case_id <= CASE_ID:  # beyond the column PostgreSQL would refuse to look
        raise ApiError(404, "no_such_case", f"no case {case_id}")
    case = await ctx(call).cases.store.get(case_id)
    unit = unit_view(call)
    if case is None or (unit is not None and case.unit != unit):
        raise ApiError(404, "no_such_case", f"no case {case_id}")
    return case


def _json(call: Call, case: Case) -> dict[str, Any]:
    return case_json(case, ctx(call).zone, for_unit=unit_view(call) is not None)


# -- cases ----------------------------------------------------------------------------------

@routes.add("POST", "/api/cases", roles=("agent", "supervisor"),
            summary="Open a case (受理), for a call when linkedid is given; dispatched at once when unit is given",
            body={"category": Field(required=True, choices=tuple(CATEGORIES)),
                  "content": Field(required=True, max_length=CONTENT, line=False,
                                   description="what the caller asks or reports"),
                  "caller_number": number_field("default: the call's caller"),
                  "caller_name": Field(max_length=NAME), "location": Field(max_length=PLACE),
                  "unit": Field(max_length=UNIT, description="a unit of GET /api/units"),
                  "confidential": Field(bool, description="the caller asked not to be named to the unit"),
                  "linkedid": Field(max_length=LINKEDID, description="the call this case is about"),
                  "legacy_number": number_field("default: the number the call dialled")},
            response=ref("Case"),
            errors={403: ACTING, 409: REFUSED,
                    422: "unknown_unit: no such unit in the dispatch catalogue; invalid: caller_number is required "
                         "without a call"})
async def open_case(call: Call) -> dict[str, Any]:
    body, cases = call.body, ctx(call).cases
    linkedid = body.get("linkedid", "")
    caller, legacy = body.get("caller_number", ""), body.get("legacy_number", "")
    if linkedid:
        existing = await cases.store.case_of_call(linkedid)
        if existing is not None:  # cti opened a case when the call ended: the agent completes it
            case = await cases.update_details(existing, body, call.user.id, case_role(call))
            if body.get("unit"):
                case = await cases.act(case.id, "dispatch", {"unit": body["unit"]}, call.user.id, case_role(call))
            return _json(call, case)
        live = ctx(call).live(linkedid)
        if live is None:
            [record] = await ctx(call).database.calls.calls(linkedids=[linkedid], limit=1) or (None,)
            caller, legacy = caller or (record.caller_number if record else ""), legacy or (
                record.dialled_number if record else "")
        else:
            caller, legacy = caller or live.caller_number, legacy or live.dialled_number
    if not caller:
        raise ApiError(422, "invalid", "invalid body", {"fields": {"caller_number": "required without a call"}})
    case = await cases.open(caller_number=caller, caller_name=body.get("caller_name", ""),
                            category=body["category"], content=body["content"], location=body.get("location", ""),
                            confidential=body.get("confidential", False), unit=body.get("unit", ""),
                            linkedid=linkedid, legacy_number=legacy, actor=call.user.id, role=case_role(call))
    return _json(call, case)


@routes.add("GET", "/api/cases", roles=READERS, summary="Cases, newest first (an integrator of a unit: its own)",
            query={"state": Field(choices=STATES), "unit": Field(max_length=UNIT),
                   "caller": number_field(),
                   "escalated": Field(bool, description="only escalated (督办) cases, or only others"),
                   "channel": Field(choices=tuple(CHANNELS), description="only the cases that came by phone, sms "
                                                                         "or web"),
                   "reference": Field(max_length=16, description="the case of this number (工单号)"),
                   "from": Field(max_length=DAY, format="date", description="created on or after (YYYY-MM-DD)"),
                   "to": Field(max_length=DAY, format="date", description="created on or before (YYYY-MM-DD)")}
            | paging(100),
            response=array(ref("Case")), errors={403: NO_UNIT})
async def list_cases(call: Call) -> list[dict[str, Any]]:
    q = call.query
    start, end = period(*_days(call), ctx(call).zone)
    unit = unit_view(call) or q.get("unit")
    cases = await ctx(call).cases.store.find(
        states=[q["state"]] if "state" in q else None, unit=unit, caller_number=q.get("caller"),
        escalated=q.get("escalated"), created_from=start, created_to=end,
        channels=[q["channel"]] if "channel" in q else None, reference=q.get("reference"),
        limit=q.get("limit", 100), offset=q.get("offset", 0))
    if unit_view(call) is not None and "caller" in q:  # a masked case found by its number would confirm it
        cases = [c for c in cases if not c.confidential]
    return [_json(call, c) for c in cases]


@routes.add("GET", "/api/cases/{case_id}", roles=READERS, summary="A case with its timeline and calls",
            params=CASE_PARAM, response=ref("CaseDetail"), errors={404: NO_CASE, 403: NO_UNIT})
async def get_case(call: Call) -> dict[str, Any]:
    case = await _case(call)
    store = ctx(call).cases.store
    return _json(call, case) | {"events": [event_json(e, ctx(call).zone) for e in await store.events(case.id)],
                                "calls": await store.calls_of(case.id)}


@routes.add("PATCH", "/api/cases/{case_id}", roles=("agent", "supervisor"),
            summary="Complete an accepted case's details (category, content, location, confidentiality, the "
                    "caller's name)",
            body={"category": Field(choices=tuple(CATEGORIES)), "content": Field(max_length=CONTENT, line=False),
                  "location": Field(max_length=PLACE), "confidential": Field(bool),
                  "caller_name": Field(max_length=NAME)},
            params=CASE_PARAM, response=ref("Case"), errors={404: NO_CASE, 403: ACTING, 409: REFUSED})
async def edit_case(call: Call) -> dict[str, Any]:
    case = await _case(call)
    return _json(call, await ctx(call).cases.update_details(case.id, call.body, call.user.id, case_role(call)))


@routes.add("POST", "/api/cases/{case_id}/actions/{action}", roles=("agent", "supervisor", "admin", "integrator"),
            summary="Move a case through its workflow: " + ", ".join(
                a for a, m in MOVES.items() if m.roles != ("system",)),
            body={"unit": Field(max_length=UNIT), "reason": Field(max_length=REASON),
                  "days": Field(int, min=1, max=365, description="working days (cases.yaml max_extension)"),
                  "reply": Field(max_length=CONTENT, line=False),
                  "satisfaction": Field(choices=("1", "2", "3")), "into": Field(int, min=1, max=CASE_ID),
                  "note": Field(max_length=NOTE, line=False)},
            params=CASE_PARAM | {"action": Field(choices=tuple(a for a, m in MOVES.items() if m.roles != ("system",)),
                                                 description="the step", example="dispatch")},
            response=ref("Case"),
            errors={404: f"{NO_CASE}, or none to merge into", 403: f"{ACTING}; a step cti takes itself", 409: REFUSED,
                    422: "unknown_action; invalid: the step needs a field it was not given; unknown_unit; "
                         "extension_too_long"})
async def act(call: Call) -> dict[str, Any]:
    case = await _case(call)
    action = call.path("action")
    if action in MOVES and MOVES[action].roles == ("system",):
        raise ApiError(403, "forbidden", f"{action} is cti's own doing (deadline notices)")
    return _json(call, await ctx(call).cases.act(case.id, action, call.body, call.user.id, case_role(call)))


@routes.add("POST", "/api/cases/{case_id}/calls", roles=("agent", "supervisor"),
            summary="Join a call to a case (the caller calls again about it)",
            body={"linkedid": Field(required=True, max_length=LINKEDID)},
            params=CASE_PARAM, response=ref("CaseCall"),
            errors={404: NO_CASE, 409: "call_has_case: the call belongs to another case"})
async def link_call(call: Call) -> dict[str, Any]:
    case = await ctx(call).cases.link_call((await _case(call)).id, call.body["linkedid"])
    return {"case": case.id, "linkedid": call.body["linkedid"]}


# -- the agents' work ------------------------------------------------------------------------------

def _missed_json(call: Call, missed: MissedCall) -> dict[str, Any]:
    zone = ctx(call).zone
    return {"linkedid": missed.linkedid, "caller_number": missed.caller_number, "caller_name": missed.caller_name,
            "dialled_number": missed.dialled_number, "at": missed.at.astimezone(zone).isoformat(),
            "waited": missed.waited, "state": missed.state, "case_id": missed.case_id}


@routes.add("GET", "/api/tasks", roles=("agent", "supervisor"),
            summary="The agents' tasks: missed calls to call back, callbacks left to a person, SMS and web requests "
                    "nobody has taken yet (认领: POST …/actions/take)",
            response=ref("Tasks"))
async def tasks(call: Call) -> dict[str, Any]:
    work = await ctx(call).cases.tasks()
    return {"missed_calls": [_missed_json(call, m) for m in work["missed_calls"]],
            "callbacks": [_json(call, c) for c in work["callbacks"]],
            "requests": [_json(call, c) for c in work["requests"]]}


@routes.add("POST", "/api/missed/{linkedid}", roles=("agent", "supervisor"),
            summary="A missed call was called back (or the caller could not be reached)",
            body={"state": Field(required=True, choices=("called_back", "unreachable")),
                  "case_id": Field(int, min=1, max=CASE_ID)},
            params={"linkedid": LINKEDID_PARAM}, response=ref("MissedCall"),
            errors={404: "no_such_call: no missed call of that Linkedid"})
async def resolve_missed(call: Call) -> dict[str, Any]:
    missed = await ctx(call).cases.resolve_missed(call.path("linkedid"), call.body["state"], call.user.id,
                                                 call.body.get("case_id"))
    return _missed_json(call, missed)


@routes.add("GET", "/api/units", roles=ANYONE, summary="The dispatch catalogue: the units cases go to",
            response=array(ref("Unit")))
async def units(call: Call) -> list[dict[str, str]]:
    catalogue = ctx(call).configuration().catalogue
    return [{"id": u.id, "name": u.name} for u in sorted(catalogue.units.values(), key=lambda u: u.id)]


# -- statistics -------------------------------------------------------------------------------------

STATS_FORMAT = Field(choices=("json", "csv", "xlsx"), description="json (default), csv (UTF-8 with a byte-order "
                     "mark, for Excel) or xlsx")
STATS_DAYS = {"from": Field(max_length=DAY, format="date", description="YYYY-MM-DD"),
              "to": Field(max_length=DAY, format="date", description="YYYY-MM-DD (inclusive)")}


@routes.add("GET", "/api/stats", roles=("supervisor", "admin", "integrator"),
            summary="Case statistics per unit, category, legacy number, day or month of the cases opened from a day "
                    "to a day (CSV or XLSX with format); an integrator: its unit's",
            query={"by": Field(required=True, choices=GROUPS), **STATS_DAYS, "format": STATS_FORMAT},
            response=array(ref("StatsRow")), also={"text/csv": PLAIN_TEXT, XLSX: BINARY}, errors={403: NO_UNIT})
async def stats(call: Call) -> Any:
    rows = await ctx(call).cases.statistics(call.query["by"], *_days(call), unit=unit_view(call))
    return _table(call, f"cases-{call.query['by']}", rows, NAMES)


@routes.add("GET", "/api/stats/calls", roles=("supervisor", "admin", "integrator"),
            summary="Call service levels (15-second answer rate, answer and abandon rates, waits, talk) of the calls "
                    "that arrived from a day to a day, by hour of the day, day, queue, unit or agent, or in total "
                    "(CSV or XLSX with format); an integrator: the calls to its unit's numbers",
            query={"by": Field(choices=CALL_GROUPS, description="default total"), **STATS_DAYS,
                   "format": STATS_FORMAT},
            response=array(ref("CallStatsRow")), also={"text/csv": PLAIN_TEXT, XLSX: BINARY}, errors={403: NO_UNIT})
async def call_stats(call: Call) -> Any:
    by = call.query.get("by") or "total"
    unit = unit_view(call)
    zone = ctx(call).cases.zone
    since, until = period(*_days(call), zone)
    rows = await call_statistics(ctx(call).database.engine, by, zone, since, until, unit=unit)
    return _table(call, f"calls-{by}", rows, CALL_NAMES)


def _table(call: Call, name: str, rows: Sequence[Any], names: Sequence[str]) -> Any:
    """Statistics rows as JSON, or as a CSV or XLSX file to save."""
    form = call.query.get("format") or "json"
    if form == "json":
        return [dataclasses.asdict(row) for row in rows]
    by = call.query.get("by") or "total"
    headers = {"Content-Disposition": f'attachment; filename="cti-stats-{name}.{form}"'}
    if form == "csv":
        return web.Response(text=export.to_csv(names, rows, by), content_type="text/csv", charset="utf-8",
                            headers=headers)
    return web.Response(body=export.to_xlsx(names, rows, by, name), content_type=XLSX, headers=headers)


def _days(call: Call) -> tuple[date | None, date | None]:
    """The query's from and to days."""
    days = []
    for name in ("from", "to"):
        text = call.query.get(name)
        try:
            day = date.fromisoformat(text) if text else None
        except ValueError:
            raise ApiError(422, "invalid", "invalid query", {"fields": {name: "expected YYYY-MM-DD"}}) from None
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:  # its first or last moment is no datetime in UTC
            raise ApiError(422, "invalid", "invalid query", {"fields": {name: DAYS_HINT}})
        days.append(day)
    return days[0], days[1]
