"""The routing decision for one call: number and moment in, decision out. Pure."""

from __future__ import annotations

from datetime import datetime

from cti.routing.model import (
    GUIDANCE,
    NOT_ROUTED,
    NOTICE_THEN_QUEUE,
    PARALLEL_RING,
    QUEUE,
    RETIRED_NOTICE,
    Decision,
    LegacyNumber,
    TrunkMap,
    Unit,
)


def decide(trunk_map: TrunkMap, number: str, at: datetime) -> Decision:
    """Route a call to ``number`` arriving at ``at`` (an aware datetime)."""
    queue_target = f"queue:{trunk_map.hotline.queue}"
    if number == trunk_map.hotline.number:
        return Decision(number, None, None, "hotline", QUEUE, None, (queue_target,),
                        note="the 12345 line itself: straight to the queue, no menu (GB/T 33358)")
    entry = trunk_map.numbers.get(number)
    if entry is None:
        return Decision(number, None, None, "unknown", QUEUE, None, (queue_target,),
                        note=f"{number} is not in the trunk map; sent to the 12345 queue so no call is lost")
    unit = trunk_map.unit(entry.unit)
    treatment = entry.treatment
    if treatment == "merged":
        return _merged(trunk_map, unit, entry, at, queue_target)
    if treatment in ("remote_seat", "interconnected"):
        prompt = entry.prompt or unit.prompt or trunk_map.prompts.parallel_ring or None
        return Decision(number, unit.name, unit.id, treatment, PARALLEL_RING, prompt,
                        (queue_target, *unit.seats), ring_timeout=trunk_map.ring_timeout)
    if treatment == "emergency":
        return Decision(number, unit.name, unit.id, treatment, NOT_ROUTED, None, (unit.dial,),
                        note="emergency lines are never routed into 12345")
    return Decision(number, unit.name, unit.id, treatment, GUIDANCE, entry.prompt or unit.prompt, (),
                    note=unit.guidance)


def _merged(trunk_map: TrunkMap, unit: Unit, entry: LegacyNumber, at: datetime, queue_target: str) -> Decision:
    window = entry.window
    moved = entry.prompt or unit.prompt or trunk_map.prompts.moved
    if window is None or not window.ended(at, trunk_map.zone):
        note = "" if window is None else f"transition window {window.start} to {window.end}"
        return Decision(entry.number, unit.name, unit.id, "merged", NOTICE_THEN_QUEUE, moved, (queue_target,),
                        note=note)
    note = f"transition window ended {window.end}"
    if entry.after_window == "notice_then_queue":
        return Decision(entry.number, unit.name, unit.id, "merged", NOTICE_THEN_QUEUE, moved, (queue_target,),
                        note=note)
    if entry.after_window == "queue":
        return Decision(entry.number, unit.name, unit.id, "merged", QUEUE, None, (queue_target,), note=note)
    return Decision(entry.number, unit.name, unit.id, "merged", RETIRED_NOTICE, trunk_map.prompts.retired, (),
                    note=note)


def guidance_list(trunk_map: TrunkMap) -> list[dict[str, str]]:
    """The lines outside the integration, for agents to guide callers (暂不纳入)."""
    return [{"unit": u.name, "numbers": ", ".join(n.number for n in u.numbers), "guidance": u.guidance}
            for u in trunk_map.by_treatment("excluded")]
