"""Purge lag: last lease end → blob gone, on the fs backend and on S3 (a moto server).

Two paths: an explicit `DELETE /v1/views/{id}` (t0 just before the request), and the idle
timeout (EPHEMERAL_LEASE_IDLE=1, t0 = the redeem answer + 1 s). The blob is polled every 10 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import boto3
from botocore.exceptions import ClientError
from redis.asyncio import Redis

from bench.flows import Api, small_jpeg
from bench.harness import Figure, free_port, process, python
from bench.rates_common import bearer, p99, serve
from ephemeral.config import RedisSettings
from ephemeral.embedded_redis import EmbeddedRedis
from ephemeral.state import typed
from ephemeral.state.keys import Keys

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

SAMPLES = 30  # per path and backend
IDLE = 1  # seconds: EPHEMERAL_LEASE_IDLE for the idle-timeout path
POLL = 0.01
GIVE_UP = 30.0  # seconds without the blob going: a failure, not a sample
S3_REGION, S3_KEY, S3_SECRET = "us-east-1", "testing", "testing"  # moto accepts anything

Present = Callable[[list[str]], Awaitable[set[str]]]  # which of these keys still exist


def _fs_present(blobs: Path) -> Present:
    def path(key: str) -> Path:
        *dirs, name = key.split("/")
        return blobs.joinpath(*(d + ".d" for d in dirs), name)  # storage/fs.py DIR_SUFFIX

    async def present(keys: list[str]) -> set[str]:
        return {key for key in keys if path(key).exists()}

    return present


def _s3_present(client: S3Client, bucket: str) -> Present:
    def head(key: str) -> bool:
        try:
            client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def listed() -> set[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    async def present(keys: list[str]) -> set[str]:
        if len(keys) == 1:  # one blob: head_object, as a client would check it
            return set(keys) if await asyncio.to_thread(head, keys[0]) else set()
        return set(keys) & await asyncio.to_thread(listed)  # many: one request per poll

    return present


async def _ready_media(api: Api, redis: Redis, count: int) -> list[tuple[str, str]]:
    """`count` ready one-recipient photos: (token, object key) each."""
    keys, created = Keys(RedisSettings().prefix), []
    for _ in range(count):
        created.append(await api.create(["bob"], small_jpeg()))
    out = []
    for body in created:
        await asyncio.wait_for(api.wait_ready(body["id"]), 60)
        obj = await typed.hget(redis, keys.media(body["id"]), "obj")
        assert obj, body["id"]
        out.append((body["recipients"][0]["token"], obj))
    return out


async def _gone_after(present: Present, key: str, t0: float) -> float:
    while await present([key]):
        if time.perf_counter() - t0 > GIVE_UP:
            raise RuntimeError(f"blob {key} still there {GIVE_UP} s after its lease ended")
        await asyncio.sleep(POLL)
    return (time.perf_counter() - t0) * 1000


async def _deleted_lags(api: Api, present: Present, media: list[tuple[str, str]]) -> list[float]:
    lags = []
    for token, obj in media:  # one at a time: each lag is the service's alone
        assert await present([obj]), obj
        view = await api.redeem(token)
        t0 = time.perf_counter()
        async with api.session.delete(
            f"{api.url}/v1/views/{view['view_id']}",
            headers={"Authorization": f"Lease {view['lease']}"},
        ) as r:
            assert r.status == 204, await r.text()
        lags.append(await _gone_after(present, obj, t0))
    return lags


async def _idle_lags(api: Api, present: Present, media: list[tuple[str, str]]) -> list[float]:
    """Leases left to expire, started 1/SAMPLES s apart so they fall all over a sweep period;
    one poller, running from the first redeem, checks every blob still there each POLL s."""
    ends: dict[str, float] = {}
    lags: list[float] = []
    redeeming = True

    async def poll() -> None:
        while redeeming or ends:
            now = time.perf_counter()
            gone = set(ends) - await present(list(ends)) if ends else set()
            for obj in gone:
                lags.append((now - ends.pop(obj)) * 1000)
            if ends and now - min(ends.values()) > GIVE_UP:
                raise RuntimeError(f"{len(ends)} blobs still there {GIVE_UP} s after their lease")
            await asyncio.sleep(POLL)

    poller = asyncio.create_task(poll())
    try:
        for token, obj in media:
            await api.redeem(token)
            ends[obj] = time.perf_counter() + IDLE
            await asyncio.sleep(IDLE / len(media))
        redeeming = False
        await poller
    finally:
        poller.cancel()
    return lags


async def _backend(work: Path, name: str, present: Present, **env: str) -> dict[str, Figure]:
    data_dir = work / f"purge-{name}"
    async with EmbeddedRedis(work / f"purge-{name}-redis") as embedded:
        redis = Redis.from_url(embedded.url, decode_responses=True)
        token = bearer(embedded.url, data_dir)
        extra = {"EPHEMERAL_LEASE_IDLE": str(IDLE), **env}
        try:
            with serve(embedded.url, data_dir, extra=extra) as url:
                async with aiohttp.ClientSession() as session:
                    api = Api(url, session, token)
                    warm = await _ready_media(api, redis, 1)
                    await _deleted_lags(api, present, warm)  # warm-up, not counted
                    deleted = await _deleted_lags(
                        api, present, await _ready_media(api, redis, SAMPLES)
                    )
                    idle = await _idle_lags(api, present, await _ready_media(api, redis, SAMPLES))
        finally:
            await redis.aclose()
    return {
        f"purge_lag_{name}": Figure(
            f"purge lag {name}, DELETE view → blob gone, p50", "ms", deleted
        ),
        f"purge_lag_{name}_p99": Figure(
            f"purge lag {name}, DELETE view, p99", "ms", [p99(deleted)]
        ),
        f"purge_lag_idle_{name}": Figure(f"purge lag {name}, idle {IDLE} s lease, p50", "ms", idle),
        f"purge_lag_idle_{name}_p99": Figure(
            f"purge lag {name}, idle lease, p99", "ms", [p99(idle)]
        ),
    }


@contextlib.contextmanager
def _moto() -> Iterator[tuple[str, S3Client]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [python(), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with process(argv, dict(os.environ), None):
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=url,
            region_name=S3_REGION,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.list_buckets()
                    break
                except Exception:  # not listening yet
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield url, client
        finally:
            client.close()


async def _measure(work: Path) -> dict[str, Figure]:
    figures = await _backend(work, "fs", _fs_present(work / "purge-fs" / "blobs"))
    with _moto() as (url, client):
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        s3_env = {
            "EPHEMERAL_STORAGE_BACKEND": "s3",
            "EPHEMERAL_STORAGE_S3_BUCKET": bucket,
            "EPHEMERAL_STORAGE_S3_ENDPOINT_URL": url,
            "EPHEMERAL_STORAGE_S3_REGION": S3_REGION,
            "EPHEMERAL_STORAGE_S3_ACCESS_KEY": S3_KEY,
            "EPHEMERAL_STORAGE_S3_SECRET_KEY": S3_SECRET,
        }
        figures.update(await _backend(work, "s3", _s3_present(client, bucket), **s3_env))
    return figures


def measure(work: Path) -> dict[str, Figure]:
    """fs, then S3: both purge paths, SAMPLES media each; p50 lists and p99 keys."""
    return asyncio.run(_measure(work))
