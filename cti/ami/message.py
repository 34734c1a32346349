"""One AMI message: an event, a response to an action, or the greeting banner.

Header names are case-insensitive in practice (CEL spells ``CallerIDname``), so
they are stored lowercased; a header sent more than once (``ChanVariable``,
``Output``) keeps every value.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["event", "response", "banner"]


class AmiMessage:
    """An immutable-by-convention AMI message.

    ``fields`` maps each lowercased header name to its first value; ``repeated``
    maps the names sent more than once to all their values, in order.
    """

    __slots__ = ("kind", "name", "fields", "repeated", "body")

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
        self.fields = fields
        self.repeated = repeated
        self.body = body

    @classmethod
    def event(cls, name: str, **headers: str) -> AmiMessage:
        """An event built in code (tests, the simulator); header names as keywords."""
        fields = {"event": name}
        fields.update((k.lower(), v) for k, v in headers.items())
        return cls("event", name, fields)

    def get(self, key: str, default: str = "") -> str:
        """The first value of header ``key`` (lowercase), or ``default``."""
        return self.fields.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def __contains__(self, key: str) -> bool:
        return key in self.fields

    def getall(self, key: str) -> list[str]:
        """Every value of a header that may repeat, in the order sent."""
        if self.repeated and key in self.repeated:
            return list(self.repeated[key])
        value = self.fields.get(key)
        return [] if value is None else [value]

    @property
    def action_id(self) -> str:
        return self.fields.get("actionid", "")

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
