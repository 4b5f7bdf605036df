"""S3-only behaviour: bucket vetting, version-aware delete, request shapes (moto over HTTP)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

from storage import StorageError
from storage.s3 import S3Store
from tests.fixtures.s3 import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY
from tests.storage.util import PART, feed, payload, read

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

Open = Callable[..., Awaitable[S3Store]]
NONCURRENT_RULE: dict[str, Any] = {
    "ID": "expire-noncurrent",
    "Status": "Enabled",
    "Filter": {},
    "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
}


@pytest.fixture
async def open_store(s3_bucket: tuple[str, str]) -> AsyncIterator[Open]:
    endpoint, bucket = s3_bucket
    opened: list[S3Store] = []

    async def open_(**options: Any) -> S3Store:
        merged: dict[str, Any] = {"bucket": bucket, "part_size": PART, "chunk_size": 1 << 16}
        store = await S3Store.open(
            endpoint_url=endpoint,
            region=S3_REGION,
            access_key=S3_ACCESS_KEY,
            secret_key=S3_SECRET_KEY,
            **(merged | options),
        )
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


def versioned(client: S3Client, bucket: str, *rules: Any) -> None:
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    if rules:
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)}
        )


def versions(client: S3Client, bucket: str) -> list[tuple[str, str]]:
    listing = client.list_object_versions(Bucket=bucket)
    entries = [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
    return sorted((entry["Key"], entry["VersionId"]) for entry in entries)


async def test_versioned_bucket_without_lifecycle_is_refused(
    open_store: Open, s3_client: S3Client, s3_bucket: tuple[str, str]
) -> None:
    versioned(s3_client, s3_bucket[1])
    with pytest.raises(StorageError, match="NoncurrentVersionExpiration"):
        await open_store()


@pytest.mark.parametrize(
    "rule",
    [
        NONCURRENT_RULE | {"Status": "Disabled"},
        NONCURRENT_RULE | {"Filter": {"Prefix": "elsewhere/"}},
        NONCURRENT_RULE | {"Filter": {"Tag": {"Key": "purge", "Value": "yes"}}},
        {"ID": "current-only", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}},
    ],
)
async def test_lifecycle_rules_that_miss_objects_are_refused(
    open_store: Open, s3_client: S3Client, s3_bucket: tuple[str, str], rule: dict[str, Any]
) -> None:
    versioned(s3_client, s3_bucket[1], rule)
    with pytest.raises(StorageError, match="unsafe"):
        await open_store()


async def test_versioned_delete_removes_every_version(
    open_store: Open, s3_client: S3Client, s3_bucket: tuple[str, str]
) -> None:
    bucket = s3_bucket[1]
    versioned(s3_client, bucket, NONCURRENT_RULE | {"Filter": {"Prefix": "blobs/"}})
    store = await open_store(prefix="blobs/")
    for data in (b"one", b"two", payload(PART + 1)):
        await store.put("m/k", feed(data))
    for sibling in ("m/k/x", "m/kx"):
        await store.put(sibling, feed(b"sibling"))
    assert len([v for v in versions(s3_client, bucket) if v[0] == "blobs/m/k"]) == 3
    await store.delete("m/k")
    await store.delete("m/k")
    assert {key for key, _ in versions(s3_client, bucket)} == {"blobs/m/k/x", "blobs/m/kx"}
    assert not await store.exists("m/k")
    assert await read(store, "m/kx") == b"sibling"


async def test_unversioned_delete_leaves_no_version(
    open_store: Open, s3_client: S3Client, s3_bucket: tuple[str, str]
) -> None:
    store = await open_store()
    await store.put("k", feed(b"data"))
    await store.delete("k")
    assert versions(s3_client, s3_bucket[1]) == []


async def test_object_lock_is_refused(
    open_store: Open, s3_client: S3Client, s3_bucket: tuple[str, str]
) -> None:
    bucket = f"{s3_bucket[1]}-lock"
    s3_client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    versioned(s3_client, bucket, NONCURRENT_RULE)
    with pytest.raises(StorageError, match="Object Lock"):
        await open_store(bucket=bucket)


async def test_allow_unsafe_bucket_overrides(
    open_store: Open,
    s3_client: S3Client,
    s3_bucket: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bucket = f"{s3_bucket[1]}-lock"
    s3_client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    with caplog.at_level(logging.WARNING, logger="storage"):
        store = await open_store(bucket=bucket, allow_unsafe_bucket=True)
    assert "Object Lock" in caplog.text
    await store.put("k", feed(b"data"))
    assert await read(store, "k") == b"data"


async def test_missing_bucket(open_store: Open, s3_bucket: tuple[str, str]) -> None:
    with pytest.raises(StorageError):
        await open_store(bucket=f"{s3_bucket[1]}-missing")
    store = S3Store(
        f"{s3_bucket[1]}-missing",
        endpoint_url=s3_bucket[0],
        region=S3_REGION,
        access_key=S3_ACCESS_KEY,
        secret_key=S3_SECRET_KEY,
    )
    try:
        with pytest.raises(StorageError):
            await store.health()
        with pytest.raises(StorageError):
            await store.put("k", feed(b"x"))
    finally:
        await store.close()


@pytest.mark.parametrize(("size", "parts"), [(0, 0), (PART, 0), (PART + 1, 2), (2 * PART + 1, 3)])
async def test_multipart_only_above_part_size(
    open_store: Open, s3_client: S3Client, s3_bucket: tuple[str, str], size: int, parts: int
) -> None:
    store = await open_store(prefix="p-")
    await store.put("k", feed(payload(size)))
    etag = s3_client.head_object(Bucket=s3_bucket[1], Key="p-k")["ETag"].strip('"')
    assert etag.endswith(f"-{parts}") if parts else "-" not in etag


async def test_invalid_settings_rejected(s3_bucket: tuple[str, str]) -> None:
    invalid: list[dict[str, Any]] = [{"part_size": PART - 1}, {"chunk_size": 0}, {"max_workers": 0}]
    for options in invalid:
        with pytest.raises(ValueError):
            S3Store(s3_bucket[1], endpoint_url=s3_bucket[0], **options)


async def test_requests_never_run_on_the_event_loop(open_store: Open) -> None:
    store = await open_store()
    threads: set[str] = set()
    store._client.meta.events.register(
        "before-send", lambda **_: threads.add(threading.current_thread().name)
    )
    await store.put("k", feed(payload(2 * PART + 1)))
    assert await read(store, "k", 10, 20) == payload(2 * PART + 1)[10:20]
    assert await store.size("k") == 2 * PART + 1
    await store.delete("k")
    await store.health()
    assert threads and all(name.startswith("s3-store") for name in threads), threads
