"""A confidential caller (匿名, a case marked confidential) as a unit sees them: one way, for the API,
the cases and the units' webhooks. Pure."""

from __future__ import annotations

from typing import Any


def mask(number: str) -> str:
    """A confidential caller's number as a unit sees it: 139****5678."""
    return number[:3] + "*" * max(0, len(number) - 7) + number[-4:] if len(number) > 7 else "*" * len(number)


def without_caller(data: dict[str, Any], direction: str) -> dict[str, Any]:
    """A call record's (or one of its timeline events') JSON with the caller masked and unnamed; on a
    callback (outbound) the citizen is the number dialled."""
    hidden = dict(data)
    for name in ("caller_number", "dialled_number") if direction == "outbound" else ("caller_number",):
        if name in hidden:
            hidden[name] = mask(hidden[name])
    if "caller_name" in hidden:
        hidden["caller_name"] = ""
    return hidden
