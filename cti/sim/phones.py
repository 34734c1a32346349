"""The people and phones around the simulated PBX.

A :class:`Phone` is an endpoint the PBX rings (an agent's set, a department's
remote seat, an emergency operator): it answers after its ring time, or never;
while a person is at its desk (``attended``), only when that person says so
(the demo's desk softphone). A :class:`Citizen` is the
caller on an inbound call: they talk for a while once someone answers, or give
up after their patience runs out, and press digits when asked (the survey).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


def nobody() -> bool:
    return False


@dataclass
class Phone:
    device: str  # PJSIP/agent1001
    caller_number: str = ""  # what the PBX shows as this endpoint's own number (pjsip.conf callerid=)
    caller_name: str = ""  # and name
    context: str = "phones"  # the endpoint's context, as its outgoing channels show it
    ring_seconds: float = 2.0
    answers: bool = True
    attended: Callable[[], bool] = nobody  # True while a person answers from the desk instead of the robot
    _answer_now: dict[str, asyncio.Event] = field(default_factory=dict)

    def answer_now(self, channel: str) -> bool:
        """The desk's softphone: answer this ringing channel now."""
        event = self._answer_now.get(channel)
        if event is None:
            return False
        event.set()
        return True

    def ringing_channels(self) -> list[str]:
        return list(self._answer_now)

    async def wait_answer(self, channel: str, sleep: Callable[[float], Awaitable[None]]) -> bool:
        """True when this phone answers the ringing channel (the caller may give up first)."""
        if not self.answers:
            await asyncio.Event().wait()
        event = self._answer_now.setdefault(channel, asyncio.Event())
        try:
            if self.attended():
                await event.wait()
            else:
                waiter = asyncio.ensure_future(event.wait())
                try:
                    await asyncio.wait([waiter, asyncio.ensure_future(sleep(self.ring_seconds))],
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
            return True
        finally:
            self._answer_now.pop(channel, None)


@dataclass
class Citizen:
    number: str
    name: str = "Citizen"
    talk_seconds: float = 20.0  # once someone answers
    patience: float = 120.0  # hangs up unanswered after this long
    digits: list[str] = field(default_factory=list)  # keys pressed when asked (satisfaction survey)
