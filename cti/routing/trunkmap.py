"""Reading trunk_map.yaml: every problem reported with file, line and key."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cti.calls.channels import dial_string_problem
from cti.routing.model import AFTER_WINDOW, TREATMENTS, Hotline, LegacyNumber, Prompts, TrunkMap, Unit, Window
from cti.yamlconfig import ConfigError, KeyPath, Problem, YamlDoc, build, near_miss, not_a_date, unknown_key

# Numbers that stay separate whatever a map says (国办发〔2020〕53号: 110/119/120/122 and 12122).
EMERGENCY_NUMBERS = frozenset({"110", "119", "120", "122", "12122"})

_TOP_KEYS = ("timezone", "ring_timeout", "hotline", "prompts", "units")
_UNIT_KEYS = ("id", "name", "mode", "numbers", "window", "after_window", "seats", "dial", "guidance", "webhook",
              "prompt")
_NUMBER_KEYS = ("number", "window", "after_window", "prompt")
_WINDOW_KEYS = ("start", "end")
_NUMBER = re.compile(r"^\+?[0-9]{2,20}$")
_UNIT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def load_trunk_map(path: str | Path) -> TrunkMap:
    """Read and check a trunk map; raise ConfigError listing every problem."""
    doc = YamlDoc.load(path)
    trunk_map, problems = parse_trunk_map(doc)
    if problems or trunk_map is None:
        raise ConfigError(problems)
    return trunk_map


def parse_trunk_map(doc: YamlDoc) -> tuple[TrunkMap | None, list[Problem]]:
    reader = _Reader(doc)
    trunk_map = reader.read()
    return trunk_map, reader.problems


class _Reader:
    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self.number_owner: dict[str, KeyPath] = {}
        # keys absent because of a typo already reported (units[0].numbers for numbrs): not "missing" as well
        self.misspelt: set[KeyPath] = set()

    def fail(self, path: KeyPath, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def mapping(self, value: Any, path: KeyPath, keys: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        for key in value:
            if key not in keys:
                self.problems.append(unknown_key(self.doc, path + (key,), keys))
                meant = near_miss(key, keys)
                if meant is not None and meant not in value:
                    self.misspelt.add(path + (meant,))
        return value

    def absent(self, path: KeyPath) -> bool:
        """Whether the key at ``path`` is missing for a reason not reported yet (not a typo of it)."""
        return path not in self.misspelt

    def text(self, value: Any, path: KeyPath, required: bool = False) -> str:
        if value is None:
            if required and self.absent(path):
                self.fail(path, "missing")
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.fail(path, f"expected text, got {value!r}")
            return ""
        return str(value)

    def read(self) -> TrunkMap | None:
        top = self.mapping(self.doc.data if self.doc.data is not None else {}, (), _TOP_KEYS)
        timezone = self.text(top.get("timezone", "Asia/Shanghai"), ("timezone",))
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(("timezone",), f"unknown time zone {timezone!r}")
        ring_timeout = top.get("ring_timeout", 30)
        if isinstance(ring_timeout, bool) or not isinstance(ring_timeout, int) or ring_timeout <= 0:
            self.fail(("ring_timeout",), f"expected a positive number of seconds, got {ring_timeout!r}")
            ring_timeout = 30
        hotline = build(Hotline, top.get("hotline"), self.doc, ("hotline",), self.problems) or Hotline()
        prompts = build(Prompts, top.get("prompts"), self.doc, ("prompts",), self.problems) or Prompts()
        units_data = top.get("units")
        if not isinstance(units_data, list) or not units_data:
            if units_data is not None or self.absent(("units",)):
                self.fail(("units",), "expected a list of units")
            units_data = []
        units = [u for i, data in enumerate(units_data) if (u := self.unit(data, ("units", i))) is not None]
        if hotline.number in self.number_owner:
            self.fail(self.number_owner[hotline.number], f"{hotline.number} is the hotline itself, not a legacy number")
        seen_ids: dict[str, int] = {}
        for i, unit in enumerate(units):
            if unit.id in seen_ids:
                self.fail(("units", i, "id"), f"duplicate unit id {unit.id!r} (also units[{seen_ids[unit.id]}])")
            seen_ids.setdefault(unit.id, i)
        if self.problems:
            return None
        return TrunkMap(hotline=hotline, units=tuple(units), timezone=timezone, ring_timeout=ring_timeout,
                        prompts=prompts, source=self.doc.name)

    def unit(self, data: Any, path: KeyPath) -> Unit | None:
        before = len(self.problems)
        unit = self.mapping(data, path, _UNIT_KEYS)
        unit_id = self.text(unit.get("id"), path + ("id",), required=True)
        if unit_id and not _UNIT_ID.match(unit_id):
            self.fail(path + ("id",), f"{unit_id!r}: use lowercase letters, digits, '-' and '_'")
        name = self.text(unit.get("name"), path + ("name",), required=True)
        mode = self.text(unit.get("mode"), path + ("mode",), required=True)
        if mode and mode not in TREATMENTS:
            close = difflib.get_close_matches(mode, TREATMENTS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.fail(path + ("mode",), f"unknown mode {mode!r}{hint}; one of {', '.join(TREATMENTS)}")
        known_mode = mode if mode in TREATMENTS else ""
        # What a mode requires (seats, dial, guidance, a window) follows from the mode: when the mode is unknown,
        # or wrong for its numbers (110 mapped as merged), the mode is the one mistake and is reported once.
        rules = "" if _misfiled(unit.get("numbers"), known_mode) else known_mode
        window = self.window(unit.get("window"), path + ("window",), rules)
        after = self.after_window(unit.get("after_window", "retired_notice"), path + ("after_window",))
        prompt = self.text(unit.get("prompt"), path + ("prompt",))
        numbers = self.numbers(unit.get("numbers"), path + ("numbers",), unit_id, known_mode, window, after)
        seats = self.seats(unit.get("seats"), path + ("seats",), rules)
        dial = self.text(unit.get("dial"), path + ("dial",))
        guidance = self.text(unit.get("guidance"), path + ("guidance",))
        webhook = self.text(unit.get("webhook"), path + ("webhook",))
        if rules == "emergency" and not dial and self.absent(path + ("dial",)):
            self.fail(path + ("dial",) if "dial" in unit else path,
                      "an emergency line needs the trunk dial string its transfers use (dial:)")
        if rules and rules != "emergency" and dial:
            self.fail(path + ("dial",), "only emergency lines have a dial string; remote seats use seats:")
        elif dial and (problem := dial_string_problem(dial)):
            self.fail(path + ("dial",), problem)
        if rules == "excluded":
            if not guidance and self.absent(path + ("guidance",)):
                self.fail(path, "an excluded line needs guidance: what agents tell callers")
            if not prompt and any(not n.prompt for n in numbers) and self.absent(path + ("prompt",)):
                self.fail(path, "an excluded line needs a prompt naming the number to call (prompt:)")
        if webhook and rules and rules != "interconnected":
            self.fail(path + ("webhook",), "only interconnected units receive call records by webhook")
        if webhook and not webhook.startswith(("http://", "https://")):
            self.fail(path + ("webhook",), f"expected an http(s) URL, got {webhook!r}")
        if len(self.problems) > before:
            return None
        return Unit(id=unit_id, name=name, treatment=mode, numbers=tuple(numbers), seats=tuple(seats), dial=dial,
                    guidance=guidance, webhook=webhook, prompt=prompt)

    def numbers(self, data: Any, path: KeyPath, unit_id: str, mode: str, window: Window | None,
                after: str) -> list[LegacyNumber]:
        if not isinstance(data, list) or not data:
            if data is not None or self.absent(path):
                self.fail(path, "expected a list of numbers")
            return []
        out = []
        for i, item in enumerate(data):
            where = path + (i,)
            own_window, own_after, prompt = window, after, ""
            if isinstance(item, Mapping):
                item = self.mapping(item, where, _NUMBER_KEYS)
                number = self.text(item.get("number"), where + ("number",), required=True)
                if "window" in item:
                    own_window = self.window(item["window"], where + ("window",), mode)
                if "after_window" in item:
                    own_after = self.after_window(item["after_window"], where + ("after_window",))
                prompt = self.text(item.get("prompt"), where + ("prompt",))
            else:
                number = self.text(item, where, required=True)
            if not number:
                continue
            if not _NUMBER.match(number):
                self.fail(where, f"{number!r} is not a telephone number")
                continue
            if number in EMERGENCY_NUMBERS and mode not in ("emergency", ""):
                self.fail(where, f"{number} is an emergency number: it stays separate (mode: emergency) and is "
                                 f"never {'retired' if mode == 'merged' else 'routed into 12345'}")
            if mode == "emergency" and number not in EMERGENCY_NUMBERS:
                self.fail(where, f"{number} is not an emergency number (110, 119, 120, 122, 12122)")
            if number in self.number_owner:
                first = self.doc.line(self.number_owner[number])
                self.fail(where, f"duplicate number {number} (already mapped at line {first})")
                continue
            self.number_owner[number] = where
            out.append(LegacyNumber(number=number, unit=unit_id, treatment=mode, window=own_window,
                                    after_window=own_after, prompt=prompt))
        return out

    def window(self, data: Any, path: KeyPath, mode: str) -> Window | None:
        if data is None:
            return None
        if mode and mode != "merged":
            self.fail(path, f"only merged numbers have a transition window, not {mode}")
            return None
        window = self.mapping(data, path, _WINDOW_KEYS)
        start = self.date(window.get("start"), path + ("start",))
        end = self.date(window.get("end"), path + ("end",))
        if start is None or end is None:
            return None
        if end < start:
            self.fail(path + ("end",), f"the window ends ({end}) before it starts ({start})")
            return None
        return Window(start, end)

    def date(self, value: Any, path: KeyPath) -> date | None:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if value is None:
            if self.absent(path):
                self.fail(path, "missing (YYYY-MM-DD)")
            return None
        why = not_a_date(value)  # 2020-02-30: kept as written by the loader, named here
        self.fail(path, why or f"expected a date YYYY-MM-DD, got {value!r}")
        return None

    def after_window(self, value: Any, path: KeyPath) -> str:
        text = self.text(value, path)
        if text not in AFTER_WINDOW:
            self.fail(path, f"unknown after_window {text!r}; one of {', '.join(AFTER_WINDOW)}")
        return text

    def seats(self, data: Any, path: KeyPath, mode: str) -> list[str]:
        if mode in ("remote_seat", "interconnected"):
            if not data:
                if data is not None or self.absent(path):
                    self.fail(path if data is not None else path[:-1],
                              f"a {mode} unit needs the dial string of at least one seat (seats:)")
                return []
        elif data and mode:
            self.fail(path, f"a {mode} unit has no seats")
            return []
        if data is None:
            return []
        if not isinstance(data, list):
            self.fail(path, "expected a list of dial strings")
            return []
        seats = []
        for i, seat in enumerate(data):
            text = self.text(seat, path + (i,), required=True)
            problem = dial_string_problem(text) if text else None
            if problem:
                self.fail(path + (i,), problem)
            elif text:
                seats.append(text)
        return seats


def _misfiled(numbers: Any, mode: str) -> bool:
    """Whether a unit that is not an emergency line lists an emergency number (that number says so)."""
    if mode in ("emergency", "") or not isinstance(numbers, list):
        return False
    written = (item.get("number") if isinstance(item, Mapping) else item for item in numbers)
    return any(str(n) in EMERGENCY_NUMBERS for n in written if isinstance(n, str | int) and not isinstance(n, bool))


__all__ = ["EMERGENCY_NUMBERS", "ConfigError", "load_trunk_map", "parse_trunk_map"]
