"""The routes of the statistics page (/stats): the hotspots found now, the alerts in force, the category ×
district table. (Its trend lines read GET /api/stats?by=day and GET /api/stats/calls?by=day.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from cti.cases.stats import period
from cti.hotspots import queries
from cti.hotspots.detect import Detection
from cti.hotspots.service import HotspotService
from cti.web import schemas
from cti.web.api import NO_UNIT, ctx, routes, unit_view
from cti.web.case_api import STATS_DAYS, _days
from cti.web.routes import ApiError, Call
from cti.web.schemas import ALERT_SEVERITIES, array, choice, integer, obj, ref, text, time

HOTSPOTS = web.AppKey("hotspots", HotspotService)
NOT_RUNNING = {503: "unavailable: the hotspot detectors are not running"}

_HOTSPOT = obj({
    "id": text("the alert's id it raises (the same thing found again has the same id)"),
    "kind": choice(("spike", "burst", "repeat_caller")),
    "severity": choice(ALERT_SEVERITIES), "title": text("for people (Chinese)"),
    "details": {"type": "object", "description": "place, category, topic words, counts, since (README: Hotspots and "
                                                 "risk alerts)"},
    "since": time("when what it counts began")}, "Something the detectors find now")
_HEAT = obj({
    "categories": array(obj({"id": text(), "name": text("in Chinese")}), "the columns"),
    "rows": array(obj({"place": text("the district (区县) of the cases' locations, or 未注明区县"),
                       "total": integer(minimum=0),
                       "counts": {"type": "object", "additionalProperties": {"type": "integer"},
                                  "description": "cases per category id"}}), "most cases first")},
    "Cases by category and district")
COMPONENTS = {"Hotspot": _HOTSPOT, "Hotspots": obj({"at": time(), "hotspots": array(ref("Hotspot"))}),
              "HeatTable": _HEAT}
schemas.COMPONENTS.update(COMPONENTS)


def _service(call: Call) -> HotspotService:
    service = call.request.app.get(HOTSPOTS)
    if service is None:
        raise ApiError(503, "unavailable", "the hotspot detectors are not running")
    return service


def _hotspot(detection: Detection, service: HotspotService) -> dict[str, Any]:
    return {"id": detection.id, "kind": detection.kind, "severity": detection.severity, "title": detection.title,
            "details": detection.details, "since": detection.since.astimezone(service.zone).isoformat()}


@routes.add("GET", "/api/hotspots", roles=("supervisor", "admin", "integrator"),
            summary="What the hotspot detectors find now (spikes, bursts, repeat callers); an integrator: among its "
                    "unit's cases and calls", response=ref("Hotspots"), errors={403: NO_UNIT, **NOT_RUNNING})
async def hotspots(call: Call) -> dict[str, Any]:
    service = _service(call)
    now: datetime = service.clock()
    found = await service.detect(now, unit=unit_view(call))
    return {"at": now.astimezone(service.zone).isoformat(), "hotspots": [_hotspot(d, service) for d in found]}


@routes.add("GET", "/api/alerts", roles=("supervisor", "admin"),
            summary="The hotspot alerts raised and not cleared yet, newest first (as the WebSocket's alert message "
                    "raised them)", response=array(ref("WsAlert")), errors=NOT_RUNNING)
async def alerts(call: Call) -> list[dict[str, Any]]:
    return _service(call).current()


@routes.add("GET", "/api/stats/heat", roles=("supervisor", "admin", "integrator"),
            summary="Cases by category and district (区县, from their locations) of the cases opened from a day to a "
                    "day; an integrator: its unit's", query=STATS_DAYS, response=ref("HeatTable"),
            errors={403: NO_UNIT})
async def heat(call: Call) -> dict[str, Any]:
    unit = unit_view(call)
    since, until = period(*_days(call), ctx(call).cases.zone)
    return await queries.heat(ctx(call).database.engine, since, until, unit=unit)
