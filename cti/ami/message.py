"""One AMI message: an event, a response to an action, or the greeting banner.

Header names are case-insensitive in practice (CEL spells ``CallerIDname``), so
they are stored lowercased; a header sent more than once (``ChanVariable``,
``Output``) keeps every value.

Most messages on a busy PBX are of no interest to anyone (VarSet, CEL, Newexten,
RTCP…), so a message from the wire keeps its text and parses its headers only
when they are first read; ``peek`` finds one header in the text without parsing
the rest, for the few every message is asked about (Uniqueid, Timestamp,
ActionID).
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["event", "response", "banner"]
_NEEDLES: dict[str, str] = {}  # header -> "\nHeader:", as peek looks for it


class AmiMessage:
    """An immutable-by-convention AMI message.

    ``fields`` maps each lowercased header name to its first value; ``repeated``
    maps the names sent more than once to all their values, in order.
    """

    __slots__ = ("kind", "name", "_fields", "_repeated", "_body", "_text")

    def __init__(
        self,
        kind: Kind,
        name: str,
        fields: dict[str, str],
        repeated: dict[str, list[str]] | None = None,
        body: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.name = name
        self._fields: dict[str, str] | None = fields
        self._repeated = repeated
        self._body = body
        self._text: str | None = None

    @classmethod
    def unparsed(cls, kind: Kind, name: str, text: str) -> AmiMessage:
        """A message whose headers are parsed from ``text`` when first read."""
        message = cls.__new__(cls)
        message.kind, message.name = kind, name
        message._fields, message._repeated, message._body, message._text = None, None, (), text
        return message

    @classmethod
    def event(cls, name: str, **headers: str) -> AmiMessage:
        """An event built in code (tests, the simulator); header names as keywords."""
        fields = {"event": name}
        fields.update((k.lower(), v) for k, v in headers.items())
        return cls("event", name, fields)

    def _parse(self) -> dict[str, str]:
        assert self._text is not None
        self._fields, self._repeated, self._body = parse_headers(self._text)
        self._text = None
        return self._fields

    @property
    def fields(self) -> dict[str, str]:
        fields = self._fields
        return fields if fields is not None else self._parse()

    @property
    def repeated(self) -> dict[str, list[str]] | None:
        if self._fields is None:
            self._parse()
        return self._repeated

    @property
    def body(self) -> tuple[str, ...]:
        if self._fields is None:
            self._parse()
        return self._body

    def peek(self, header: str) -> str | None:
        """The value of ``header``, spelt as Asterisk spells it (``Uniqueid``), without parsing
        the whole message; None when absent. (The first line is the Event or Response line,
        so every other header follows a line break.)"""
        if self._fields is not None:
            return self._fields.get(header.lower())
        text = self._text
        assert text is not None
        needle = _NEEDLES.get(header)
        if needle is None:
            needle = _NEEDLES[header] = "\n" + header + ":"
        start = text.find(needle)
        if start < 0:
            return None
        start += len(needle)
        end = text.find("\n", start)
        value = text[start:end] if end >= 0 else text[start:]
        if value.endswith("\r"):
            value = value[:-1]
        return value[1:] if value.startswith(" ") else value

    def get(self, key: str, default: str = "") -> str:
        """The first value of header ``key`` (lowercase), or ``default``."""
        return self.fields.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def __contains__(self, key: str) -> bool:
        return key in self.fields

    def getall(self, key: str) -> list[str]:
        """Every value of a header that may repeat, in the order sent."""
        repeated = self.repeated
        if repeated and key in repeated:
            return list(repeated[key])
        value = self.fields.get(key)
        return [] if value is None else [value]

    @property
    def action_id(self) -> str:
        return self.peek("ActionID") or ""

    @property
    def is_error(self) -> bool:
        return self.kind == "response" and self.name.lower() == "error"

    def __repr__(self) -> str:
        return f"<AmiMessage {self.kind} {self.name} {len(self.fields)} headers>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AmiMessage):
            return NotImplemented
        return (
            self.kind == other.kind
            and self.name == other.name
            and self.fields == other.fields
            and (self.repeated or {}) == (other.repeated or {})
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]


def parse_headers(text: str) -> tuple[dict[str, str], dict[str, list[str]] | None, tuple[str, ...]]:
    """Headers (lowercased names, first values), repeated headers, and free-text lines."""
    text = text.removesuffix("\r")  # the framer leaves the \r of the last line's ending
    pairs = [line.partition(": ") for line in text.split("\r\n" if "\r\n" in text else "\n")]
    fields = {key.lower(): value for key, colon, value in pairs if colon}
    # the usual message: every line "Key: value", no key twice, no stray text
    if len(fields) == len(pairs) and not any(" " in key for key in fields):
        return fields, None, ()
    return _parse_headers_slowly(text)


def _parse_headers_slowly(text: str) -> tuple[dict[str, str], dict[str, list[str]] | None, tuple[str, ...]]:
    fields: dict[str, str] = {}
    repeated: dict[str, list[str]] | None = None
    body: list[str] = []
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        key, colon, value = line.partition(":")
        if not colon or not key or " " in key:
            if line:
                body.append(line)  # free text (Follows output) or a stray line
            continue
        key = key.lower()
        if value.startswith(" "):
            value = value[1:]
        if key in fields:
            if repeated is None:
                repeated = {}
            repeated.setdefault(key, [fields[key]]).append(value)
        else:
            fields[key] = value
    if body and body[-1] == "--END COMMAND--":
        body.pop()
    return fields, repeated, tuple(body)
