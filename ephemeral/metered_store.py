"""A Store that counts its backend's failures: storage/ stays dumb, the service layer observes."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Callable

from ephemeral import metrics
from storage.base import Mapped, ObjectNotFound, StorageError, Store


class MeteredStore(Store):
    def __init__(self, inner: Store, backend: str) -> None:
        self.inner = inner
        self.backend = backend
        self.chunk_size = inner.chunk_size

    def _failed(self, op: str, exc: StorageError) -> None:
        if not isinstance(exc, ObjectNotFound):  # a missing object is an answer, not a fault
            metrics.storage_error(self.backend, op)

    async def put(self, key: str, chunks: AsyncIterable[bytes | bytearray]) -> int:
        try:
            return await self.inner.put(key, chunks)
        except StorageError as exc:
            self._failed("put", exc)
            raise

    def get(
        self,
        key: str,
        start: int = 0,
        end: int | None = None,
        transform: Callable[[bytes], Mapped] | None = None,
    ) -> AsyncGenerator[bytes | Mapped, None]:
        try:
            stream = self.inner.get(key, start, end, transform)
        except StorageError as exc:
            self._failed("get", exc)
            raise
        return self._counted(stream)

    async def _counted(
        self, stream: AsyncGenerator[bytes | Mapped, None]
    ) -> AsyncGenerator[bytes | Mapped, None]:
        try:
            async for chunk in stream:
                yield chunk
        except StorageError as exc:
            self._failed("get", exc)
            raise
        finally:
            await stream.aclose()

    async def size(self, key: str) -> int:
        try:
            return await self.inner.size(key)
        except StorageError as exc:
            self._failed("size", exc)
            raise

    async def delete(self, key: str) -> None:
        try:
            await self.inner.delete(key)
        except StorageError as exc:
            self._failed("delete", exc)
            raise

    async def exists(self, key: str) -> bool:
        try:
            return await self.inner.exists(key)
        except StorageError as exc:
            self._failed("exists", exc)
            raise

    async def health(self) -> None:
        try:
            await self.inner.health()
        except StorageError as exc:
            self._failed("health", exc)
            raise

    async def close(self) -> None:
        await self.inner.close()
