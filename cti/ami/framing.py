"""AMI framing, sans-IO: bytes in, whole messages out.

Why not panoramisk's parser: it decodes each TCP read on its own, so a UTF-8
character split across two reads (a Chinese CallerIDName) is dropped. Here the
stream is split on bytes first and each *whole* message is decoded once.

What Asterisk sends, and what this accepts:
- messages are header lines ``Key: Value`` ended by an empty line; the normal
  line ending is ``\\r\\n`` but ``\\n`` alone is accepted, and so is the
  ``\\r\\n\\n`` ending of CoreShowChannelMap (Asterisk issue 761);
- the first line of a session is a banner (``Asterisk Call Manager/11.0.0``)
  ended by a single line ending;
- a header may repeat (``ChanVariable``, ``Output``): every value is kept;
- ``Response: Follows`` (old ``Command`` output) carries free text up to
  ``--END COMMAND--``, which may itself contain empty lines; one that never
  says ``--END COMMAND--`` ends at the first empty line followed by the start
  of another message, so that it holds back nothing after it.

No message may be larger than ``MAX_MESSAGE_BYTES``, whether it comes in one
read or in many: a larger one is logged with its offset and skipped.

A malformed message (no ``Event``/``Response`` header, undecodable bytes) is
logged with its position in the stream and skipped or repaired; it never stops
the framer.
"""

from __future__ import annotations

import logging
import re

from cti.ami.message import AmiMessage, Kind, parse_headers

log = logging.getLogger(__name__)

# An empty line: a line ending followed by another line ending. The \r of the
# first ending is left with the message and stripped with the line.
_END_OF_MESSAGE = re.compile(rb"\n\r?\n")
_BANNER_PREFIX = b"Asterisk Call Manager/"
_FOLLOWS = b"Response: Follows"
_END_COMMAND = b"--END COMMAND--"
_NEXT_MESSAGE = re.compile(rb"\n\r?\n(?=Event: |Response: )")  # an empty line, then another message
# A message larger than this without an empty line is garbage, not AMI.
MAX_MESSAGE_BYTES = 1 << 20


class Framer:
    """Splits an AMI byte stream into :class:`AmiMessage` objects.

    Feed it whatever the socket returns, in any chunking; ``feed`` returns the
    messages completed by that chunk.
    """

    def __init__(self, *, expect_banner: bool = True, source: str = "AMI") -> None:
        self._buffer = b""
        self._expect_banner = expect_banner
        self._source = source
        self._offset = 0  # bytes consumed so far, for error messages
        self.banner: str | None = None

    def feed(self, data: bytes) -> list[AmiMessage]:
        buffer = self._buffer + data if self._buffer else data
        messages: list[AmiMessage] = []
        start = 0
        if self._expect_banner:
            start = self._take_banner(buffer, messages)
            if self._expect_banner:  # banner line not complete yet
                self._buffer = buffer
                return messages
        search = _END_OF_MESSAGE.search
        while True:
            match = search(buffer, start)
            if match is None:
                break
            end = match.start()
            if buffer.startswith(_FOLLOWS, start) and _END_COMMAND not in buffer[start:end]:
                match = self._end_of_follows(buffer, end)
                if match is None:
                    break  # wait for the rest of the command output
                end = match.start()
            chunk = buffer[start:end]
            if len(chunk) > MAX_MESSAGE_BYTES:
                log.error("%s: a message of %d bytes at stream offset %d (more than %d); discarded",
                          self._source, len(chunk), self._offset, MAX_MESSAGE_BYTES)
            elif chunk.strip():
                message = self._parse(chunk)
                if message is not None:
                    messages.append(message)
            self._offset += match.end() - start
            start = match.end()
        rest = buffer[start:]
        if len(rest) > MAX_MESSAGE_BYTES:
            log.error(
                "%s: %d bytes at stream offset %d without an end of message; discarded",
                self._source, len(rest), self._offset,
            )
            self._offset += len(rest)
            rest = b""
        self._buffer = rest
        return messages

    @staticmethod
    def _end_of_follows(buffer: bytes, after: int) -> re.Match[bytes] | None:
        """The empty line ending a Follows output: the one after ``--END COMMAND--``, or the first one
        followed by another message, whichever comes first; None while neither has arrived."""
        end_command = buffer.find(_END_COMMAND, after)
        by_marker = _END_OF_MESSAGE.search(buffer, end_command) if end_command >= 0 else None
        by_next = _NEXT_MESSAGE.search(buffer, after)
        found = [m for m in (by_marker, by_next) if m is not None]
        return min(found, key=lambda m: m.start()) if found else None

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a whole message."""
        return len(self._buffer)

    def _take_banner(self, buffer: bytes, messages: list[AmiMessage]) -> int:
        if len(buffer) < len(_BANNER_PREFIX) and _BANNER_PREFIX.startswith(buffer):
            return 0  # too short to tell yet
        if not buffer.startswith(_BANNER_PREFIX):
            self._expect_banner = False  # joined mid-stream (a replay): no banner
            return 0
        newline = buffer.find(b"\n")
        if newline < 0:
            return 0
        line = buffer[:newline].rstrip(b"\r").decode("utf-8", "replace")
        self.banner = line
        self._expect_banner = False
        messages.append(AmiMessage("banner", line.partition("/")[2], {"banner": line}))
        self._offset += newline + 1
        return newline + 1

    def _parse(self, chunk: bytes) -> AmiMessage | None:
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Keep the message: a wrong byte in one header must not lose a call.
            log.warning(
                "%s: invalid UTF-8 at stream offset %d (%s); undecodable bytes replaced",
                self._source, self._offset + exc.start, exc.reason,
            )
            text = chunk.decode("utf-8", "replace")
        message = parse_message(text)
        if message is None:
            log.warning(
                "%s: malformed message at stream offset %d skipped (no Event or Response header): %.120r",
                self._source, self._offset, text,
            )
        return message


def parse_message(text: str) -> AmiMessage | None:
    """Parse the text of one message (without its terminating empty line); None when it
    has no Event or Response header.

    The usual message starts with its ``Event:`` or ``Response:`` line: it is named from
    that line and its other headers are parsed when first read (AmiMessage.unparsed)."""
    first, newline, _ = text.partition("\n")
    key, colon, value = first.partition(": ")
    if colon and newline and key in _FIRST and (value := value.removesuffix("\r")):
        return AmiMessage.unparsed(_FIRST[key], value, text)
    fields, repeated, body = parse_headers(text)
    kind: Kind
    if "event" in fields:
        kind, name = "event", fields["event"]
    elif "response" in fields:
        kind, name = "response", fields["response"]
    else:
        return None
    return AmiMessage(kind, name, fields, repeated, body)


_FIRST: dict[str, Kind] = {"Event": "event", "Response": "response"}
