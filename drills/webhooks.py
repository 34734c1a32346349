"""Fault drill: webhooks to two units while one of them is down and the sender is restarted.

The path is the service's own (cti.service.Service._finished): each finished call goes to the
RecordWriter with its ``call.ended`` message, both written in one transaction to a SQLite file,
and a WebhookSender delivers the outbox to two real HTTP receivers on 127.0.0.1:

- ``--count`` calls (200) end at ``--rate`` a second (50), alternately for 首创水务 (healthy)
  and 市红十字会, whose system is down until ``--down`` seconds (6) after the first call:
  nothing listens (``--down-as refused``, connections refused), or it takes each request and
  answers only after 30 s, long after the sender's timeout (``--down-as hanging``: it has the
  message, cti does not know it, and sends it again: the receiver sees the key twice);
- half-way through the calls the sender is stopped (what it has in flight finishes, the rest
  stays in the outbox) and a new one is started on the same database;
- the drill waits until every message is delivered (or ``--deadline`` seconds, 60) and prints
  what was sent, delivered, seen twice by a receiver (the same Idempotency-Key twice), lost
  (never delivered), and how long the healthy unit's messages took.

    .venv/bin/python drills/webhooks.py [--count 200] [--rate 50] [--down 6] [--down-as refused|hanging]

The backoff is shortened (retry_min 0.2 s, retry_max 2 s, timeout 2 s) so the drill takes
seconds; the code path is the one ``cti serve`` runs with the defaults of cti/settings.py.
Exits 1 when a message is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web  # noqa: E402

from cti.calls.record import CallRecord  # noqa: E402
from cti.settings import WebhookSettings  # noqa: E402
from cti.store.database import Database  # noqa: E402
from cti.store.outbox import Stored  # noqa: E402
from cti.store.writer import RecordWriter  # noqa: E402
from cti.webhooks import WebhookSender, call_ended  # noqa: E402
from drills.common import free_port, machine_line  # noqa: E402

ZONE = ZoneInfo("Asia/Shanghai")
SETTINGS = WebhookSettings(timeout=2.0, retry_min=0.2, retry_max=2.0)
HEALTHY, DOWN = ("shouchuang-water", "首创水务"), ("red-cross", "市红十字会")


@dataclass
class Receiver:
    """A unit's system: every POST it took, by Idempotency-Key, with when it arrived. Before
    ``hang_until`` (monotonic) it answers only after 30 s."""

    port: int
    hang_until: float = 0.0
    seen: dict[str, list[float]] = field(default_factory=dict)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def up(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            await request.read()
            self.seen.setdefault(request.headers["Idempotency-Key"], []).append(time.monotonic())
            if time.monotonic() < self.hang_until:
                await asyncio.sleep(30)
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", receive)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def down(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def call(n: int, unit: tuple[str, str], at: float) -> CallRecord:
    return CallRecord(linkedid=f"{int(at)}.{n}", direction="inbound", caller_number=f"138{n:08d}",
                      caller_name="张伟", dialled_number="2587066", arrived_at=at - 60, ended_at=at, unit=unit[1],
                      unit_id=unit[0], treatment="interconnected", answered_at=at - 55, talk_time=55.0,
                      answered_by="PJSIP/2587066@carrier")


async def drill(count: int, rate: float, down_for: float, hanging: bool, deadline: float,
                folder: Path) -> dict[str, float]:
    url = f"sqlite:///{folder / 'drill.db'}"
    healthy, broken = Receiver(0), Receiver(free_port())
    await healthy.up()
    if hanging:
        broken.hang_until = time.monotonic() + down_for
        await broken.up()
    database = await Database.open(url)
    writer = RecordWriter(database.calls)
    writer.start()
    sender = WebhookSender(database.outbox, SETTINGS)
    sender.start()
    ended: dict[str, float] = {}  # Idempotency-Key (as sent) -> when its call ended
    started = time.monotonic()
    restarted_at = 0.0
    failed = 0
    back = asyncio.get_running_loop().call_later(down_for, lambda: None if hanging else asyncio.ensure_future(
        broken.up()))
    try:
        for n in range(count):
            unit, receiver = (HEALTHY, healthy) if n % 2 == 0 else (DOWN, broken)
            record = call(n, unit, time.time())
            writer.put(record, [call_ended(receiver.url, unit[0], record, ZONE)])  # as Service._finished does
            ended[f'"call.ended:{record.linkedid}"'] = time.monotonic()
            if n == count // 2:  # the restart: stop the sender, start another on the same database
                await sender.close(grace=5)
                failed += sender.failed
                sender = WebhookSender(database.outbox, SETTINGS)
                sender.start()
                restarted_at = time.monotonic() - started
            await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
        await writer.flush()
        while time.monotonic() - started < deadline and len(healthy.seen) + len(broken.seen) < count:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # anything sent twice would arrive by now
    finally:
        back.cancel()
        await sender.close(grace=1)
        failed += sender.failed
        await writer.close()
        stored = await database.outbox.messages(limit=100_000)
        await database.close()
        await healthy.down()
        await broken.down()
    seen = {**healthy.seen, **broken.seen}
    waits = [healthy.seen[key][0] - ended[key] for key in healthy.seen]
    delivered = [m for m in stored if m.state == "delivered"]
    return {
        "sent": count, "delivered": len(delivered), "pending": sum(1 for m in stored if m.state == "pending"),
        "received": len(seen), "duplicates": sum(len(times) - 1 for times in seen.values()),
        "lost": sum(1 for key in ended if key not in seen) + len(stored) - len(delivered), "failed_attempts": failed,
        "failed_healthy": _failed(delivered, HEALTHY[0]), "failed_down": _failed(delivered, DOWN[0]),
        "restarted_at": restarted_at, "healthy_p50": statistics.median(waits) if waits else float("nan"),
        "healthy_max": max(waits, default=float("nan")),
        "healthy_last": max((t[0] for t in healthy.seen.values()), default=started) - started,
        "down_back_all": max((t[0] for t in broken.seen.values()), default=started) - started,
        "sending_took": count / rate,
    }


def _failed(delivered: list[Stored], unit: str) -> int:
    """Attempts to ``unit`` that did not deliver."""
    return sum(m.attempts - 1 for m in delivered if m.unit == unit)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="calls ending per second")
    parser.add_argument("--down", type=float, default=6.0, help="seconds the second unit is down")
    parser.add_argument("--down-as", choices=("refused", "hanging"), default="refused",
                        help="the down unit refuses connections, or takes requests and does not answer in time")
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1, help="the backoff's jitter")
    parser.add_argument("--log", action="store_true", help="show the sender's warnings")
    args = parser.parse_args()
    random.seed(args.seed)
    logging.basicConfig(level=logging.WARNING if args.log else logging.ERROR,
                        format="%(relativeCreated)8.0f ms  %(message)s")
    with tempfile.TemporaryDirectory() as folder:
        r = asyncio.run(drill(args.count, args.rate, args.down, args.down_as == "hanging", args.deadline, Path(folder)))
    print(machine_line())
    print(f"webhook settings: timeout {SETTINGS.timeout:g} s, retry {SETTINGS.retry_min:g}–{SETTINGS.retry_max:g} s")
    print(f"messages sent:       {r['sent']} ({r['sent'] - r['sent'] // 2} to {HEALTHY[0]}, healthy; "
          f"{r['sent'] // 2} to {DOWN[0]}, down ({args.down_as}) for the first {args.down:g} s) "
          f"over {r['sending_took']:.1f} s")
    print(f"sender restarted:    at {r['restarted_at']:.2f} s")
    print(f"delivered:           {r['delivered']} (marked in the outbox; {r['pending']} still pending), "
          f"{r['received']} received")
    print(f"duplicates seen:     {r['duplicates']} (the same Idempotency-Key twice at a receiver)")
    print(f"lost:                {r['lost']} (never delivered)")
    print(f"failed attempts:     {r['failed_attempts']} ({r['failed_down']} to {DOWN[0]}, "
          f"{r['failed_healthy']} to {HEALTHY[0]})")
    print(f"healthy unit:        each message {r['healthy_p50'] * 1000:.0f} ms (median), "
          f"{r['healthy_max'] * 1000:.0f} ms (max) after its call ended; the last at {r['healthy_last']:.2f} s")
    print(f"down unit:           all its messages delivered {r['down_back_all']:.2f} s after the start "
          f"({r['down_back_all'] - args.down:.2f} s after it came back)")
    return 0 if r["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
