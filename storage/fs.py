"""Filesystem store: one 0600 file per object under a 0700 root, written atomically."""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

from storage.base import (
    DEFAULT_CHUNK_SIZE,
    Cleanups,
    InvalidKey,
    Mapped,
    ObjectNotFound,
    StorageError,
    Store,
    check_key,
    check_range,
)

T = TypeVar("T")

# Keys cannot contain dots, so these names never collide with an object's path: the temp dir
# lives beside the objects (same filesystem, so os.replace is atomic), and directory segments
# get a suffix so that "a" and "a/b" can both be objects, as on S3.
TMP_DIR = ".tmp"
DIR_SUFFIX = ".d"
# Other processes sharing the root may be mid-put; a temp file idle this long is abandoned.
STALE_AFTER = 3600.0


class FsStore(Store):
    """File I/O runs in worker threads, one hop per chunk_size bytes.

    Only the constructor, called once at startup, blocks: it creates the root and removes
    stale temp files.
    """

    def __init__(self, root: Path, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.chunk_size = chunk_size
        try:
            Path(root).mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(root, 0o700)
            self.root = Path(root).resolve(strict=True)
            self._tmp = self.root / TMP_DIR
            self._tmp.mkdir(mode=0o700, exist_ok=True)
            self._remove_stale()
        except OSError as exc:
            raise StorageError(f"cannot use storage root {root}: {exc}") from exc
        self._cleanups = Cleanups()

    async def put(self, key: str, chunks: AsyncIterable[bytes | bytearray]) -> int:
        check_key(key)
        # The writer's pid in the name: a later start can tell a dead writer's leftovers.
        temp = _Temp(self._tmp / f"{os.getpid()}-{secrets.token_hex(16)}.part")
        step = _run(temp.open)
        total = 0
        try:
            await _settled(step)
            batch: list[bytes | bytearray] = []
            pending = 0
            async for chunk in chunks:
                batch.append(chunk)
                pending += len(chunk)
                if pending >= self.chunk_size:  # one thread hop per chunk_size, however fed
                    # One write in flight, in order: the next batch gathers while it runs.
                    await _settled(step)
                    step = _run(temp.write, batch)
                    total += pending
                    batch, pending = [], 0
            await _settled(step)
            step = _run(self._commit, temp, key, batch)
            await _settled(step)
        except BaseException:
            await self._cleanups.run(step, temp.discard)
            raise
        return total + pending

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
        reader = _Reader(key, transform)
        step: asyncio.Future[Any] = _run(reader.open, self._jailed(key), start, end)
        try:
            remaining: int = await _settled(step)
            want = self.first_chunk_size
            while remaining > 0:
                size, want = min(want, remaining), self.chunk_size
                step = _run(reader.read, size)
                data = await _settled(step)
                remaining -= size
                yield data
        finally:
            await self._cleanups.run(step, reader.close)

    async def size(self, key: str) -> int:
        return await _settled(_run(_size, self._jailed(key), key))

    async def delete(self, key: str) -> None:
        await _settled(_run(self._delete, self._jailed(key)))

    async def exists(self, key: str) -> bool:
        return await _settled(_run(_is_file, self._jailed(key)))

    async def health(self) -> None:
        probe = _Temp(self._tmp / f"health-{secrets.token_hex(8)}")
        step = _run(probe.open)
        try:
            await _settled(step)
        finally:
            await self._cleanups.run(step, probe.discard)

    async def close(self) -> None:
        await self._cleanups.wait()

    def _jailed(self, key: str) -> Callable[[], Path]:
        """Map `key` to its file; the returned function checks the jail in a worker thread."""
        *dirs, name = check_key(key).split("/")
        path = self.root.joinpath(*(d + DIR_SUFFIX for d in dirs), name)

        def jailed() -> Path:
            # The grammar already forbids "..", so only a symlink planted under root can escape.
            try:
                inside = path.resolve().is_relative_to(self.root)
            except RuntimeError:  # symlink loop
                inside = False
            if not inside:
                raise InvalidKey(f"{key}: path escapes the storage root")
            return path

        return jailed

    def _commit(self, temp: _Temp, key: str, batch: list[bytes | bytearray]) -> None:
        temp.write(batch)
        assert temp.file is not None
        temp.file.flush()
        os.fsync(temp.file.fileno())
        temp.file.close()
        temp.file = None
        path = self._jailed(key)()
        for attempt in range(3):
            try:
                self._make_dirs(path.parent)
                os.replace(temp.path, path)
                break
            except FileNotFoundError:  # a concurrent delete pruned a directory we just made
                if attempt == 2:
                    raise
        _fsync_dir(path.parent)

    def _make_dirs(self, directory: Path) -> None:
        missing: list[Path] = []
        while directory != self.root and not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for path in reversed(missing):
            with suppress(FileExistsError):
                path.mkdir(mode=0o700)
            _fsync_dir(path.parent)

    def _delete(self, path_fn: Callable[[], Path]) -> None:
        path = path_fn()
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)  # the unlink is durable once delete returns
        # Prune emptied directories so a long-lived root does not keep one per media forever.
        directory = path.parent
        while directory != self.root:
            try:
                directory.rmdir()
            except OSError:  # not empty, or pruned by a concurrent delete
                return
            directory = directory.parent

    def _remove_stale(self) -> None:
        """Temp files of writers that died (a SIGKILL mid-put), or older than STALE_AFTER."""
        cutoff = time.time() - STALE_AFTER
        for entry in os.scandir(self._tmp):
            with suppress(FileNotFoundError):
                stat = entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    continue
                if stat.st_mtime < cutoff or not _writer_alive(entry.name):
                    os.unlink(entry.path)


def _writer_alive(name: str) -> bool:
    """Names start with the writer's pid; a name without one only ages out."""
    pid = name.split("-", 1)[0]
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True


class _Temp:
    """A temp file being filled; methods run in worker threads, one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: io.BufferedWriter | None = None

    def open(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        self.file = os.fdopen(os.open(self.path, flags, 0o600), "wb")

    def write(self, batch: list[bytes | bytearray]) -> None:
        assert self.file is not None
        for chunk in batch:
            self.file.write(chunk)

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        with suppress(FileNotFoundError):
            os.unlink(self.path)


class _Reader:
    """An open object file; methods run in worker threads, one at a time."""

    def __init__(self, key: str, transform: Callable[[bytes], Any] | None) -> None:
        self.key = key
        self.transform = transform
        self.file: io.FileIO | None = None

    def open(self, path: Callable[[], Path], start: int, end: int | None) -> int:
        """Open and seek to `start`; return how many bytes the clamped range holds."""
        try:
            self.file = io.FileIO(path(), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(self.key) from None
        size = os.fstat(self.file.fileno()).st_size
        stop = size if end is None else min(end, size)
        pos = min(start, stop)
        self.file.seek(pos)
        return stop - pos

    def read(self, n: int) -> Any:
        """Exactly n bytes (the caller never asks past the clamped range), transformed."""
        assert self.file is not None
        data = self.file.read(n) or b""
        if len(data) < n:  # POSIX allows short reads (network filesystems, signals)
            parts, got = [data], len(data)
            while got < n:
                more = self.file.read(n - got)
                if not more:
                    raise StorageError(f"{self.key}: file shrank while being read")
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        return self.transform(data) if self.transform else data

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _is_file(path: Callable[[], Path]) -> bool:
    return path().is_file()


def _size(path: Callable[[], Path], key: str) -> int:
    try:
        return path().stat().st_size
    except FileNotFoundError:
        raise ObjectNotFound(key) from None


def _run(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def _settled(step: Awaitable[T]) -> T:
    """Await a thread step; shielded so a cancelled caller can still wait for it in cleanup."""
    try:
        return await asyncio.shield(step)
    except OSError as exc:
        raise StorageError(f"filesystem error: {exc}") from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
