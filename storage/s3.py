"""S3 store: boto3 on a bounded thread pool owned by the store, never on the event loop."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from storage.base import (
    DEFAULT_CHUNK_SIZE,
    Cleanups,
    Mapped,
    ObjectNotFound,
    StorageError,
    Store,
    check_key,
    check_range,
    log,
)
from storage.s3_ops import MultipartUpload, bucket_problems, delete_object, error_code

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

T = TypeVar("T")

MIN_PART_SIZE = 5 << 20  # S3 rejects smaller non-final parts
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})

# A client built from a fresh session re-reads botocore's JSON models (~0.2 s); share one
# session. Sessions are not thread-safe, clients are, hence the lock around client creation.
_session_lock = threading.Lock()
_sessions: list[boto3.session.Session] = []


class S3Store(Store):
    """Any S3-compatible store; build it with `await S3Store.open(...)` to vet the bucket."""

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "",
        max_workers: int = 8,
        part_size: int = 8 << 20,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        allow_unsafe_bucket: bool = False,
    ) -> None:
        if part_size < MIN_PART_SIZE or chunk_size <= 0 or max_workers <= 0:
            raise ValueError("need part_size >= 5 MiB, chunk_size > 0 and max_workers > 0")
        self.bucket, self.prefix, self.chunk_size = bucket, prefix, chunk_size
        self.part_size, self.allow_unsafe_bucket = part_size, allow_unsafe_bucket
        config = Config(
            signature_version="s3v4",
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=5,
            read_timeout=30,
            # A download holds its connection between chunks, but a worker only during a read.
            max_pool_connections=max(64, max_workers),
            # MinIO and Ceph deployments rarely have wildcard DNS for virtual-host buckets.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            # EMS1 authenticates every segment already, and the flexible checksums botocore
            # sends by default since 1.36 are rejected by several S3-compatible servers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        with _session_lock:
            if not _sessions:
                _sessions.append(boto3.session.Session())
            self._client: S3Client = _sessions[0].client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=config,
            )
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="s3-store")
        self._cleanups = Cleanups(self._pool)
        self._closed = False

    @classmethod
    async def open(
        cls,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "",
        max_workers: int = 8,
        part_size: int = 8 << 20,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        allow_unsafe_bucket: bool = False,
    ) -> S3Store:
        """Build the store off the event loop, then refuse an unsafe bucket (check_bucket)."""
        store = await asyncio.to_thread(
            cls,
            bucket,
            endpoint_url=endpoint_url,
            region=region,
            access_key=access_key,
            secret_key=secret_key,
            prefix=prefix,
            max_workers=max_workers,
            part_size=part_size,
            chunk_size=chunk_size,
            allow_unsafe_bucket=allow_unsafe_bucket,
        )
        try:
            await store.check_bucket()
        except BaseException:
            await store.close()
            raise
        return store

    async def check_bucket(self) -> None:
        """Raise StorageError if deleted objects could survive in the bucket, unless allowed."""
        problems = await self._call(None, bucket_problems, self._client, self.bucket, self.prefix)
        if not problems:
            return
        message = f"bucket {self.bucket!r} is unsafe for view-once media: " + "; ".join(problems)
        if not self.allow_unsafe_bucket:
            raise StorageError(message + " (set allow_unsafe_bucket to override)")
        log.warning("%s (allowed by allow_unsafe_bucket)", message)

    async def put(self, key: str, chunks: AsyncIterable[bytes | bytearray]) -> int:
        name = self._name(key)
        upload = MultipartUpload(self._client, self.bucket, name)
        buf = bytearray()
        total = 0
        step: asyncio.Future[None] | None = None  # at most one request in flight
        try:
            async for chunk in chunks:
                buf += chunk
                total += len(chunk)
                while len(buf) > self.part_size:  # exactly part_size still fits one PutObject
                    part = bytes(buf[: self.part_size])
                    del buf[: self.part_size]
                    if step is not None:  # a part uploads while the next one is buffered
                        await self._settled(step)
                    step = self._step(upload.send, part)
            if step is None:
                step = self._step(self._put_object, name, bytes(buf))
            else:
                await self._settled(step)
                step = self._step(upload.finish, bytes(buf))  # never empty: see the loop
            await self._settled(step)
        except BaseException:
            await self._cleanups.run(step, upload.abort)
            raise
        return total

    def get(
        self,
        key: str,
        start: int = 0,
        end: int | None = None,
        transform: Callable[[bytes], Mapped] | None = None,
    ) -> AsyncGenerator[bytes | Mapped, None]:
        name = self._name(key)
        check_range(start, end)
        return self._read(key, name, start, end, transform)

    async def _read(
        self,
        key: str,
        name: str,
        start: int,
        end: int | None,
        transform: Callable[[bytes], Mapped] | None,
    ) -> AsyncGenerator[bytes | Mapped, None]:
        if end == start:  # a Range cannot be empty; only existence matters
            await self.size(key)
            return
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        opened = self._step(self._client.get_object, **args)
        step: asyncio.Future[Any] = opened

        def release() -> None:  # runs once the request in flight has settled
            if not opened.cancelled() and opened.exception() is None:
                opened.result()["Body"].close()

        try:
            try:
                response = await self._settled(opened, key)
            except _InvalidRange:  # the range starts at or past the end: empty if it exists
                await self.size(key)
                return
            if "Range" in args and "ContentRange" not in response:
                raise StorageError("the S3 backend ignored the Range header")
            body, want = response["Body"], self.first_chunk_size
            while True:
                step = self._step(_read_chunk, body, want, transform)
                want = self.chunk_size
                data = await self._settled(step, key)
                if data is None:
                    break
                yield data
        finally:
            await self._cleanups.run(step, release)

    async def size(self, key: str) -> int:
        name = self._name(key)
        head = await self._call(key, self._client.head_object, Bucket=self.bucket, Key=name)
        return head["ContentLength"]

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except ObjectNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        await self._call(key, delete_object, self._client, self.bucket, self._name(key))

    async def health(self) -> None:
        await self._call(None, self._client.head_bucket, Bucket=self.bucket)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._cleanups.wait()
            await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def _put_object(self, name: str, body: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=name, Body=body)

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _step(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        call = functools.partial(fn, *args, **kwargs)
        return asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def _settled(self, step: asyncio.Future[T], key: str | None = None) -> T:
        """Await a pool step; shielded so a cancelled caller can still wait for it in cleanup."""
        with _errors(key):
            return await asyncio.shield(step)

    async def _call(self, key: str | None, fn: Callable[..., T], /, *args: Any, **kw: Any) -> T:
        """Run one blocking call on the pool; `key` is set for requests about an object."""
        call = functools.partial(fn, *args, **kw)
        with _errors(key):
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)


def _read_chunk(body: Any, size: int, transform: Callable[[bytes], Any] | None) -> Any:
    """The next chunk of a GET's body, transformed in this same pool thread; None at the end."""
    data: bytes = body.read(size)
    if not data:
        return None
    return transform(data) if transform else data


class _InvalidRange(StorageError):
    """The requested range starts at or past the end of the object."""


@contextmanager
def _errors(key: str | None) -> Iterator[None]:
    """Map botocore failures to the storage errors; `key` is set for object requests."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if key is not None and code in _NOT_FOUND:
            raise ObjectNotFound(key) from exc
        if code == "InvalidRange":
            raise _InvalidRange(code) from exc
        raise StorageError(f"S3 {exc.operation_name} failed: {code or exc}") from exc
    except (BotoCoreError, OSError) as exc:
        raise StorageError(f"S3 request failed: {exc}") from exc
