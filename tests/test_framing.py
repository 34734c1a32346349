"""AMI framing: bytes in, whole messages out, however TCP splits the bytes."""

from __future__ import annotations

import logging
import random

import pytest

from cti.ami.framing import MAX_MESSAGE_BYTES, Framer
from cti.ami.message import AmiMessage
from tests.fakeami import FIXTURES

NAME = "市民张三".encode()  # 12 bytes: any split inside it cuts a character in two

CASES = [
    pytest.param(
        b"Asterisk Call Manager/11.0.0\r\n"
        b"Response: Success\r\nActionID: a1\r\nMessage: Authentication accepted\r\n\r\n",
        [("banner", "11.0.0", {"banner": "Asterisk Call Manager/11.0.0"}),
         ("response", "Success", {"response": "Success", "actionid": "a1", "message": "Authentication accepted"})],
        id="banner-then-response",
    ),
    pytest.param(
        b"Event: Newchannel\r\nChannel: PJSIP/carrier-00000001\r\nCallerIDName: " + NAME
        + b"\r\nCallerIDNum: 13800000031\r\n\r\n",
        [("event", "Newchannel", {"event": "Newchannel", "channel": "PJSIP/carrier-00000001",
                                  "calleridname": "市民张三", "calleridnum": "13800000031"})],
        id="utf8-caller-name",
    ),
    pytest.param(
        b"Event: Hangup\nChannel: X/1\nCause: 16\n\nEvent: Hangup\nChannel: X/2\n\n",
        [("event", "Hangup", {"event": "Hangup", "channel": "X/1", "cause": "16"}),
         ("event", "Hangup", {"event": "Hangup", "channel": "X/2"})],
        id="lf-only-endings",
    ),
    pytest.param(
        # CoreShowChannelMap (Asterisk issue 761) ends its messages with \r\n\n
        b"Response: Success\r\nActionID: m1\r\nMessage: Channel map will follow\r\n\n"
        b"Event: CoreShowChannelMapComplete\r\nActionID: m1\r\n\r\n",
        [("response", "Success", {"response": "Success", "actionid": "m1", "message": "Channel map will follow"}),
         ("event", "CoreShowChannelMapComplete", {"event": "CoreShowChannelMapComplete", "actionid": "m1"})],
        id="crlf-lf-ending-issue-761",
    ),
    pytest.param(
        b"Event: Status\r\nChannel: PJSIP/a-1\r\nChanVariable: FROM_DID=12315\r\nChanVariable: CASE=T-42\r\n\r\n",
        [("event", "Status", {"event": "Status", "channel": "PJSIP/a-1", "chanvariable": "FROM_DID=12315"},
          {"chanvariable": ["FROM_DID=12315", "CASE=T-42"]})],
        id="repeated-chanvariable",
    ),
    pytest.param(
        b"Response: Success\r\nActionID: c1\r\nMessage: Command output follows\r\nOutput: line one\r\n"
        b"Output: line: two\r\n\r\n",
        [("response", "Success", {"response": "Success", "actionid": "c1", "message": "Command output follows",
                                  "output": "line one"}, {"output": ["line one", "line: two"]})],
        id="command-output-asterisk-22",
    ),
    pytest.param(
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: c2\r\nName  Host\n\nsip1  10.0.0.1\n"
        b"--END COMMAND--\r\n\r\nEvent: FullyBooted\r\n\r\n",
        [("response", "Follows", {"response": "Follows", "privilege": "Command", "actionid": "c2"}, None,
          ("Name  Host", "sip1  10.0.0.1")),
         ("event", "FullyBooted", {"event": "FullyBooted"})],
        id="response-follows-with-blank-line",
    ),
    pytest.param(
        b"Event: Newstate\r\nAccountCode: \r\nCallerIDname: x\r\nExtra: {\"a\":\"b:c\"}\r\n\r\n",
        [("event", "Newstate", {"event": "Newstate", "accountcode": "", "calleridname": "x",
                                "extra": '{"a":"b:c"}'})],
        id="empty-value-mixed-case-and-colons",
    ),
]


def _expected(spec: tuple) -> AmiMessage:
    kind, name, fields, repeated, body = (*spec, None, ())[:5] if len(spec) < 5 else spec
    return AmiMessage(kind, name, fields, repeated, body or ())


def _feed(framer: Framer, chunks: list[bytes]) -> list[AmiMessage]:
    return [m for chunk in chunks for m in framer.feed(chunk)]


def _splits(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, 7)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize(("data", "expected"), CASES)
@pytest.mark.parametrize("how", ["whole", "byte-by-byte", "random-splits"])
def test_framing_table(data: bytes, expected: list[tuple], how: str) -> None:
    chunks = {"whole": [data], "byte-by-byte": [data[i:i + 1] for i in range(len(data))],
              "random-splits": _splits(data, len(data))}[how]
    framer = Framer()
    assert _feed(framer, chunks) == [_expected(spec) for spec in expected]
    assert framer.pending == 0


def test_utf8_split_across_reads_is_intact() -> None:
    """panoramisk 1.4 decodes each read alone and drops the split character."""
    data = b"Event: NewCallerid\r\nCallerIDName: " + NAME + b"\r\n\r\n"
    cut = data.index(NAME) + 1  # inside the first character
    framer = Framer(expect_banner=False)
    assert framer.feed(data[:cut]) == []
    [message] = framer.feed(data[cut:])
    assert message.get("calleridname") == "市民张三"


def test_a_malformed_message_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    data = (b"Event: Hangup\r\nChannel: A\r\n\r\n"
            b"this is not AMI\r\nneither: is this\r\n\r\n"
            b"Event: Hangup\r\nChannel: B\r\n\r\n")
    with caplog.at_level(logging.WARNING):
        messages = Framer(expect_banner=False, source="test-link").feed(data)
    assert [m.get("channel") for m in messages] == ["A", "B"]
    [record] = caplog.records
    assert "test-link: malformed message at stream offset 29 skipped" in record.getMessage()


def test_invalid_utf8_is_repaired_not_dropped(caplog: pytest.LogCaptureFixture) -> None:
    data = b"Event: Newchannel\r\nCallerIDName: bad\xff\xfename\r\nCallerIDNum: 1380\r\n\r\n"
    with caplog.at_level(logging.WARNING):
        [message] = Framer(expect_banner=False).feed(data)
    assert message.get("calleridname") == "bad\ufffd\ufffdname"
    assert message.get("calleridnum") == "1380"
    assert "invalid UTF-8 at stream offset 36" in caplog.records[0].getMessage()


def test_endless_garbage_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    framer = Framer(expect_banner=False)
    with caplog.at_level(logging.ERROR):
        framer.feed(b"x" * (MAX_MESSAGE_BYTES + 10))
    assert framer.pending == 0
    assert framer.feed(b"Event: FullyBooted\r\n\r\n")[0].name == "FullyBooted"
    assert "without an end of message; discarded" in caplog.records[0].getMessage()


def test_no_banner_when_joining_mid_stream() -> None:
    [message] = Framer().feed(b"Event: FullyBooted\r\n\r\n")
    assert message.kind == "event"


@pytest.mark.parametrize("name", ["S3_blind_transfer_110", "P6_sip_threeway_confbridge"])
def test_real_transcripts_frame_the_same_however_split(name: str) -> None:
    data = (FIXTURES / f"{name}.raw").read_bytes()
    whole = Framer().feed(data)
    assert len(whole) == data.count(b"\r\n\r\n") + 1  # every message, plus the banner
    for size in (1, 7, 4096):
        framer = Framer()
        pieces = _feed(framer, [data[i:i + size] for i in range(0, len(data), size)])
        assert pieces == whole


def test_a_follows_output_without_its_end_holds_nothing_back() -> None:
    """A Follows answer that never says --END COMMAND-- ends where the next message starts, not a
    megabyte later: the events after it arrive with it, however the bytes are split."""
    data = (b"Response: Follows\r\nPrivilege: Command\r\nActionID: c1\r\nline one\r\n\r\nline two\r\n\r\n"
            b"Event: Hangup\r\nUniqueid: 1.1\r\n\r\n"
            b"Response: Success\r\nActionID: p1\r\nPing: Pong\r\n\r\n")
    for split in (len(data), 1, 7):
        framer = Framer(expect_banner=False)
        messages = [m for start in range(0, len(data), split) for m in framer.feed(data[start:start + split])]
        assert [(m.name, m.body) for m in messages] == [
            ("Follows", ("line one", "line two")), ("Hangup", ()), ("Success", ())], split
        assert framer.pending == 0


@pytest.mark.parametrize("reads", [1, 64])
def test_a_message_over_the_bound_is_refused_whole_or_split(reads: int, caplog: pytest.LogCaptureFixture) -> None:
    """The same 2 MB message is refused whether it comes in one read or in many; what follows is kept."""
    huge = b"Event: Newchannel\r\nCallerIDName: " + b"x" * (2 * MAX_MESSAGE_BYTES) + b"\r\n\r\n"
    data = huge + b"Event: Hangup\r\nUniqueid: 1.1\r\n\r\n"
    framer = Framer(expect_banner=False, source="test")
    size = -(-len(data) // reads)
    messages = [m for start in range(0, len(data), size) for m in framer.feed(data[start:start + size])]
    assert [m.name for m in messages] == ["Hangup"]
    assert "at stream offset 0" in caplog.text
