"""Memory: per live call, and RSS over a million calls.

- per live call: N calls held at the moment they are answered (the opening of S2:
  a citizen dials 12345, the queue rings two seats in parallel, one answers), fed
  through framing and the call tracker; the Python heap they hold (tracemalloc)
  divided by N.
- a million calls: S2's complete call (the 81 events cti's AMI user reads), each
  with its own ids, through framing, the tracker and the RecordWriter into SQLite
  (WAL, durable), RSS sampled every 100,000 calls: it must stay flat.

    .venv/bin/python bench/memory.py [--live 10000] [--calls 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import describe  # noqa: E402
from cti.ami.clock import StreamClock  # noqa: E402
from cti.ami.framing import Framer  # noqa: E402
from cti.calls.tracker import CallTracker  # noqa: E402
from cti.pipeline import CallPipeline  # noqa: E402
from cti.store.database import Database  # noqa: E402
from cti.store.writer import RecordWriter  # noqa: E402

TRACE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ami-traces" / "S2_parallel_ring.raw"
EPOCH = "1795281182"  # every id of S2's call begins with it
READ = (b"Privilege: call,all", b"Privilege: agent,all")  # what cti's manager.conf user reads


def one_call() -> str:
    """S2's call as cti's AMI user reads it (no CEL, no dialplan class), one message per entry."""
    chunks = TRACE.read_bytes().split(b"\r\n\r\n")
    kept = [c for c in chunks if c.startswith(b"Event: ") and not c.startswith(b"Event: CEL")
            and any(r in c for r in READ)]
    return (b"\r\n\r\n".join(kept) + b"\r\n\r\n").decode()


def answered_part(call: str) -> str:
    """The call up to its AgentConnect: what a live, answered call has left in the tracker."""
    return call[:call.index("Event: AgentConnect")]


def rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / 2**20


def pipeline(sink) -> tuple[Framer, CallPipeline]:  # type: ignore[no-untyped-def]
    tracker = CallTracker(("from-carrier", "from-pstn", "from-sim"), ("callback",))
    return Framer(expect_banner=False), CallPipeline(tracker, StreamClock("UTC"), sink)


def per_live_call(count: int) -> float:
    template = answered_part(one_call())
    framer, pipe = pipeline(lambda record: None)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for n in range(count):
        for message in framer.feed(template.replace(EPOCH, str(int(EPOCH) + n)).encode()):
            pipe.on_message(message)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    assert len(pipe.tracker.calls) == count, len(pipe.tracker.calls)
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return held / count


async def million(calls: int) -> list[tuple[int, float, float]]:
    template = one_call()
    with tempfile.TemporaryDirectory() as folder:
        database = await Database.open(f"sqlite:///{folder}/memory.db")
        writer = RecordWriter(database.calls, batch_size=500)
        writer.start()
        framer, pipe = pipeline(writer.put)
        samples = []
        start = time.perf_counter()
        for n in range(calls):
            for message in framer.feed(template.replace(EPOCH, str(int(EPOCH) + n)).encode()):
                pipe.on_message(message)
            if n % 50 == 0:
                await asyncio.sleep(0)  # the writer's turn, as the event loop gives it in service
            if writer.backlog >= 20_000:
                await writer.flush()  # the database keeps up, as it must in service
            if (n + 1) % 100_000 == 0:
                samples.append((n + 1, rss_mib(), time.perf_counter() - start))
                print(f"  {n + 1:>9,} calls  RSS {samples[-1][1]:7.1f} MiB  {samples[-1][2]:7.0f} s", flush=True)
        await writer.close()
        assert writer.written == calls, (writer.written, calls)
        await database.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--live", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    print(f"per live call: {per_live_call(args.live) / 1024:.1f} KiB of Python heap ({args.live:,} answered calls)")
    print(f"RSS over {args.calls:,} calls (framing, tracker, records written to SQLite):")
    samples = asyncio.run(million(args.calls))
    if len(samples) >= 2:
        first, last = samples[0][1], samples[-1][1]
        print(f"RSS at {samples[0][0]:,} calls {first:.1f} MiB, at {samples[-1][0]:,} calls {last:.1f} MiB: "
              f"{last / first:.2f}x; {args.calls / samples[-1][2]:,.0f} calls/s")


if __name__ == "__main__":
    main()
