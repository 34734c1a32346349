"""FastAGI route decisions at 200 calls a second while 100 wrong sign-ins hammer the API.

``cti serve`` runs in its own process, as in bench/agi.py, with one supervisor user. The
same AGI load as bench/agi.py (what res_agi does for ``AGI(agi://…/route,…)``) runs
three times in one run, each with a warm-up before the measured window:

* no flood: the baseline;
* one address: 100 clients on 127.0.0.1 post wrong passwords for the supervisor to
  ``POST /api/session``, each sending the next the moment its answer arrives (keep-alive),
  for the whole phase; the throttle soon answers them 429 without checking;
* fresh addresses: the same 100 clients, each attempt from a new loopback address
  (127.x.y.z) for a new unknown user id, so that no throttle key ever repeats and every
  attempt costs a password check (scrypt) unless the hashing queue is full (503).

Reported per phase: route decision p50, p99 and max (time to cti's first FastAGI command),
and the sign-in answers by status. ``--serve-from DIR`` runs the ``cti`` of another
checkout (e.g. a ``git worktree`` of an older commit) for a before/after.

    .venv/bin/python bench/login.py [--rate 200] [--seconds 20] [--warmup 5] [--serve-from DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.agi import cti_serve, free_port, load, percentile, wait_listening  # noqa: E402
from bench.machine import describe  # noqa: E402

FLOOD = 100  # concurrent wrong sign-ins
USER, PASSWORD = "sup", "the supervisor's password"


async def post_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, user: str,
                       keep_alive: bool) -> int:
    """One POST /api/session with a wrong password on an open connection; its status."""
    body = json.dumps({"user": user, "password": "not the password"}).encode()
    writer.write(b"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\nConnection: %s\r\n\r\n%s"
                 % (len(body), b"keep-alive" if keep_alive else b"close", body))
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    await reader.readexactly(length)
    return status


async def one_address(port: int, answers: Counter[int], stop: asyncio.Event) -> None:
    """A client on 127.0.0.1 guessing the supervisor's password on a kept-alive connection."""
    while not stop.is_set():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not stop.is_set():
                answers[await post_session(reader, writer, USER, keep_alive=True)] += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            answers[0] += 1  # closed by cti: connect again
        finally:
            writer.close()


ADDRESSES = (f"127.{a}.{b}.{c}" for a, b, c in itertools.product(range(1, 255), range(256), range(1, 255)))
GUESSES = itertools.count()


async def fresh_addresses(port: int, answers: Counter[int], stop: asyncio.Event) -> None:
    """A client whose every attempt comes from a new address for a new user id."""
    while not stop.is_set():
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(next(ADDRESSES), 0))
        try:
            answers[await post_session(reader, writer, f"guess{next(GUESSES)}", keep_alive=False)] += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            answers[0] += 1
        finally:
            writer.close()


Client = Callable[[int, Counter[int], asyncio.Event], Coroutine[Any, Any, None]]


async def phase(agi_port: int, web_port: int, client: Client | None, args: argparse.Namespace
                ) -> tuple[list[float], Counter[int], float]:
    """The AGI load for warm-up + seconds, with ``FLOOD`` copies of ``client`` throughout; the
    decision times, the sign-in answers by status, and how long the flood ran."""
    answers: Counter[int] = Counter()
    stop = asyncio.Event()
    began = asyncio.get_running_loop().time()
    flood: list[asyncio.Task[None]] = [asyncio.create_task(client(web_port, answers, stop))
                                       for _ in range(FLOOD)] if client else []
    await asyncio.sleep(0.5 if client else 0)  # the flood under way before the first call
    try:
        decision, _ = await load(agi_port, args.rate, args.seconds, args.warmup)
    finally:
        stop.set()
        await asyncio.gather(*flood)
    return decision, answers, asyncio.get_running_loop().time() - began


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--serve-from", type=Path, default=ROOT, help="the checkout whose cti to run")
    args = parser.parse_args()
    tree = args.serve_from.resolve()
    agi_port, web_port = free_port(), free_port()
    phases: list[tuple[str, Client | None]] = [
        ("no flood", None), (f"{FLOOD} wrong sign-ins, one address", one_address),
        (f"{FLOOD} wrong sign-ins, fresh addresses", fresh_addresses)]
    results: list[tuple[str, list[float], Counter[int], float]] = []
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "CTI_AGI_PORT": str(agi_port), "CTI_WEB_PORT": str(web_port),
               "CTI_AMI_PORT": str(free_port()), "CTI_DB_URL": f"sqlite:///{folder}/login.db"}
        subprocess.run([sys.executable, "-m", "cti.cli", "user", "add", USER, "--role", "supervisor",
                        "--password-stdin"], cwd=tree, env=env, input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True)
        with cti_serve(folder, env, tree):
            await wait_listening(agi_port)
            await wait_listening(web_port)
            for name, client in phases:
                results.append((name, *await phase(agi_port, web_port, client, args)))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True,
                            text=True).stdout.strip()
    print(f"machine: {describe()}")
    print(f"cti of {tree} at {commit or '?'}; route requests at {args.rate:.0f}/s, {args.seconds:.0f} s measured "
          f"per phase after {args.warmup:.0f} s warm-up")
    print(f"{'phase':40} {'decision p50':>12} {'p99':>10} {'max':>10}   sign-in answers/s by status")
    for name, decision, answers, lasted in results:
        spread = ", ".join(f"{status or 'failed'}: {count / lasted:,.0f}"
                           for status, count in sorted(answers.items())) or "—"
        print(f"{name:40} {percentile(decision, 50) * 1000:9.2f} ms {percentile(decision, 99) * 1000:7.2f} ms "
              f"{max(decision) * 1000:7.2f} ms   {spread}")


if __name__ == "__main__":
    asyncio.run(main())
