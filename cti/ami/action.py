"""An AMI action as bytes on the wire: the one place cti serialises one. Pure.

Asterisk's manager reads a line up to CR LF *or a bare LF* (main/manager.c, get_input),
and an empty line ends the action. So a value holding a line break would end its
header early and let the rest of the value be read as headers of its own, or as a
whole second action (``Action: Originate … Application: System``); a NUL cuts the
line short. Nothing that reaches this module is trusted: every header name must be
a plain token and no value may hold CR, LF or NUL. A refused action is never
written, not even in part, and the error names the header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FORBIDDEN = re.compile(r"[\r\n\x00]")

Value = str | int | float | Sequence[str]


class UnsafeAction(ValueError):
    """An action that would not be read as it was meant."""

    def __init__(self, action: str, header: str, reason: str) -> None:
        super().__init__(f"AMI {action or '?'} not sent: header {header!r} {reason}")
        self.action = action
        self.header = header
        self.reason = reason


def encode_action(fields: Mapping[str, Value]) -> bytes:
    """``Key: value`` lines ended by CR LF and an empty line; a list value repeats its header
    (``Variable``). ``Action`` comes first, the rest in the order given."""
    action = str(fields.get("Action", ""))
    lines: list[str] = []
    for name, value in sorted(fields.items(), key=lambda item: item[0].lower() != "action"):
        if not _NAME.fullmatch(name):
            raise UnsafeAction(action, name, "is not a header name (letters, digits, - and _)")
        for one in value if isinstance(value, Sequence) and not isinstance(value, str) else [value]:
            text = str(one)
            bad = _FORBIDDEN.search(text)
            if bad is not None:
                raise UnsafeAction(action, name, f"holds {_SHOWN[bad.group()]} at position {bad.start()}")
            lines.append(f"{name}: {text}\r\n")
    return ("".join(lines) + "\r\n").encode("utf-8")


_SHOWN = {"\r": "a carriage return (CR)", "\n": "a line feed (LF)", "\x00": "a NUL byte"}

