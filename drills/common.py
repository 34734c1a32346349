"""What the fault drills share: free ports, a TCP proxy that fails on demand, the summary's machine line."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from bench.machine import describe

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port nothing listens on now (bound to port 0 and released): for a server started later."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def machine_line() -> str:
    return f"machine: {describe()}"


class TcpProxy:
    """A TCP relay on 127.0.0.1 to ``host:port`` that can fail as a network does.

    ``cut()`` drops every connection through it, both sides at once (a reset, as a broken link
    or a restarted middlebox gives); ``down()`` also stops listening, so that new connections are
    refused, until ``up()`` listens again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.connections = 0  # relayed connections opened so far
        self.opened_at: list[float] = []  # time.monotonic() of each
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def up(self) -> int:
        """Listen (again, on the same port after a ``down``); returns the port."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def cut(self) -> int:
        """Drop every open connection (both sides); returns how many were dropped."""
        pairs = list(self._pairs)
        for client, server in pairs:
            for writer in (client, server):
                writer.transport.abort()
        self._pairs.clear()
        return len(pairs)

    async def down(self) -> int:
        """Refuse new connections and drop the open ones; returns how many were dropped."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        dropped = self.cut()
        if server is not None:
            await server.wait_closed()
        return dropped

    async def close(self) -> None:
        await self.down()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, upstream)
        self._pairs.add(pair)
        self.connections += 1
        self.opened_at.append(time.monotonic())
        try:
            await asyncio.gather(_pipe(reader, upstream), _pipe(upstream_reader, writer))
        finally:
            self._pairs.discard(pair)
            for end in pair:
                end.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        if not writer.transport.is_closing():
            writer.transport.abort()
