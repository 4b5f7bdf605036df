"""A TCP proxy that drops a connection mid-request, like a phone losing its network."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class CuttingProxy:
    """Forwards to a server; the first connection that starts with `method` is cut once
    `cut_after` bytes of it have been forwarded: the server sees the stream end there, and the
    client's socket is reset."""

    def __init__(
        self, target_port: int, cut_after: int | None, rate: float, method: bytes = b"PATCH"
    ) -> None:
        self.target_port = target_port
        self.rate = rate  # bytes per second upstream: a phone's uplink, not loopback speed
        self.cut_after = cut_after
        self.method = method
        self.cut = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        this = asyncio.current_task()
        assert this is not None
        self._tasks.add(this)
        try:
            await self._forward(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        back = asyncio.create_task(self._pipe(up_reader, writer))
        self._tasks.add(back)
        forwarded, armed = 0, None
        try:
            while chunk := await reader.read(16 * 1024):
                if armed is None:
                    armed = self.cut_after is not None and chunk.startswith(self.method)
                    armed = armed and not self.cut.is_set()
                if armed and self.cut_after is not None:
                    room = self.cut_after - forwarded
                    if len(chunk) >= room:
                        up_writer.write(chunk[:room])
                        await up_writer.drain()
                        self.cut.set()
                        up_writer.close()  # the server reads an early end of the body
                        writer.transport.abort()  # the client's connection is reset
                        back.cancel()
                        return
                forwarded += len(chunk)
                up_writer.write(chunk)
                await up_writer.drain()
                await asyncio.sleep(len(chunk) / self.rate)
        except ConnectionError:
            pass
        finally:
            up_writer.close()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await back
                await up_writer.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(16 * 1024):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def cutting_proxy(
    target_port: int, cut_after: int | None, rate: float = 4 * 1024 * 1024
) -> AsyncIterator[CuttingProxy]:
    proxy = CuttingProxy(target_port, cut_after, rate)
    proxy._server = await asyncio.start_server(proxy._handle, "127.0.0.1", 0)
    try:
        yield proxy
    finally:
        proxy._server.close()
        # Every connection's sockets are closed before the test goes on: none left to the GC.
        pending = [task for task in proxy._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)
        for task in proxy._tasks:
            task.cancel()
        await asyncio.gather(*proxy._tasks, return_exceptions=True)
        await proxy._server.wait_closed()
