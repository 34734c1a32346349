"""The public number ledger (号码台账) as JSON or CSV, for anyone: no sign-in, nothing private (cti.routing.ledger
has no field for what is). The page /ledger reads it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from aiohttp import web

from cti.routing.ledger import FIELDS, STATUSES, ledger, ledger_json
from cti.routing.model import TREATMENTS
from cti.stats import export
from cti.web import schemas
from cti.web.api import ctx, routes
from cti.web.routes import PUBLIC, ApiError, Call, Field
from cti.web.schemas import PLAIN_TEXT, array, choice, nullable, obj, ref, text

DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_ROW = obj({
    "number": text("the number as the public dials it"), "unit": text("the unit's name"),
    "mode": choice(TREATMENTS, "the trunk map's mode"), "mode_name": text("its 整合方式 (直接合并…)"),
    "window_start": nullable(text("the transition window's first day (merged numbers)", format="date")),
    "window_end": nullable(text("its last day, inclusive", format="date")),
    "status": choice(tuple(STATUSES), "on the day: transition (过渡期), retired (已停用), forwarded (已并入), "
                                      "parallel (双线并行), separate (独立运行: emergency), guidance (暂不纳入)"),
    "status_name": text("the status in Chinese"),
    "call_instead": text("the number to call: 12345, the one an excluded line's guidance names, or an emergency "
                         "number itself"),
    "guidance": text("what callers of an excluded line are told; empty otherwise")},
    "A number folded into 12345, or left out of it, as it stands on the day")
schemas.COMPONENTS.update({
    "LedgerRow": _ROW,
    "Ledger": obj({"at": text("the day, in the trunk map's zone", format="date"),
                   "hotline": text("the hotline's number"), "timezone": text("the trunk map's zone (IANA)"),
                   "numbers": array(ref("LedgerRow"), "in the trunk map's order")},
                  "The number ledger (号码台账)")})


@routes.add("GET", "/api/ledger", roles=PUBLIC,
            summary="The number ledger (号码台账): every number folded into 12345 or left out, its unit, mode, "
                    "transition window, status on a day and the number to call (public: no sign-in)",
            query={"at": Field(max_length=10, pattern=DAY, pattern_hint="a day YYYY-MM-DD", format="date",
                               description="the day, in the trunk map's zone (default today)"),
                   "format": Field(choices=("json", "csv"), description="json (default) or csv (UTF-8 with a "
                                   "byte-order mark, for Excel)")},
            response=ref("Ledger"), also={"text/csv": PLAIN_TEXT})
async def number_ledger(call: Call) -> Any:
    trunk_map = ctx(call).configuration().trunk_map
    day = _day(call.query.get("at")) or datetime.now(trunk_map.zone).date()
    if call.query.get("format") == "csv":
        csv = export.to_csv(FIELDS, ledger(trunk_map, day), FIELDS[0])
        return web.Response(text=csv, content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="ledger-{day}.csv"'})
    return ledger_json(trunk_map, day)


def _day(text: str | None) -> date | None:
    """``at``: a day that exists (the route table checked its shape)."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:  # 2026-02-30: day is out of range for month
        raise ApiError(422, "invalid", f"invalid query: at {text!r}: {exc}",
                       {"fields": {"at": f"not a day: {exc}"}}) from None
