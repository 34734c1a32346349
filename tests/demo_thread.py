"""``cti demo --rate 0`` in a thread of its own (its own event loop), for tests that speak to it
from synchronous code, as schemathesis does: the simulated Asterisk 22, a real cti on a fresh
SQLite database in a temporary folder, the desk on a free port."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cti.demo import Demo, DemoOptions
from cti.settings import Settings, WebSettings
from cti.sim.phones import Citizen
from cti.web.api import CONTEXT
from tests.conftest import REPO_PATHS

T = TypeVar("T")


class DemoThread:
    """Start with ``with DemoThread(folder) as demo``; ``demo.base`` is the desk's address and
    ``demo.run(coroutine)`` runs a coroutine on the demo's loop and returns its result."""

    def __init__(self, folder: Path, seed: int = 7, boot_timeout: float = 30.0) -> None:
        self.folder = folder
        self.demo = Demo(Settings(web=WebSettings(port=0), paths=REPO_PATHS),
                         DemoOptions(rate=0, scale=0.02, seed=seed, workdir=folder, transfer_share=0))
        self.base = ""
        self._boot_timeout = boot_timeout
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="cti-demo", daemon=True)

    def __enter__(self) -> DemoThread:
        self._thread.start()
        if not self._ready.wait(self._boot_timeout):
            raise TimeoutError("the demo did not start")
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the demo did not stop"

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # told to the test thread
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ready = asyncio.Event()
        running = asyncio.create_task(self.demo.run(self._stop, ready=ready))
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait([running, waiting], return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()
        waiting.cancel()
        assert self.demo.service is not None
        self.base = f"http://127.0.0.1:{self.demo.service.web_port}"
        self._ready.set()
        await running

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def call(self, function: Callable[[], T]) -> T:
        """A function run on the demo's loop (what touches its state)."""
        async def wrapped() -> T:
            return function()
        return self.run(wrapped())

    # -- what the tests set up ------------------------------------------------------------------

    def token(self, user: str, role: str, *, agent: str | None = None, unit: str | None = None) -> str:
        """A token of a new user (the demo's agents 1001 and 1002 exist already: their own tokens)."""
        service = self.demo.service
        assert service is not None
        users = service.database.users

        async def make() -> str:
            if await users.get(user) is None:
                await users.add(user, user, role, None, agent, unit)
            return await users.issue_token(user, "test", None)
        return self.run(make())

    def citizens(self, calls: Sequence[tuple[str, str]]) -> None:
        """Citizens call (number dialled, caller): they are answered by the robots and hang up."""
        for number, caller in calls:
            self.call(lambda n=number, c=caller: self.demo.world.call(n, Citizen(c, "市民", talk_seconds=20,
                                                                                patience=600)))

    def records(self, count: int, timeout: float = 20.0) -> None:
        """Wait until ``count`` call records are stored."""
        service = self.demo.service
        assert service is not None

        async def enough() -> None:
            for _ in range(int(timeout / 0.05)):
                if len(await service.database.calls.calls(limit=count)) >= count:
                    return
                await asyncio.sleep(0.05)
            raise TimeoutError(f"fewer than {count} call records")
        self.run(enough(), timeout + 5)

    def quick_refusals(self) -> None:
        """Sign-ins refused for too many failures are answered at once (the service holds them a second)."""
        service = self.demo.service
        assert service is not None

        def set_hold() -> None:
            service.web[CONTEXT].refusal_hold = 0.0
        self.call(set_hold)
