"""AMI ingest: the captured transcripts repeated to 40 MB, fed in 4 KB reads.

Three paths over the same bytes, in the same run:
- cti: framing, UTF-8 decoding, the event clock, call tracking and domain events
  (everything `cti serve` does with a message before the database, with its clock);
- panoramisk 1.4's AMIProtocol.data_received (decode, split, parse, dispatch);
- bare bytes.split framing (the floor: no parsing at all).

Each copy of a transcript gets fresh ids (its epoch-second ids shifted), so the
tracker follows new calls rather than ignoring repeats.

    .venv/bin/python bench/ingest.py [--mb 40] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe  # noqa: E402
from cti.ami.clock import ReceiveClock  # noqa: E402
from cti.ami.framing import Framer  # noqa: E402
from cti.calls.tracker import CallTracker  # noqa: E402
from cti.pipeline import CallPipeline  # noqa: E402

TRACES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ami-traces"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
EPOCH_ID = re.compile(rb"\b(1[0-9]{9})(\.[0-9]+)")
CHUNK = 4096


def corpus(megabytes: float) -> bytes:
    """Every transcript without its banner, copied with shifted ids until ``megabytes``."""
    bodies = []
    for path in sorted(TRACES.glob("*.raw")):
        raw = path.read_bytes()
        bodies.append(raw[len(BANNER):] if raw.startswith(BANNER) else raw)
    one = b"".join(bodies)
    copies = []
    size, n = 0, 0
    while size < megabytes * 1e6:
        shift = n * 100_000
        copies.append(EPOCH_ID.sub(lambda m, s=shift: str(int(m.group(1)) + s).encode() + m.group(2), one))
        size += len(copies[-1])
        n += 1
    return BANNER + b"".join(copies)


def chunks(data: bytes) -> list[bytes]:
    return [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]


def run_cti(reads: list[bytes]) -> int:
    framer = Framer()
    ended = []
    tracker = CallTracker(("from-carrier", "from-pstn", "from-sim"), ("callback",))
    pipeline = CallPipeline(tracker, ReceiveClock(), ended.append)
    count = 0
    for read in reads:
        for message in framer.feed(read):
            pipeline.on_message(message)
            count += 1
    return count


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _Factory:
    def __init__(self) -> None:
        self.count = 0

    def dispatch(self, message: object) -> None:
        self.count += 1

    def connection_lost(self, exc: object) -> None:
        pass  # R2's Shutdown event: panoramisk closes; this benchmark keeps feeding


def run_panoramisk(reads: list[bytes]) -> int:
    from panoramisk.ami_protocol import AMIProtocol

    protocol = AMIProtocol()
    protocol.connection_made(_Transport())
    protocol.encoding = "utf-8"
    factory = _Factory()
    protocol.factory = factory
    for read in reads:
        protocol.data_received(read)
    return factory.count


def run_split(reads: list[bytes]) -> int:
    rest = b""
    count = 0
    for read in reads:
        parts = (rest + read).split(b"\r\n\r\n")
        rest = parts.pop()
        count += len(parts)
    return count


def best(runner, reads: list[bytes], repeat: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    times, count = [], 0
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        count = runner(reads)
        times.append(time.perf_counter() - start)
    return min(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=40.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = corpus(args.mb)
    reads = chunks(data)
    messages = data.count(b"\r\n\r\n")
    print(f"machine: {describe()}")
    print(f"input: {len(data) / 1e6:.1f} MB, {messages:,} messages, {len(reads):,} reads of {CHUNK} bytes")
    results = {}
    for name, runner in (("bytes.split", run_split), ("panoramisk", run_panoramisk), ("cti", run_cti)):
        seconds, count = best(runner, reads, args.repeat)
        results[name] = messages / seconds
        print(f"{name:12} {seconds:7.2f} s  {messages / seconds:>12,.0f} msg/s  ({count:,} handled)")
    print(f"cti / panoramisk: {results['cti'] / results['panoramisk']:.2f}x   "
          f"cti / bytes.split: {results['cti'] / results['bytes.split']:.2f}x")


if __name__ == "__main__":
    main()
