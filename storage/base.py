"""The byte-store interface every backend implements, its errors and shared helpers."""

from __future__ import annotations

import asyncio
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

KEY_MAX_LEN = 256
DEFAULT_CHUNK_SIZE = 1 << 20
# No dots at all: rules out "..", hidden files and any name a backend uses for its own bookkeeping.
_KEY_RE = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*")

log = logging.getLogger("storage")

# A generator rather than an iterator so that callers can aclose() it, e.g. via
# contextlib.aclosing, and release a file or connection as soon as a download stops.
ByteStream = AsyncGenerator[bytes, None]
# `get(..., transform)` applies it to each chunk in the thread that read it: CPU work on the
# bytes (decryption) then costs no second thread hop, and the event loop never runs it.
Mapped = TypeVar("Mapped")


class StorageError(Exception):
    """Backend failure (transient or not); callers map it to 503."""


class ObjectNotFound(StorageError):
    """No object is stored under the key."""


class InvalidKey(StorageError, ValueError):
    """The key fails the key grammar or the path jail."""


def check_key(key: str) -> str:
    """Return `key` if it is a valid object key, else raise InvalidKey."""
    if not isinstance(key, str) or len(key) > KEY_MAX_LEN or not _KEY_RE.fullmatch(key):
        raise InvalidKey(f"invalid storage key {key!r:.80}")
    return key


def check_range(start: int, end: int | None) -> None:
    """Reject ranges no caller should build: they are bugs, not missing data."""
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range [{start}, {end})")


class Store(ABC):
    """A dumb store of immutable byte objects; one contract suite covers every backend.

    `put` is atomic: the new object exists whole or not at all. If put raises (the chunk
    iterator's own exception passes through unchanged), nothing partial is left behind (no temp
    file, no multipart upload) and the key keeps its previous object, unless the failure came
    after the commit itself (a cancellation while committing), which leaves the whole new one.
    Cleanup has finished when put raises; should a second cancellation interrupt the wait,
    cleanup still runs to the end and close() waits for it.

    `get` yields bytes [start, end) clamped to the object's size (a range starting at or past
    the end is empty) in chunks of at most `chunk_size` bytes, each passed through `transform`
    (when given) before it is yielded; the transform's exceptions pass through unchanged.
    InvalidKey and ValueError are
    raised at the call, ObjectNotFound at the first iteration. A reader that stops early should
    aclose() the stream to release its file or connection at once.
    """

    chunk_size: int = DEFAULT_CHUNK_SIZE

    @property
    def first_chunk_size(self) -> int:
        """The first chunk of a read is a sixteenth of the rest: a viewer's first byte does not
        wait for a whole chunk to be read (and decrypted). With the service's chunk of 16
        sealed segments, it is exactly one segment, so the following reads stay aligned."""
        return max(1, self.chunk_size // 16)

    @abstractmethod
    async def put(self, key: str, chunks: AsyncIterable[bytes | bytearray]) -> int:
        """Stream `chunks` into a new object under `key` (replacing any); return its size."""

    @abstractmethod
    def get(
        self,
        key: str,
        start: int = 0,
        end: int | None = None,
        transform: Callable[[bytes], Mapped] | None = None,
    ) -> AsyncGenerator[bytes | Mapped, None]:
        """Yield the bytes [start, end) of the object; end=None reads to the end."""

    @abstractmethod
    async def size(self, key: str) -> int:
        """Return the object's size in bytes; ObjectNotFound if missing."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object (every version of it); a missing key is not an error."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """Tell whether an object is stored under `key`."""

    @abstractmethod
    async def health(self) -> None:
        """Raise StorageError unless the backend is usable."""

    @abstractmethod
    async def close(self) -> None:
        """Wait for pending cleanups and release the backend's resources."""


class Cleanups:
    """Runs cleanups to completion even if the caller is cancelled again; close() awaits them.

    Work already handed to a thread cannot be interrupted, so a cleanup first waits for the
    step in flight (e.g. an UploadPart) and only then releases what it holds (e.g. aborts).
    """

    def __init__(self, executor: Executor | None = None) -> None:
        self._executor = executor
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, step: asyncio.Future[Any] | None, fn: Callable[[], object]) -> None:
        task = asyncio.ensure_future(self._run(step, fn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.shield(task)

    async def _run(self, step: asyncio.Future[Any] | None, fn: Callable[[], object]) -> None:
        if step is not None:
            await asyncio.wait([step])
            if not step.cancelled():
                step.exception()  # its failure is already reported; mark it retrieved
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except Exception:
            log.warning("storage cleanup failed", exc_info=True)

    async def wait(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
