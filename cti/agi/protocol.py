"""The AGI protocol as Asterisk's res_agi speaks it, sans-IO.

Asterisk opens the session with ``agi_network: yes``, ``agi_network_script``
and the ``agi_*`` variables (``agi_request`` first), one per line, ended by an
empty line. Then the server sends one command per line and Asterisk answers
each with ``200 result=<n> [(<data>)] [endpos=<n>]``, ``510 Invalid or unknown
command``, ``511 Command Not Permitted on a dead channel or intercept routine``
or ``520`` usage lines. When the channel hangs up, Asterisk also sends a line
``HANGUP`` to a FastAGI server, whenever it happens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_ENVIRONMENT_BYTES = 64 * 1024
HANGUP_LINE = "HANGUP"

_REPLY = re.compile(r"^(?P<code>\d{3})[ -]?(?P<rest>.*)$")
_RESULT = re.compile(r"result=(?P<result>\S*)(?:\s+\((?P<data>[^)]*)\))?")


class AgiProtocolError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class AgiReply:
    code: int
    result: str = ""
    data: str = ""  # the text in parentheses: "timeout", "hangup", "dtmf"…
    line: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200 and self.result != "-1"

    @property
    def dead(self) -> bool:
        """The channel is gone: 511, or a -1 result of a command that needs a live channel."""
        return self.code == 511 or (self.code == 200 and self.result == "-1")


def parse_environment(block: str) -> dict[str, str]:
    """The ``agi_*`` variables of a session's opening block."""
    env: dict[str, str] = {}
    for number, line in enumerate(block.split("\n"), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_"):
            raise AgiProtocolError(f"line {number} of the AGI environment is not 'agi_name: value': {line!r}")
        env[key] = value.strip()
    if "agi_request" not in env and "agi_network_script" not in env:
        raise AgiProtocolError("the AGI environment has neither agi_request nor agi_network_script")
    return env


def script_of(env: dict[str, str]) -> str:
    """The route name: agi://host:4573/route?x=1 -> "route"."""
    script = env.get("agi_network_script") or env.get("agi_request", "").split("/", 3)[-1]
    return script.split("?", 1)[0].strip("/")


def parse_reply(line: str) -> AgiReply:
    match = _REPLY.match(line.strip())
    if match is None:
        raise AgiProtocolError(f"not an AGI reply: {line!r}")
    code, rest = int(match["code"]), match["rest"]
    result = _RESULT.search(rest)
    if result is None:
        return AgiReply(code, "", rest, line)
    return AgiReply(code, result["result"], result["data"] or "", line)


def quote(value: str) -> str:
    """An AGI command argument: in double quotes, with quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
