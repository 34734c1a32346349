"""YAML configuration files turned into frozen dataclasses, with every problem
reported by file, line and key path (``cti.yaml:4: ami.port: expected an
integer, got 'abc'``), all at once rather than one per run."""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in configuration files; ``str()`` lists them all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class YamlDoc:
    """A parsed YAML file that remembers the line of every key and item."""

    def __init__(self, name: str, data: Any, lines: dict[KeyPath, int]) -> None:
        self.name = name
        self.data = data
        self._lines = lines

    @classmethod
    def load(cls, path: Path | str) -> YamlDoc:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([Problem(str(path), None, "", f"cannot read: {exc.strerror}")]) from exc
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, name: str) -> YamlDoc:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            reason = getattr(exc, "problem", None) or str(exc)
            raise ConfigError([Problem(name, line, "", f"not valid YAML: {reason}")]) from exc
        lines: dict[KeyPath, int] = {}
        if node is not None:
            _index(node, (), lines)
        return cls(name, data, lines)

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest enclosing key."""
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get(())

    def problem(self, path: KeyPath, message: str) -> Problem:
        return Problem(self.name, self.line(path), dotted(path), message)


def unknown_key(doc: YamlDoc, path: KeyPath, known: tuple[str, ...]) -> Problem:
    """A typo must not fall back silently to a default: name it, and the likely intent."""
    close = difflib.get_close_matches(str(path[-1]), known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f"; known keys: {', '.join(known)}"
    return doc.problem(path, f"unknown key{hint}")


def dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _index(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = path + (key_node.value,)
            lines[key] = key_node.start_mark.line + 1
            _index(value_node, key, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (i,), lines)


def build(cls: type[Any], data: Any, doc: YamlDoc, path: KeyPath, problems: list[Problem]) -> Any:
    """Make a ``cls`` dataclass from a mapping, appending what is wrong to ``problems``.

    Unknown keys are errors (a typo must not silently fall back to a default);
    fields without a default are required. Returns None when the mapping is unusable."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problems.append(doc.problem(path, f"expected a mapping, got {_describe(data)}"))
        return None
    hints = get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    ok = True
    for key, value in data.items():
        if key not in known:
            problems.append(unknown_key(doc, path + (key,), tuple(known)))
            ok = False
            continue
        converted, good = convert(hints[key], value, doc, path + (key,), problems)
        ok = ok and good
        values[key] = converted
    for name, f in known.items():
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(doc.problem(path, f"missing required key '{name}'"))
            ok = False
    return cls(**values) if ok else None


def convert(hint: Any, value: Any, doc: YamlDoc, path: KeyPath, problems: list[Problem]) -> tuple[Any, bool]:
    """Check ``value`` against a type hint, converting YAML lists to tuples."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None, True
        hint = next(a for a in options if a is not type(None))
        origin = get_origin(hint)
    if origin is tuple:
        item_type = get_args(hint)[0]
        if isinstance(value, str | int | float):
            value = [value]
        if not isinstance(value, list):
            problems.append(doc.problem(path, f"expected a list, got {_describe(value)}"))
            return None, False
        items = [convert(item_type, v, doc, path + (i,), problems) for i, v in enumerate(value)]
        return tuple(v for v, _ in items), all(ok for _, ok in items)
    if dataclasses.is_dataclass(hint):
        built = build(hint, value, doc, path, problems)  # type: ignore[arg-type]
        return built, built is not None
    return _scalar(hint, value, doc, path, problems)


def _scalar(hint: Any, value: Any, doc: YamlDoc, path: KeyPath, problems: list[Problem]) -> tuple[Any, bool]:
    if hint is bool:
        if isinstance(value, bool):
            return value, True
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, True
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value), True
    elif hint is str:
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value), True  # numbers such as 12345 are strings here
    elif hint is date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value, True
    else:
        return value, True
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", date: "a date (YYYY-MM-DD)"}
    problems.append(doc.problem(path, f"expected {names[hint]}, got {_describe(value)}"))
    return None, False


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)
