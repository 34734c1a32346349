"""Feed recorded AMI transcripts through the live pipeline.

A transcript is what Asterisk sent to one AMI client: a ``.raw`` file holds the
bytes as sent, banner first; a ``.jsonl`` capture holds one JSON object per
message (``dir`` ``in`` for what Asterisk sent). Several transcripts in a row
are successive sessions of one client, the link dropping between them, as in
a reconnect mid-call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cti.ami.clock import StreamClock
from cti.ami.framing import Framer
from cti.calls.record import CallRecord
from cti.calls.tracker import CallTracker
from cti.pipeline import CallPipeline
from cti.settings import AmiSettings

READ_SIZE = 4096  # what one socket read typically brings


class TranscriptError(Exception):
    pass


def transcript_bytes(path: Path) -> bytes:
    """The bytes Asterisk sent, from a ``.raw`` file or a ``.jsonl`` capture."""
    try:
        if path.suffix != ".jsonl":
            return path.read_bytes()
        chunks = []
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TranscriptError(f"{path}:{number}: not a JSON object: {exc.msg}") from None
                if entry.get("dir") == "in":
                    chunks.append(entry["raw"].encode("utf-8"))
        return b"".join(chunks)
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read: {exc.strerror}") from None


@dataclass
class ReplayResult:
    records: list[CallRecord] = field(default_factory=list)
    open_calls: list[str] = field(default_factory=list)  # Linkedids still in progress at the end
    messages: int = 0


def replay(paths: Iterable[Path], settings: AmiSettings) -> ReplayResult:
    """Run transcripts through framing, clock and tracker; return the finished calls.

    A file without a single AMI message in it is no transcript (a wrong file, a capture of
    the other direction): TranscriptError names it."""
    result = ReplayResult()
    tracker = CallTracker(settings.inbound_contexts, settings.outbound_contexts)
    clock = StreamClock(settings.pbx_timezone)
    pipeline = CallPipeline(tracker, clock, result.records.append)
    for path in paths:
        data = transcript_bytes(path)
        framer = Framer(source=str(path))
        before = pipeline.messages
        for start in range(0, len(data), READ_SIZE):
            for message in framer.feed(data[start:start + READ_SIZE]):
                pipeline.on_message(message)
        if pipeline.messages == before:
            raise TranscriptError(f"{path}: no AMI messages in it: not a transcript of what Asterisk sent "
                                  "(.raw: the bytes, banner first; .jsonl: a capture with \"dir\": \"in\" lines)")
        pipeline.on_link_lost(clock.now)
    result.open_calls = list(tracker.calls)
    result.messages = pipeline.messages
    return result
