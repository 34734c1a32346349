"""Transfers and bridges: who the citizen is handed to and what came of it. Pure: no IO.

Asterisk tells a blind and an attended transfer with events of their own; a Redirect has none: it is
the citizen's leg leaving its bridge for somewhere else in the dialplan; a three-way call is a third
party in the citizen's bridge. A blind transfer or a redirect sends the citizen into the dialplan,
and the Dial that follows says whether the line was reached and what it was shown."""

from __future__ import annotations

from cti.ami.message import AmiMessage
from cti.calls.channels import device_of
from cti.calls.core import CallCore
from cti.calls.events import (
    CallTransferred,
    TransferFailed,
)
from cti.calls.record import Transfer
from cti.calls.state import (
    Call,
    Channel,
)


class TransferTracking(CallCore):
    """The bridge and transfer events of the tracker."""

    def _bridge_enter(self, message: AmiMessage, at: float) -> None:
        f = message.fields
        bridge, uniqueid = f.get("bridgeuniqueid", ""), f.get("uniqueid", "")
        channel = self.channels.get(uniqueid)
        if channel is None or not bridge:
            return
        channel.bridge = bridge
        channel.bridged_at = (f.get("context", ""), f.get("exten", ""))
        members = self.bridges.setdefault(bridge, set())
        members.add(uniqueid)
        call = self.calls.get(channel.linkedid)
        if call is not None and call.handing_over is not None and call.citizen in members and len(members) > 1:
            self._settle(call, "answered")  # handed over, the citizen is talking to someone again
        if len(members) >= 3:
            self._conference(members, at)

    def _conference(self, members: set[str], at: float) -> None:
        """Three or more parties in one bridge with a citizen: a three-way call (三方通话)."""
        for uniqueid in members:
            channel = self.channels.get(uniqueid)
            call = self.calls.get(channel.linkedid) if channel else None
            if call is None or call.citizen != uniqueid or call.answered_at is None:
                continue
            for other in sorted(members - {uniqueid, call.answered_channel} - call.conference_seen):
                call.conference_seen.add(other)
                joined = self.channels[other].name
                self._transfer(call, at, "conference", device_of(joined), "", joined)

    def _bridge_leave(self, message: AmiMessage, at: float) -> None:
        f = message.fields
        uniqueid = f.get("uniqueid", "")
        members = self.bridges.get(f.get("bridgeuniqueid", ""))
        if members is not None:
            members.discard(uniqueid)
            if not members:
                del self.bridges[f["bridgeuniqueid"]]
        channel = self.channels.get(uniqueid)
        if channel is None:
            return
        call = self.calls.get(channel.linkedid)
        location = (f.get("context", ""), f.get("exten", ""))
        if (call is not None and uniqueid == call.citizen and call.answered_at is not None
                and location != channel.bridged_at):
            self._moved_out_of_bridge(call, channel, location, at)
        channel.bridge, channel.bridged_at = "", ("", "")

    def _moved_out_of_bridge(self, call: Call, channel: Channel, location: tuple[str, str], at: float) -> None:
        """The citizen's leg left its bridge for another place in the dialplan.

        A blind transfer announced that move beforehand; any other move is an AMI
        Redirect, for which Asterisk sends no event of its own. BridgeLeave is
        trusted here, not every event's channel snapshot: Asterisk sends some
        events (a VarSet, say) from a snapshot taken before the move."""
        if call.expected_moves.pop(channel.uniqueid, None) == location:
            return
        self._transfer(call, at, "redirect", location[1], "", channel.name)

    def _blind_transfer(self, message: AmiMessage, at: float) -> None:
        f = message.fields
        call = self.calls.get(f.get("transfereelinkedid", "")) or self.calls.get(f.get("transfererlinkedid", ""))
        if call is None:
            return
        target = f.get("extension", "")
        if f.get("result") != "Success":
            self._emit(call, TransferFailed(call.linkedid, at, "blind", target, f.get("result", "")))
            return
        transferee = f.get("transfereeuniqueid", "")
        call.expected_moves[transferee] = (f.get("context", ""), target)
        self._transfer(call, at, "blind", target, f.get("transfererchannel", ""), f.get("transfereechannel", ""))

    def _attended_transfer(self, message: AmiMessage, at: float) -> None:
        f = message.fields
        call = self.calls.get(f.get("transfereelinkedid", "")) or self.calls.get(
            f.get("origtransfererlinkedid", ""))
        if call is None:
            return
        # The consultation leg's number: the target channel's own extension, or,
        # when the target is a trunk leg still at "s", what the agent dialled.
        target = f.get("transfertargetexten", "")
        if target in ("", "s"):
            target = f.get("secondtransfererexten", "")
        if f.get("result") != "Success":
            self._emit(call, TransferFailed(call.linkedid, at, "attended", target, f.get("result", "")))
            return
        self._transfer(call, at, "attended", target, f.get("origtransfererchannel", ""),
                       f.get("transfereechannel", ""))

    def _transfer(self, call: Call, at: float, kind: str, target: str, transferer: str, transferee: str) -> None:
        """An attended transfer or a third party in the room has reached its target already; a blind transfer
        or a redirect sends the citizen into the dialplan, and the Dial that follows tells how it went."""
        settled = kind in ("attended", "conference")
        reached, presented = call.dialled_out if kind == "attended" else ("", "")  # the consultation call
        call.transfers.append(Transfer(kind, target, at, transferer, transferee, "answered" if settled else "",
                                       reached, presented))
        if not settled:
            call.handing_over, call.handover_dial = len(call.transfers) - 1, ""
        self._emit(call, CallTransferred(call.linkedid, at, kind, target, transferer, transferee))
