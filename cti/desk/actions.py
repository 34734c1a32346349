"""What an agent does from the desk, turned into AMI actions.

The forms follow what a real Asterisk 22 accepted (traces S3, S5, P5, P6):
- a blind or attended transfer is sent on the agent's *bridged* channel
  (PJSIP/agent1001-N, or the ;1 half of a Local member): sent on the citizen's
  channel, Asterisk "succeeds" but moves the agent and drops the citizen (S3);
- completing an attended transfer is the atxfercomplete digits (*2) played on
  the agent's channel, cancelling it atxferabort (*1), as the agent's phone would;
- a three-way call (三方通话) is a dual Redirect of the citizen and the agent
  into a ConfBridge room, then an Originate of the third party into it (P6);
- hanging up is a Hangup of the agent's leg (write class call): the citizen's leg
  then ends where the dialplan's Queue() returns to Hangup(); in a three-way call
  the agent leaves the citizen and the third party talking, and during an attended
  transfer it hands the citizen over, as the agent's phone hanging up would;
- a supervisor listens, whispers or barges through their own phone: an Originate of it
  (write class originate) into [cti-spy] at the mode's extension, the agent's leg in
  CTI_SPY, where the dialplan runs ChanSpy on it (never an Originate Application).
One-key emergency targets (110, 119, 120, 122, 12122) come from the trunk
map; departments' remote seats from agents.yaml.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cti.agents.directory import Agent, Supervisor
from cti.ami.client import AmiActionError
from cti.calls.events import CallEvent, SupervisorListening
from cti.calls.record import LiveCall
from cti.configuration import Configuration

KINDS = ("blind", "attended", "conference")
EMERGENCY_CONTEXT = "emergency"  # asterisk-conf/extensions.conf
SEAT_CONTEXT = "cti-seat"
# A seat is reached at one digit in [cti-seat], its endpoint given in CTI_TRANSFER_DIAL: AMI Atxfer dials
# its Exten as DTMF into the transfer feature, so "seat-12369" arrived as "12" (a real Asterisk 22).
SEAT_EXTEN = "0"
CONFERENCE_CONTEXT = "conference"
ATXFER_COMPLETE = "*2"  # features.conf defaults, as used in trace S5
ATXFER_ABORT = "*1"
_NOT_IN_NAMES = str.maketrans("", "", '"<>')
SPY_CONTEXT = "cti-spy"  # asterisk-conf/extensions.conf: one extension per mode
SPY_MODES = ("listen", "whisper", "barge")
SPY_LABELS = {"listen": "监听", "whisper": "耳语", "barge": "强插"}  # shown on the supervisor's phone
SPY_TIMEOUT_MS = 30000  # the supervisor's phone rings this long
# What CTI_SPY may hold: one channel name as Asterisk makes them (PJSIP/agent1001-0000002a,
# Local/1001@agents-00000003;1). ChanSpy(${CTI_SPY},…) takes its options after a comma.
_CHANNEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*/[A-Za-z0-9_@.+:;-]{1,200}")


class DeskError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Ami(Protocol):
    async def send(self, fields: dict[str, Any], timeout: float | None = None) -> Any: ...


class Links(Protocol):
    """Which node's AMI link an action goes to (cti.nodes.Nodes): a call's, or an agent's."""

    def for_call(self, linkedid: str) -> Ami: ...

    def for_agent(self, agent: Agent) -> Ami: ...


@dataclass(frozen=True, slots=True)
class Target:
    id: str  # "110", or a seat id
    name: str
    kind: str  # emergency | seat
    context: str
    exten: str
    dial: str  # how to call it into a three-way room

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "kind": self.kind}


class Desk:
    def __init__(self, links: Links, live: Callable[[str], LiveCall | None], configuration: Callable[[], Configuration],
                 sleep: Callable[[float], Awaitable[None]] | None = None,
                 note: Callable[[CallEvent], None] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.links = links
        self._live = live
        self._configuration = configuration
        self._sleep = sleep
        self._note = note  # an event from the desk into its call's timeline
        self._clock = clock

    # -- agent state --------------------------------------------------------------

    async def log_in(self, agent: Agent) -> None:
        for queue in agent.queues:
            await self.join(agent, queue)

    async def join(self, agent: Agent, queue: str, *, paused: bool = False, reason: str = "") -> None:
        """QueueAdd (app_queue takes the pause and its reason with it); already a member is fine."""
        action = {"Action": "QueueAdd", "Queue": queue, "Interface": agent.member, "MemberName": agent.name,
                  "StateInterface": agent.device, "Paused": "true" if paused else "false"}
        if paused and reason:
            action["Reason"] = reason
        await self._idempotent(agent, action, "Already there")

    async def log_out(self, agent: Agent) -> None:
        for queue in agent.queues:
            await self._idempotent(agent, {"Action": "QueueRemove", "Queue": queue, "Interface": agent.member},
                                   "Not there")

    async def pause(self, agent: Agent, reason: str) -> None:
        await self.links.for_agent(agent).send({"Action": "QueuePause", "Interface": agent.member, "Paused": "true",
                                                "Reason": reason})

    async def ready(self, agent: Agent) -> None:
        await self.links.for_agent(agent).send({"Action": "QueuePause", "Interface": agent.member, "Paused": "false"})

    async def _idempotent(self, agent: Agent, action: dict[str, Any], already: str) -> None:
        try:
            await self.links.for_agent(agent).send(action)
        except AmiActionError as exc:
            if already not in exc.reason:
                raise

    # -- transfers ------------------------------------------------------------------

    def targets(self) -> list[Target]:
        configuration = self._configuration()
        found = [Target(n.number, unit.name, "emergency", EMERGENCY_CONTEXT, n.number, unit.dial)
                 for unit in configuration.trunk_map.by_treatment("emergency") for n in unit.numbers]
        for seat in configuration.directory.seats:
            found.append(Target(seat.id, seat.name, "seat", SEAT_CONTEXT, SEAT_EXTEN, seat.device))
        return found

    def target(self, target_id: str) -> Target:
        for target in self.targets():
            if target.id == target_id:
                return target
        raise DeskError(404, "unknown_target", f"no transfer target {target_id!r}")

    def call_for(self, linkedid: str, agent: Agent | None) -> LiveCall:
        """The live call, checking that ``agent`` (None: a supervisor) is the one talking to the citizen."""
        call = self._live(linkedid)
        if call is None:
            raise DeskError(404, "no_such_call", f"no call {linkedid} in progress")
        if not call.agent_channel:
            raise DeskError(409, "not_answered", f"call {linkedid} has no agent on it")
        if agent is not None and call.answered_by not in (agent.member, agent.device):
            raise DeskError(403, "not_your_call", f"call {linkedid} is answered by {call.answered_by}, not you")
        return call

    async def transfer(self, linkedid: str, target_id: str, kind: str, agent: Agent | None) -> dict[str, Any]:
        if kind not in KINDS:
            raise DeskError(422, "invalid", f"kind must be one of {', '.join(KINDS)}")
        call = self.call_for(linkedid, agent)
        target = self.target(target_id)
        if kind != "conference":
            await self._transfer_dial(call, target)
        if kind == "blind":
            action = {"Action": "BlindTransfer", "Channel": call.agent_channel, "Context": target.context,
                      "Exten": target.exten}
            await self.links.for_call(linkedid).send(action)
            return {"sent": [action]}
        if kind == "attended":
            action = {"Action": "Atxfer", "Channel": call.agent_channel, "Context": target.context,
                      "Exten": target.exten}
            await self.links.for_call(linkedid).send(action)
            return {"sent": [action]}
        return await self._three_way(call, target)

    async def _transfer_dial(self, call: LiveCall, target: Target) -> None:
        """What [emergency] or [cti-seat] dials (the trunk map's dial string, the seat's endpoint), on both
        legs: the citizen's runs it after a blind transfer; the agent's passes it (__) to an attended
        transfer's consultation leg."""
        ami = self.links.for_call(call.linkedid)
        for channel in (call.citizen_channel, call.agent_channel):
            await ami.send({"Action": "Setvar", "Channel": channel, "Variable": "__CTI_TRANSFER_DIAL",
                            "Value": target.dial})

    async def _three_way(self, call: LiveCall, target: Target) -> dict[str, Any]:
        room = f"cti-{call.linkedid}"
        redirect = {"Action": "Redirect", "Channel": call.citizen_channel, "ExtraChannel": call.agent_channel,
                    "Context": CONFERENCE_CONTEXT, "Exten": room, "Priority": "1",
                    "ExtraContext": CONFERENCE_CONTEXT, "ExtraExten": room, "ExtraPriority": "1"}
        await self.links.for_call(call.linkedid).send(redirect)
        name = call.caller_name.translate(_NOT_IN_NAMES)  # quotes and angle brackets would end the name early
        caller = f'"{name}" <{call.caller_number}>' if name else call.caller_number
        originate = {"Action": "Originate", "Channel": target.dial, "Context": CONFERENCE_CONTEXT, "Exten": room,
                     "Priority": "1", "CallerID": caller, "Async": "true", "Timeout": "30000",
                     "ActionID": f"cti-3way-{call.linkedid}-{target.id}"}
        await self.links.for_call(call.linkedid).send(originate)
        return {"sent": [redirect, originate], "room": room}

    async def hang_up(self, linkedid: str, agent: Agent | None) -> dict[str, Any]:
        """End the agent's part of the call: AMI Hangup on the agent's leg, cause 16 (normal clearing)."""
        call = self.call_for(linkedid, agent)
        action = {"Action": "Hangup", "Channel": call.agent_channel, "Cause": "16"}
        await self.links.for_call(linkedid).send(action)
        return {"sent": [action]}

    async def finish_attended(self, linkedid: str, agent: Agent | None, complete: bool) -> dict[str, Any]:
        call = self.call_for(linkedid, agent)
        sent = []
        for digit in ATXFER_COMPLETE if complete else ATXFER_ABORT:
            action = {"Action": "PlayDTMF", "Channel": call.agent_channel, "Digit": digit, "Receive": "true",
                      "Duration": "100"}
            await self.links.for_call(linkedid).send(action)
            sent.append(action)
            if self._sleep is not None:
                await self._sleep(0.3)  # the digits are told apart like key presses (S5 waited 300 ms)
        return {"sent": sent}

    # -- supervisors ------------------------------------------------------------------

    async def listen(self, linkedid: str, mode: str, supervisor: Supervisor, user_id: str) -> dict[str, Any]:
        """Ring the supervisor's phone into [cti-spy]: once answered, ChanSpy on the agent's leg as ``mode``
        says (listen: hear both sides; whisper: the agent hears the supervisor; barge: both do). The agent's
        channel is the tracker's; the request names only the call. Into the call's timeline once Asterisk
        has taken the Originate."""
        if mode not in SPY_MODES:
            raise DeskError(422, "invalid", f"mode must be one of {', '.join(SPY_MODES)}")
        call = self.call_for(linkedid, None)
        if not _CHANNEL_NAME.fullmatch(call.agent_channel):
            raise DeskError(409, "not_answered", f"call {linkedid} has no agent channel ChanSpy can be given")
        person = self._configuration().directory.by_phone(call.answered_by)
        agent = f"{person.name} {person.id}" if isinstance(person, Agent) else call.answered_by
        name = f"{SPY_LABELS[mode]} {agent}".translate(_NOT_IN_NAMES)
        number = person.id if isinstance(person, Agent) else ""
        action = {"Action": "Originate", "Channel": supervisor.device, "Context": SPY_CONTEXT, "Exten": mode,
                  "Priority": "1", "CallerID": f'"{name}" <{number}>' if number else f'"{name}"',
                  "Variable": f"CTI_SPY={call.agent_channel}", "Async": "true", "Timeout": str(SPY_TIMEOUT_MS)}
        await self.links.for_call(linkedid).send(action | {"ActionID": f"cti-spy-{linkedid}-{supervisor.id}"})
        if self._note is not None:
            self._note(SupervisorListening(linkedid, self._clock(), mode, user_id, supervisor.name, supervisor.device,
                                           call.agent_channel))
        return {"sent": [action]}
