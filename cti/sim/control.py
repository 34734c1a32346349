"""What cti's AMI actions do inside the simulated PBX: transfers, redirects,
originates, recordings. Each function returns an error text (Asterisk's own
words, trace S10) or None, and schedules the events that follow the response.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import Callable
from pathlib import Path

from cti.sim.pbx import Bridge, Channel, Pbx
from cti.sim.phones import Phone
from cti.sim.snapshot import RINGING, UP


def resolve(pbx: Pbx, dial_string: str) -> tuple[str, Phone | None]:
    """A dial string's device and the phone that answers it.

    ``PJSIP/seat-12369`` rings that endpoint; ``PJSIP/110@carrier`` goes out on the
    carrier trunk (device PJSIP/carrier) to whoever answers number 110."""
    tech, _, resource = dial_string.partition("/")
    if "@" in resource:
        number, _, endpoint = resource.partition("@")
        trunk = pbx.peers.get(endpoint)  # PJSIP/q12345@node-sz2: the trunk to another node, to that queue
        if trunk is not None:
            return f"{tech}/{endpoint}", trunk.phone(number)
        return f"{tech}/{endpoint}", pbx.endpoints.get(dial_string) or pbx.endpoints.get(f"{tech}/{endpoint}")
    return dial_string, pbx.endpoints.get(dial_string)


# -- transfers ---------------------------------------------------------------------

def blind_transfer(pbx: Pbx, transferer: Channel, context: str, exten: str) -> str | None:
    """AMI BlindTransfer: the transferer's bridged peer goes to exten@context (S3, P5)."""
    bridge = transferer.bridge
    if bridge is None or len(bridge.channels) != 2:
        pbx.emit("BlindTransfer", "call", [("Result", "Invalid")] + transferer.fields("Transferer")
                 + [("IsExternal", "Yes"), ("Context", context), ("Extension", exten)])
        return "Transfer invalid"
    transferee = next(c for c in bridge.channels if c is not transferer)

    def after_response() -> None:
        pbx.event("Unhold", transferer)
        pbx.emit("BlindTransfer", "call", [("Result", "Success")] + transferer.fields("Transferer")
                 + transferee.fields("Transferee") + bridge.fields()
                 + [("IsExternal", "Yes"), ("Context", context), ("Extension", exten)])
        if pbx.races.transferer_leaves_first:
            pbx.leave_bridge(transferer)
        call = pbx.queue_calls.get(transferee.name) or pbx.queue_calls.get(transferer.name)
        if call is not None:
            call.complete("transfer")
        transferee.context, transferee.exten = context, exten
        pbx.leave_bridge(transferee)
        pbx.leave_bridge(transferer)
        send_to(pbx, transferee, context, exten)
        if transferer.task is None or transferer.task.done():
            pbx.race(lambda: pbx.hangup(transferer, 16))
        else:
            send_to(pbx, transferer, transferer.context, transferer.exten)

    pbx.after_response(after_response)
    return None


def send_to(pbx: Pbx, channel: Channel, context: str, exten: str) -> None:
    """Make a channel run exten@context: interrupt its application, or start one on a dialled leg."""
    if channel.task is not None and not channel.task.done():
        if channel.moved is None:
            channel.moved = asyncio.get_running_loop().create_future()
        if not channel.moved.done():
            channel.moved.set_result((context, exten))
    else:
        pbx.run(channel, context, exten)


def redirect(pbx: Pbx, moves: list[tuple[Channel, str, str]]) -> None:
    """AMI Redirect (S4), or a dual Redirect (P6): each channel leaves its bridge for exten@context.

    A dialled leg (no dialplan of its own) starts one at once; a channel inside an
    application is interrupted; a dialled leg left alone in a bridge is hung up."""
    def after_response() -> None:
        legs = [m for m in moves if m[0].task is None or m[0].task.done()]
        running = [m for m in moves if m not in legs]
        for channel, context, exten in legs:
            _leave_for_move(pbx, channel, context, exten)
            pbx.run(channel, context, exten)
        for channel, context, exten in running:
            send_to(pbx, channel, context, exten)

    pbx.after_response(after_response)


def _leave_for_move(pbx: Pbx, channel: Channel, context: str, exten: str) -> None:
    channel.context, channel.exten = context, exten
    pbx.leave_for_move(channel)


def atxfer(pbx: Pbx, transferer: Channel, context: str, exten: str) -> str | None:
    """AMI Atxfer: the transferer's peer waits on hold while the transferer consults exten@context (S5, X2).

    The consultation leg is dialled from the transferer's side; PlayDTMF ``*2``
    completes the transfer, ``*1`` aborts it (features.conf)."""
    bridge = transferer.bridge
    if bridge is None or len(bridge.channels) != 2:
        return "Atxfer successfully queued"  # Asterisk accepts it and nothing happens (asterisk-notes.md)
    transferee = next(c for c in bridge.channels if c is not transferer)

    def after_response() -> None:
        pbx.atxfers[transferer.name] = pbx.spawn(_consult(pbx, transferer, transferee, bridge, context, exten))

    pbx.after_response(after_response)
    return None


async def _consult(pbx: Pbx, transferer: Channel, transferee: Channel, bridge: Bridge, context: str,
                   exten: str) -> None:
    """The consultation call (bridge_basic.c, X2): the transferee is put on hold, the transferer hears
    transferannouncesound, then a Local channel (optimizable) is requested for exten@context, its ;1 showing
    the transferer as its connected line and its ;2 calling with the transferer's caller ID; the transferer
    and ;1 talk in a new bridge while ;2 runs the dialplan."""
    await pbx.sleep(0.25)  # the DTMF feature starts
    if not (transferer.alive and transferee.alive) or transferer.bridge is not bridge:
        return
    pbx.event("Hold", transferer)
    transferee.on_hold = True
    pbx.refresh_device(transferee.device)
    pbx.event("MusicOnHoldStart", transferee, ("Class", "default"))
    await pbx.sleep(0.135)  # transferannouncesound (cti/transfer)
    if not (transferer.alive and transferee.alive):
        return
    one, two = pbx.local_pair(context, exten, transferer.linkedid, parent=transferer, optimize=True)
    one.app, one.app_data = "AppDial", "(Outgoing Line)"
    consult_bridge = pbx.new_bridge()
    own = (transferer.caller_number, transferer.caller_name)
    pbx.set_caller(two, *own)
    pbx.local_call(one, two)
    pbx.set_connected(one, *own)
    pbx.enter_bridge(one, consult_bridge)
    pbx.leave_bridge(transferer)
    pbx.enter_bridge(transferer, consult_bridge)
    pbx.consults[transferer.name] = (one, two, transferee, bridge)
    # the bridge tells the transferer who ;1 is once ;2's Dial has had its say: 110 itself (X2), or nobody
    # when Dial's I keeps 110's connected line from coming back (X2b)
    ringing = asyncio.ensure_future(_until(lambda: one.state in (RINGING, UP) or not one.alive))
    try:
        await asyncio.wait_for(ringing, 2 * pbx.scale + 0.5)
    except TimeoutError:
        pass
    if transferer.alive and transferer.bridge is consult_bridge:
        pbx.set_connected(transferer, one.caller_number, one.caller_name)


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0)


def finish_atxfer(pbx: Pbx, transferer: Channel, complete: bool) -> None:
    """The digits *2 (complete) or *1 (abort) were played on the transferer's channel."""
    consult = pbx.consults.pop(transferer.name, None)
    if consult is None:
        return
    one, two, transferee, bridge = consult
    consult_bridge = one.bridge
    if not complete:  # back to the citizen
        pbx.leave_bridge(transferer)
        pbx.spawn(pbx.hangup(one, 16))
        pbx.enter_bridge(transferer, bridge)
        _unhold(pbx, transferee)
        pbx.event("Unhold", transferer)
        return
    # the consultation bridge merges into the transferee's: the target moves over, the transferer leaves
    if consult_bridge is not None:
        pbx.emit("BridgeMerge", "call", bridge.fields("To") + consult_bridge.fields("From"))
        pbx.leave_bridge(one)
    pbx.enter_bridge(one, bridge)
    _unhold(pbx, transferee)
    pbx.leave_bridge(transferer)
    pbx.emit("AttendedTransfer", "call", [("Result", "Success")] + transferer.fields("OrigTransferer")
             + bridge.fields("Orig") + transferer.fields("SecondTransferer")
             + (consult_bridge.fields("Second") if consult_bridge else bridge.fields("Second"))
             + transferee.fields("Transferee") + one.fields("TransferTarget")
             + [("IsExternal", "No"), ("DestType", "Bridge"), ("DestBridgeUniqueid", bridge.uniqueid)])
    # who is on the other side, both ways: the target is shown the transferee (and so is whoever ;2 is
    # bridged with: X2's 110, shown the agent until now), the transferee the target (X2b: nobody)
    citizen = (transferee.caller_number, transferee.caller_name)
    pbx.set_connected(one, *citizen)
    call = pbx.queue_calls.get(transferee.name)
    if call is not None:
        call.complete("transfer")
    for other in list(two.bridge.channels) if two.bridge is not None else []:
        if other is not two:
            pbx.set_connected(other, *citizen)
    pbx.set_connected(transferee, one.caller_number, one.caller_name)
    pbx.finish(transferer, 16)
    if one.optimize:
        pbx.spawn(_optimize(pbx, one, two))


def _unhold(pbx: Pbx, channel: Channel) -> None:
    if channel.on_hold:
        channel.on_hold = False
        pbx.event("MusicOnHoldStop", channel)
        pbx.refresh_device(channel.device)


async def _optimize(pbx: Pbx, one: Channel, two: Channel) -> None:
    """A Local pair bridged on both sides leaves (core_unreal.c, X2): what ;2 is bridged with swaps into
    ;1's bridge, ;2 takes ;1's connected line as its caller ID, and both halves hang up."""
    await pbx.sleep(0.015)
    inner, outer = one.bridge, two.bridge
    if inner is None or outer is None or not (one.alive and two.alive):
        return
    source = next((c for c in outer.channels if c is not two), None)
    if source is None:
        return
    number = str(next(pbx.optimizations))
    pbx.emit("LocalOptimizationBegin", "call", one.fields("LocalOne") + two.fields("LocalTwo")
             + source.fields("Source") + [("DestUniqueId", two.uniqueid), ("Id", number)])
    pbx.leave_bridge(source)
    pbx.leave_bridge(one)
    pbx.enter_bridge(source, inner, swap=one)
    pbx.set_caller(two, one.connected_number, one.connected_name)
    pbx.emit("LocalOptimizationEnd", "call", one.fields("LocalOne") + two.fields("LocalTwo")
             + [("Success", "No"), ("Id", number)])
    pbx.event("HangupRequest", two, ("Cause", "16"))
    pbx.finish(one, 16)
    pbx.leave_bridge(two)
    pbx.event("SoftHangupRequest", two, ("Cause", "16"))
    pbx.finish(two, 16)


# -- originate -----------------------------------------------------------------------

async def originate(pbx: Pbx, dial_string: str, *, context: str = "", exten: str = "", application: str = "",
                    data: str = "", caller: tuple[str, str], timeout: float, action_id: str,
                    variables: dict[str, str], report: bool = True) -> Channel | None:
    """Originate: ring the dial string; when it answers, run exten@context (or the application).
    ``report``: tell the outcome in an OriginateResponse event (async originates only)."""
    device, phone = resolve(pbx, dial_string)
    where = [("Context", context), ("Exten", exten)] if context else [("Application", application), ("Data", data)]

    def respond(response: str, channel: str, reason: str, uniqueid: str, cid: tuple[str, str]) -> None:
        if report:
            pbx.emit("OriginateResponse", "call", ([("ActionID", action_id)] if action_id else []) + [
                ("Response", response), ("Channel", channel)] + where + [
                ("Reason", reason), ("Uniqueid", uniqueid), ("CallerIDNum", cid[0]), ("CallerIDName", cid[1])])

    if phone is None and device not in pbx.endpoints:
        respond("Failure", dial_string, "0", "<unknown>", ("<unknown>", "<unknown>"))
        return None
    leg = pbx.new_channel(device, state=0, context=phone.context if phone else "default", exten="s")
    leg.variables.update(variables)
    pbx.set_caller(leg, caller[0], caller[1])
    pbx.set_connected(leg, caller[0], caller[1])
    pbx.emit("DialBegin", "call", leg.fields("Dest") + [("DialString", dial_string.split("/", 1)[1])])
    leg.state = RINGING
    pbx.event("Newstate", leg)
    pbx.refresh_device(device)
    pbx.emit("DialState", "call", leg.fields("Dest") + [("DialStatus", "RINGING")])
    answered = False
    if phone is not None:
        try:
            answered = await asyncio.wait_for(phone.wait_answer(leg.name, pbx.sleep), timeout * pbx.scale)
        except TimeoutError:
            answered = False
    if not answered:
        pbx.emit("DialEnd", "call", leg.fields("Dest") + [("DialStatus", "NOANSWER")])
        await pbx.hangup(leg, 19)
        respond("Failure", dial_string, "3", "<unknown>", caller)
        return None
    pbx.set_state(leg, UP)
    pbx.emit("DialEnd", "call", leg.fields("Dest") + [("DialStatus", "ANSWER")])
    respond("Success", leg.name, "4", leg.uniqueid, caller)
    if context:
        pbx.run(leg, context, exten)
    else:
        pbx.spawn(_application(pbx, leg, application, data))
    return leg


async def _application(pbx: Pbx, leg: Channel, application: str, data: str) -> None:
    """An originated leg runs one application: Wait(seconds) here; an unknown one ends the call."""
    if application.lower() == "wait":
        await pbx.wait_while_alive(leg, seconds=float(data or 0))
    await pbx.hangup(leg, 16, soft=True)


# -- recording -----------------------------------------------------------------------

def mixmonitor(pbx: Pbx, channel: Channel, path: str) -> None:
    """The AMI MixMonitor action: the recording starts once the response is out."""
    pbx.after_response(lambda: record(pbx, channel, path))


def record(pbx: Pbx, channel: Channel, path: str) -> None:
    """MixMonitor(path): MixMonitorStart now; when the channel ends, a WAV of its length (silence:
    the simulator has no audio) at ``path``, so the desk can play it."""
    pbx.event("MixMonitorStart", channel)
    pbx.spawn(_write_when_done(pbx, channel, Path(path), time.monotonic()))


async def _write_when_done(pbx: Pbx, channel: Channel, path: Path, started: float) -> None:
    await channel.gone.wait()
    seconds = min(600.0, (time.monotonic() - started) / pbx.scale)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\0\0" * int(8000 * seconds))
    except OSError:
        pass  # a recordings folder that is not ours: the simulated PBX just does not record
