"""In-memory store for unit tests, with the same semantics as the real backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Callable

from storage.base import (
    DEFAULT_CHUNK_SIZE,
    Mapped,
    ObjectNotFound,
    Store,
    check_key,
    check_range,
)


class MemoryStore(Store):
    """Objects live in a dict; nothing is shared between instances."""

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.chunk_size = chunk_size
        self._objects: dict[str, bytes] = {}

    async def put(self, key: str, chunks: AsyncIterable[bytes | bytearray]) -> int:
        check_key(key)
        data = b"".join([chunk async for chunk in chunks])
        self._objects[key] = data
        return len(data)

    def get(
        self,
        key: str,
        start: int = 0,
        end: int | None = None,
        transform: Callable[[bytes], Mapped] | None = None,
    ) -> AsyncGenerator[bytes | Mapped, None]:
        check_key(key)
        check_range(start, end)
        return self._read(key, start, end, transform)

    async def _read(
        self, key: str, start: int, end: int | None, transform: Callable[[bytes], Mapped] | None
    ) -> AsyncGenerator[bytes | Mapped, None]:
        data = self._lookup(key)
        stop = len(data) if end is None else min(end, len(data))
        for pos in range(start, stop, self.chunk_size):
            chunk = data[pos : min(pos + self.chunk_size, stop)]
            yield transform(chunk) if transform else chunk
            await asyncio.sleep(0)  # behave like I/O: let other tasks run between chunks

    async def size(self, key: str) -> int:
        return len(self._lookup(check_key(key)))

    async def delete(self, key: str) -> None:
        self._objects.pop(check_key(key), None)

    async def exists(self, key: str) -> bool:
        return check_key(key) in self._objects

    async def health(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _lookup(self, key: str) -> bytes:
        try:
            return self._objects[key]
        except KeyError:
            raise ObjectNotFound(key) from None
