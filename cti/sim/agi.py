"""The Asterisk side of FastAGI: what res_agi does when the dialplan says
AGI(agi://host:port/script,args). It sends the environment block, answers each
command, tells the server HANGUP when the caller leaves, and sets AGISTATUS:
FAILURE when the server cannot be reached, so the dialplan can fall back."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable

from cti.sim.pbx import Channel, Pbx
from cti.sim.phones import Citizen

DEAD = "511 Command Not Permitted on a dead channel or intercept routine\n"


async def agi(pbx: Pbx, channel: Channel, url: str, args: list[str], *, prompt_seconds: Callable[[str], float],
              citizen: Citizen | None) -> str:
    """Run a FastAGI session for ``channel``; return AGISTATUS (SUCCESS, FAILURE, HANGUP)."""
    channel.app, channel.app_data = "AGI", url
    host_port, _, script = url.removeprefix("agi://").partition("/")
    host, _, port = host_port.partition(":")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port or 4573)), 2)
    except (OSError, TimeoutError):
        return "FAILURE"
    try:
        writer.write(_environment(channel, url, script, args).encode())
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                return "SUCCESS" if channel.alive else "HANGUP"
            reply = await _command(pbx, channel, line.decode().strip(), prompt_seconds, citizen)
            if not channel.alive and not reply.startswith("511"):
                reply = "HANGUP\n" + reply
            writer.write(reply.encode())
            await writer.drain()
    except (ConnectionError, TimeoutError):
        return "FAILURE"
    finally:
        writer.close()


def _environment(channel: Channel, url: str, script: str, args: list[str]) -> str:
    """setup_env() of res_agi.c, in its order."""
    lines = ["agi_network: yes", f"agi_network_script: {script}", f"agi_request: {url}",
             f"agi_channel: {channel.name}", f"agi_language: {channel.language}",
             f"agi_type: {channel.name.split('/', 1)[0]}", f"agi_uniqueid: {channel.uniqueid}",
             "agi_version: 22.10.1", f"agi_callerid: {channel.caller_number}",
             f"agi_calleridname: {channel.caller_name}", "agi_callingpres: 0", "agi_callingani2: 0",
             "agi_callington: 0", "agi_callingtns: 0", f"agi_dnid: {channel.exten}", "agi_rdnis: unknown",
             f"agi_context: {channel.context}", f"agi_extension: {channel.exten}", f"agi_priority: {channel.priority}",
             "agi_enhanced: 0.0", "agi_accountcode: ", "agi_threadid: 140000000000000"]
    lines += [f"agi_arg_{i}: {arg}" for i, arg in enumerate(args, 1)]
    return "\n".join(lines) + "\n\n"


async def _command(pbx: Pbx, channel: Channel, line: str, prompt_seconds: Callable[[str], float],
                   citizen: Citizen | None) -> str:
    if not channel.alive:
        return DEAD
    try:
        words = shlex.split(line)
    except ValueError:
        return "520 Invalid command syntax.  Proper usage not available.\n"
    verb = " ".join(words[:2]).upper()
    if verb.startswith("ANSWER"):
        pbx.set_state(channel, 6)
        return "200 result=0\n"
    if verb == "SET VARIABLE" and len(words) >= 4:
        channel.variables[words[2]] = words[3]
        return "200 result=1\n"
    if verb == "STREAM FILE" and len(words) >= 3:
        seconds = prompt_seconds(words[2].rsplit("/", 1)[-1])
        if not await _lasts(pbx, channel, seconds):
            return f"200 result=-1 endpos={int(8000 * seconds / 2)}\n"
        return f"200 result=0 endpos={int(8000 * seconds)}\n"
    if verb == "GET DATA" and len(words) >= 3:
        seconds = prompt_seconds(words[2].rsplit("/", 1)[-1])
        if not await _lasts(pbx, channel, seconds + 1):
            return "200 result=-1\n"
        digits = citizen.digits.pop(0) if citizen is not None and citizen.digits else ""
        return f"200 result={digits}\n" if digits else "200 result= (timeout)\n"
    return "510 Invalid or unknown command\n"


async def _lasts(pbx: Pbx, channel: Channel, seconds: float) -> bool:
    """Play for ``seconds``; False when the caller hangs up meanwhile."""
    try:
        await asyncio.wait_for(channel.gone.wait(), seconds * pbx.scale)
    except TimeoutError:
        return True
    return False
