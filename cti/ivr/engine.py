"""Runs an IVR flow, sans-IO: it says which AGI command to send next and takes
Asterisk's reply. The FastAGI edge moves the bytes."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field

from cti.agi.protocol import AgiReply, quote
from cti.calls.channels import is_node_trunk
from cti.ivr.flows import Answer, Dial, Flow, Hangup, Play, Queue, Read, Set

PROMPT_FOLDER = "cti"  # prompts are installed as sounds/<language>/cti/<name>


@dataclass
class Outcome:
    """What a finished flow did: the hand-over to the dialplan and the answers read."""

    next: str = ""  # queue | dial | hangup ("" when the caller hung up first or the session was cut short)
    variables: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    hung_up: bool = False


class FlowRun:
    """``start()`` gives the first command; ``reply(r)`` the next, or None when done."""

    def __init__(self, flow: Flow, variables: Mapping[str, str]) -> None:
        self.flow = flow
        self.variables = dict(variables)
        self.outcome = Outcome()
        self._steps: Generator[str, AgiReply, None] = self._run()

    def start(self) -> str | None:
        return next(self._steps, None)

    def reply(self, reply: AgiReply) -> str | None:
        if reply.code == 511:
            self.outcome.hung_up = True
            self._steps.close()
            return None
        try:
            return self._steps.send(reply)
        except StopIteration:
            return None

    def caller_hung_up(self) -> None:
        self.outcome.hung_up = True

    def _fill(self, value: str) -> str:
        return value.format_map(self.variables)

    def _run(self) -> Generator[str, AgiReply, None]:
        for step in self.flow.steps:
            if isinstance(step, Answer):
                if (yield "ANSWER").dead:
                    return self._gone()
            elif isinstance(step, Play):
                if (yield _stream(self._fill(step.prompt))).dead:
                    return self._gone()
            elif isinstance(step, Read):
                answer = yield from self._read(step)
                if answer is None:
                    return self._gone()
                self.outcome.answers[step.store] = answer
            elif isinstance(step, Set):
                for name, value in step.variables:
                    yield from self._set(name, self._fill(value))
            elif isinstance(step, Queue):
                yield from self._hand_over("queue", {"CTI_QUEUE": self._fill(step.queue)})
            elif isinstance(step, Dial):
                targets = self._fill(step.targets)
                # [cti-next] node: the same Dial, its legs told the call's Linkedid for the node they reach
                yield from self._hand_over("node" if is_node_trunk(targets) else "dial", {
                    "CTI_DIAL": targets, "CTI_DIAL_TIMEOUT": self._fill(step.timeout),
                    "CTI_FALLBACK": self._fill(step.fallback), "CTI_QUEUE": self.variables.get("queue", "")})
            elif isinstance(step, Hangup):
                yield from self._hand_over("hangup", {})
        return None

    def _read(self, step: Read) -> Generator[str, AgiReply, str | None]:
        """GET DATA with retries; "" when the caller gave no valid answer."""
        prompt = self._fill(step.prompt)
        for attempt in range(step.retries + 1):
            reply = yield f"GET DATA {PROMPT_FOLDER}/{prompt} {int(step.timeout * 1000)} {step.digits}"
            if reply.dead:
                return None
            if not step.valid or reply.result in step.valid:
                return reply.result
            if step.invalid and attempt < step.retries:
                if (yield _stream(self._fill(step.invalid))).dead:
                    return None
        return ""

    def _set(self, name: str, value: str) -> Generator[str, AgiReply, None]:
        self.outcome.variables[name] = value
        yield f"SET VARIABLE {name} {quote(value)}"

    def _hand_over(self, next_step: str, variables: dict[str, str]) -> Generator[str, AgiReply, None]:
        for name, value in variables.items():
            yield from self._set(name, value)
        yield from self._set("CTI_NEXT", next_step)
        self.outcome.next = next_step

    def _gone(self) -> None:
        self.outcome.hung_up = True


def _stream(prompt: str) -> str:
    return f'STREAM FILE {PROMPT_FOLDER}/{prompt} ""'
