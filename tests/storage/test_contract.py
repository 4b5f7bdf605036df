"""One contract suite, run against every storage backend: memory, fs and S3 (moto over HTTP)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from storage import FsStore, InvalidKey, MemoryStore, ObjectNotFound, S3Store, StorageError, Store
from tests.fixtures.s3 import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY
from tests.storage.util import CHUNK, PART, Boom, failing_feed, feed, payload, read, stalled_feed

BAD_KEYS = [
    "",
    "../x",
    "/abs",
    "a//b",
    "a/",
    "a.b",
    ".tmp",
    "a/../b",
    "a b",
    "ä",
    "a\x00",
    "k" * 257,
]


@pytest.fixture(params=["memory", "fs", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: Store
    if request.param == "memory":
        backend = MemoryStore(chunk_size=CHUNK)
    elif request.param == "fs":
        backend = FsStore(tmp_path / "blobs", chunk_size=CHUNK)
    else:
        endpoint, bucket = request.getfixturevalue("s3_bucket")
        backend = await S3Store.open(
            bucket,
            endpoint_url=endpoint,
            region=S3_REGION,
            access_key=S3_ACCESS_KEY,
            secret_key=S3_SECRET_KEY,
            part_size=PART,
            chunk_size=CHUNK,
        )
    yield backend
    await backend.close()


@pytest.fixture
def leftovers(store: Store, request: pytest.FixtureRequest) -> Callable[[], list[str]]:
    """Whatever a failed put could leave behind: temp files, unfinished multipart uploads."""
    if isinstance(store, FsStore):
        return lambda: os.listdir(store.root / ".tmp")
    if isinstance(store, S3Store):
        client = request.getfixturevalue("s3_client")
        return lambda: [
            upload["Key"]
            for upload in client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
        ]
    return list


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, PART, PART + 1, 2 * PART + 12_345]
)
async def test_round_trip(store: Store, size: int) -> None:
    data = payload(size)
    assert await store.put("media/abc/obj-1", feed(data)) == size
    assert await read(store, "media/abc/obj-1") == data
    assert await store.size("media/abc/obj-1") == size
    assert await store.exists("media/abc/obj-1")


async def test_ranges(store: Store) -> None:
    data = payload(3 * CHUNK + 17)
    n = len(data)
    await store.put("k", feed(data, step=7_777))
    cases = [(0, None), (0, n), (0, 1), (1, 2), (5, n - 5), (CHUNK, 2 * CHUNK + 1), (n - 1, None)]
    cases += [(n, None), (n, n), (7, 7), (0, 0), (n + 5, None), (0, n + 100), (n - 3, n + 3)]
    for start, end in cases:
        assert await read(store, "k", start, end) == data[start:end], (start, end)


async def test_ranges_of_empty_object(store: Store) -> None:
    await store.put("empty", feed(b""))
    for start, end in [(0, None), (0, 0), (0, 10), (3, None)]:
        assert await read(store, "empty", start, end) == b""
    assert await store.size("empty") == 0


async def test_bad_ranges_are_value_errors(store: Store) -> None:
    with pytest.raises(ValueError):
        store.get("k", -1)
    with pytest.raises(ValueError):
        store.get("k", 5, 4)


@pytest.mark.parametrize(("start", "end"), [(0, None), (3, 10), (4, 4)])
async def test_missing_key(store: Store, start: int, end: int | None) -> None:
    with pytest.raises(ObjectNotFound):
        await read(store, "nope", start, end)
    with pytest.raises(ObjectNotFound):
        await store.size("nope")
    assert not await store.exists("nope")


async def test_delete_is_idempotent(store: Store) -> None:
    await store.put("a/b", feed(b"x" * 10))
    await store.delete("a/b")
    await store.delete("a/b")
    await store.delete("never/was")
    assert not await store.exists("a/b")
    with pytest.raises(ObjectNotFound):
        await read(store, "a/b")


async def test_overwrite(store: Store) -> None:
    await store.put("k", feed(payload(PART + 10, seed=1)))
    second = payload(1000, seed=2)
    await store.put("k", feed(second))
    assert await read(store, "k") == second
    assert await store.size("k") == 1000


async def test_nested_keys_coexist(store: Store) -> None:
    for key in ["a", "a/b", "a/b/c", "ab"]:
        await store.put(key, feed(key.encode()))
    await store.delete("a/b")
    for key in ["a", "a/b/c", "ab"]:
        assert await read(store, key) == key.encode()
    assert not await store.exists("a/b")


@pytest.mark.parametrize("size", [0, 1000, PART + 1, 2 * PART + 5])
async def test_failed_put_leaves_nothing(
    store: Store, leftovers: Callable[[], list[str]], size: int
) -> None:
    await store.put("old", feed(b"previous"))
    for key in ["new", "old"]:
        with pytest.raises(Boom):
            await store.put(key, failing_feed(payload(size)))
    assert not await store.exists("new")
    assert await read(store, "old") == b"previous"  # a failed overwrite keeps the old object
    assert leftovers() == []


@pytest.mark.parametrize("size", [1000, 2 * PART + 5])
async def test_cancelled_put_leaves_nothing(
    store: Store, leftovers: Callable[[], list[str]], size: int
) -> None:
    sent = asyncio.Event()
    task = asyncio.create_task(store.put("k", stalled_feed(payload(size), sent)))
    await sent.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await store.exists("k")
    assert leftovers() == []


async def test_the_first_chunk_is_small_and_the_rest_whole(store: Store) -> None:
    """A viewer's first byte waits for a sixteenth of a chunk; the reads after it are whole."""
    data = payload(3 * CHUNK)
    await store.put("k", feed(data))
    sizes = [len(chunk) async for chunk in store.get("k")]
    if isinstance(store, MemoryStore):
        assert sizes == [CHUNK] * 3
    else:
        first = store.first_chunk_size
        assert first == CHUNK // 16
        assert sizes == [first, CHUNK, CHUNK, CHUNK - first]


async def test_abandoned_reads_release_everything(store: Store) -> None:
    data = payload(4 * CHUNK)
    await store.put("k", feed(data))
    reader = store.get("k")
    first = await anext(reader)
    assert first and data.startswith(first)
    await reader.aclose()

    async def consume() -> None:
        async for _ in store.get("k"):
            await asyncio.sleep(10)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await read(store, "k") == data


async def test_transform_runs_on_each_chunk_off_the_event_loop(store: Store) -> None:
    data = payload(3 * CHUNK + 17)
    await store.put("k", feed(data))
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    def reverse(chunk: bytes) -> bytes:
        threads.add(threading.get_ident())
        return chunk[::-1]

    got = [chunk async for chunk in store.get("k", 5, len(data) - 3, reverse)]
    raw = [chunk async for chunk in store.get("k", 5, len(data) - 3)]
    assert got == [chunk[::-1] for chunk in raw] and b"".join(raw) == data[5:-3]
    if not isinstance(store, MemoryStore):  # the real backends read in threads
        assert loop_thread not in threads


async def test_transform_errors_pass_through_and_release(store: Store) -> None:
    data = payload(4 * CHUNK)
    await store.put("k", feed(data))

    def refuse(chunk: bytes) -> bytes:
        raise Boom("bad chunk")

    with pytest.raises(Boom):
        async for _ in store.get("k", 0, None, refuse):
            pass
    assert await read(store, "k") == data
    await store.delete("k")  # nothing (an open file, a connection) holds the object
    assert not await store.exists("k")


async def rejects(store: Store, key: str) -> bool:
    """Whether every operation raises InvalidKey (get at the call, before any I/O)."""
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.put(key, feed(b"x")),
        lambda: store.size(key),
        lambda: store.delete(key),
        lambda: store.exists(key),
    ]
    try:
        store.get(key)
        return False
    except InvalidKey:
        pass
    for call in calls:
        try:
            await call()
            return False
        except InvalidKey:
            pass
    return True


async def test_invalid_keys_rejected(store: Store) -> None:
    # One store for all keys: a bucket per key would only cost time.
    assert [key for key in BAD_KEYS if not await rejects(store, key)] == []


async def test_invalid_key_is_a_value_and_storage_error(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.size("a..b")
    with pytest.raises(StorageError):
        await store.size("a..b")


async def test_longest_key_accepted(store: Store) -> None:
    key = "a/" + "K" * 254
    await store.put(key, feed(b"long"))
    assert await read(store, key) == b"long"


async def test_concurrent_puts(store: Store) -> None:
    blobs = {f"media/m{i}/o": payload(i * 50_000 + 1, seed=i) for i in range(12)}
    blobs["media/big/o"] = payload(PART + 3)
    sizes = await asyncio.gather(*(store.put(key, feed(data)) for key, data in blobs.items()))
    assert sizes == [len(data) for data in blobs.values()]
    for key, data in blobs.items():
        assert await read(store, key) == data


async def test_health(store: Store) -> None:
    await store.health()
