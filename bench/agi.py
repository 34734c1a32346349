"""FastAGI route decisions at 200 calls a second against a running ``cti serve``.

Each call is what Asterisk's res_agi does for ``AGI(agi://…/route,NUMBER,LINKEDID)``:
connect, send the agi_ environment, answer every command at once with
``200 result=…`` until cti closes the session. Numbers are a mix of Yuncheng's map:
12345 itself, remote seats, utilities, merged (retired) and excluded lines. Reported:
the time from sending the environment to cti's first command (the decision is made
by then) and to the end of the session, p50 and p99, measured only after a warm-up.

    .venv/bin/python bench/agi.py [--rate 200] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe  # noqa: E402

NUMBERS = ["12345"] * 6 + ["12369", "12315", "2587777", "6363236", "12351", "12388", "12339", "96119"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(number: str, n: int) -> bytes:
    uniqueid = f"{1795290000 + n // 1000}.{n}"
    lines = ["agi_network: yes", "agi_network_script: route", "agi_request: agi://127.0.0.1/route",
             f"agi_channel: PJSIP/carrier-{n:08x}", "agi_language: zh", "agi_type: PJSIP",
             f"agi_uniqueid: {uniqueid}", "agi_version: 22.10.1", f"agi_callerid: 138{n:08d}",
             "agi_calleridname: Citizen", "agi_callingpres: 0", "agi_callingani2: 0", "agi_callington: 0",
             "agi_callingtns: 0", f"agi_dnid: {number}", "agi_rdnis: unknown", "agi_context: from-carrier",
             f"agi_extension: {number}", "agi_priority: 5", "agi_enhanced: 0.0", "agi_accountcode: ",
             "agi_threadid: 140000000000000", f"agi_arg_1: {number}", f"agi_arg_2: {uniqueid}"]
    return ("\n".join(lines) + "\n\n").encode()


async def one_call(port: int, number: str, n: int) -> tuple[float, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    writer.write(environment(number, n))
    first = None
    while line := await reader.readline():
        if first is None:
            first = time.perf_counter() - start
        command = line.decode().strip().upper()
        writer.write(b"200 result=0\n" if command.startswith(("ANSWER", "STREAM", "GET DATA")) else
                     b"200 result=1\n")
    total = time.perf_counter() - start
    writer.close()
    return first or total, total


async def load(port: int, rate: float, seconds: float, warmup: float) -> tuple[list[float], list[float]]:
    rng = random.Random(1)
    tasks: list[asyncio.Task[tuple[float, float]]] = []
    measured: list[asyncio.Task[tuple[float, float]]] = []
    loop = asyncio.get_running_loop()
    begin = loop.time()
    n = 0
    while loop.time() - begin < warmup + seconds:
        due = begin + n / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        task = asyncio.create_task(one_call(port, rng.choice(NUMBERS), n))
        tasks.append(task)
        if loop.time() - begin >= warmup:
            measured.append(task)
        n += 1
    results = await asyncio.gather(*measured)
    await asyncio.gather(*tasks)
    return [r[0] for r in results], [r[1] for r in results]


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1] if len(values) > 1 else values[0]


# The baseline: the least a FastAGI server can do (read the environment, send one command, read the
# reply, hang up), in a process of its own like cti's, measured by the same client in the same run.
BARE_SERVER = """
import asyncio, sys
async def session(reader, writer):
    try:
        await reader.readuntil(b"\\n\\n")
    except asyncio.IncompleteReadError:  # the probe that waits for the port
        return writer.close()
    writer.write(b"SET VARIABLE CTI_NEXT queue\\n")
    await reader.readline()
    writer.close()
async def main():
    server = await asyncio.start_server(session, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
asyncio.run(main())
"""


async def wait_listening(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)


@contextmanager
def cti_serve(folder: str, env: dict[str, str], tree: Path = ROOT) -> Iterator[None]:
    """``cti serve`` of checkout ``tree`` in its own process, its errors kept in ``folder`` and shown
    when it is stopped."""
    path = Path(folder) / "serve.log"
    with path.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "cti.cli", "--log-level", "error", "serve"], cwd=tree,
                                  env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            yield
        finally:
            server.terminate()
            server.wait(10)
    errors = path.read_text()
    if errors:
        print(f"cti serve said:\n{errors[-2000:]}")


async def bare(rate: float, seconds: float, warmup: float) -> tuple[list[float], list[float]]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)])
    try:
        await wait_listening(port)
        return await load(port, rate, seconds, warmup)
    finally:
        server.terminate()
        server.wait(10)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "CTI_AGI_PORT": str(port), "CTI_WEB_PORT": str(free_port()),
               "CTI_AMI_PORT": str(free_port()), "CTI_DB_URL": f"sqlite:///{folder}/agi.db"}
        with cti_serve(folder, env):
            await wait_listening(port)
            decision, session = await load(port, args.rate, args.seconds, args.warmup)
    floor, _ = await bare(args.rate, args.seconds, args.warmup)
    print(f"machine: {describe()}")
    print(f"{len(decision):,} route requests at {args.rate:.0f}/s over {args.seconds:.0f} s (after {args.warmup:.0f} s "
          f"warm-up), numbers: {', '.join(sorted(set(NUMBERS)))}")
    for name, values in (("decision (first command)", decision), ("whole session", session),
                         ("baseline: bare server", floor)):
        print(f"{name:26} p50 {percentile(values, 50) * 1000:6.2f} ms   p99 {percentile(values, 99) * 1000:6.2f} ms   "
              f"max {max(values) * 1000:6.2f} ms")
    print(f"decision p99 / bare server p99: {percentile(decision, 99) / percentile(floor, 99):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
