"""YAML configuration files turned into frozen dataclasses, with every problem
reported by file, line and key path (``cti.yaml:4: ami.port: expected an
integer, got 'abc'``), all at once rather than one per run."""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

KeyPath = tuple[str | int, ...]

# An integer is one only when written the plain way: 12345, -5, 0.
_PLAIN_INT = re.compile(r"^-?(0|[1-9][0-9]*)$")
# How YAML writes a date (and a date and time), as PyYAML's timestamp resolver reads it.
_DATE_SHAPE = re.compile(r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:$|[Tt ])")


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


class _Loader(yaml.SafeLoader):
    """PyYAML's SafeLoader for the integrators' files, where a scalar stays what was written.

    YAML 1.1 reads an unquoted ``01234567`` as the octal 342391, ``0x1F``, ``1_000``
    and ``20:00`` (base 60: 1200) as numbers too, and ``+8613800000000`` loses its
    plus: an area-code number or an international one would be changed silently.
    Here an integer is an integer only when written the plain way (``12345``,
    ``-5``); any other scalar YAML 1.1 would turn into one is kept as the string
    written. Kept rather than refused: every field that holds a telephone number
    (numbers, seats, dial strings, caller IDs, agent ids) is text, and keeping
    the text is what the integrator meant, quoted or not; a field that wants an
    integer (a port, a timeout) then refuses ``'05038'`` by name instead of
    reading 2590. A plain integer in a text field (``numbers: [12315]``) reads
    back exactly as written, so it stays allowed.

    An impossible date (``2020-02-30``) is kept as the string written too, and
    the date field it is in says why it is not a date (:func:`not_a_date`)
    instead of PyYAML raising ValueError out of the whole file."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int | str:  # type: ignore[override]
        text = str(self.construct_scalar(node))
        return int(text) if _PLAIN_INT.match(text) else text

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:  # 2020-02-30, 2020-13-01: the date field reports it, with its line
            return str(self.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def not_a_date(value: Any) -> str | None:
    """Why a string written as a date is none (``'2020-02-30' is not a date: day is out of
    range for month``), or None when it does not look like a date at all."""
    match = _DATE_SHAPE.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    try:
        date(*(int(part) for part in match.groups()))
    except ValueError as exc:
        return f"{value!r} is not a date: {exc}"
    return None


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
        lines: dict[KeyPath, int] = {}
        twice: list[Problem] = []
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _index(node, (), lines, name, twice)
            # a key given twice is a broken file, as a syntax error is: PyYAML would keep the last silently
            data = loader.construct_document(node) if node is not None and not twice else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            reason = getattr(exc, "problem", None) or str(exc)
            raise ConfigError([Problem(name, line, "", f"not valid YAML: {reason}")]) from exc
        finally:
            loader.dispose()
        if twice:
            raise ConfigError(twice)
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
    close = near_miss(path[-1], known)
    hint = f" (did you mean '{close}'?)" if close else f"; known keys: {', '.join(known)}"
    return doc.problem(path, f"unknown key{hint}")


def near_miss(key: str | int, known: tuple[str, ...]) -> str | None:
    """The known key an unknown one is probably a typo of (``numbrs``: ``numbers``).

    Its absence is then that typo's doing: say so once, in the unknown key's message,
    and not again as the known key missing."""
    close = difflib.get_close_matches(str(key), known, n=1)
    return close[0] if close else None


def dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")  # C0 and DEL but tab and line feed


def _index(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], name: str, twice: list[Problem]) -> None:
    """Note the line of every key and item; a key given twice in one mapping goes to ``twice``."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # a "<<: *base" merge may override, as YAML means it to
            key = path + (key_node.value,)
            line = key_node.start_mark.line + 1
            if key_node.value in first:
                twice.append(Problem(name, line, dotted(key), f"given twice (first at line {first[key_node.value]})"))
                continue
            first[key_node.value] = line
            lines[key] = line
            _index(value_node, key, lines, name, twice)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (i,), lines, name, twice)
    elif isinstance(node, yaml.ScalarNode) and (bad := _CONTROL.search(node.value)):
        # a CR or NUL in a name or a dial string would reach an AMI header, a dialplan variable or a page
        twice.append(Problem(name, node.start_mark.line + 1, dotted(path),
                             f"holds the control character U+{ord(bad.group()):04X}; only tabs and line breaks"))


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
    misspelt: set[str] = set()
    for key, value in data.items():
        if key not in known:
            problems.append(unknown_key(doc, path + (key,), tuple(known)))
            misspelt.add(near_miss(key, tuple(known)) or "")
            ok = False
            continue
        converted, good = convert(hints[key], value, doc, path + (key,), problems)
        ok = ok and good
        values[key] = converted
    for name, f in known.items():
        if name in values or name in misspelt:  # a typo of it is reported already
            continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
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
        if (why := not_a_date(value)) is not None:
            problems.append(doc.problem(path, why))
            return None, False
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
