"""The delivery measurements themselves: views, first bytes, S3 reads and RSS growth."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from bench.flows import Api, seal_large, small_jpeg
from bench.harness import Figure, RssPeak, curl_seconds, curl_upload_args, percentile
from ephemeral.config import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MiB = 1 << 20
CURL_LIMIT = ["--max-time", "600"]  # every transfer is bounded in time
TIMEOUT = aiohttp.ClientTimeout(total=120)


async def sealed_tokens(api: Api, settings: Settings, plain: Path, count: int) -> list[str]:
    """One media item with `count` recipients whose object is `plain`, sealed directly."""
    rids = [f"r{i}" for i in range(count)]
    created = await api.create(rids, small_jpeg())
    await api.wait_ready(created["id"])
    tokens = [r["token"] for r in created["recipients"]]
    await seal_large(settings, created["id"], tokens[0], rids[0], plain)
    return tokens


def _content_args(api: Api, view: dict[str, str]) -> list[str]:
    return [
        *CURL_LIMIT,
        "-H",
        f"Authorization: Lease {view['lease']}",
        f"{api.url}/v1/views/{view['view_id']}/content",
    ]


async def view_mib_s(api: Api, token: str, size: int) -> float:
    """Redeem + curl's own transfer time of the content, as flows.run_all times a view."""
    started = time.perf_counter()
    view = await api.redeem(token)
    redeem_seconds = time.perf_counter() - started
    return size / MiB / (redeem_seconds + curl_seconds(_content_args(api, view)))


async def view_rss(api: Api, token: str, pid: int) -> RssPeak:
    """The API process's RSS while it serves one whole view (redeemed first, untimed)."""
    view = await api.redeem(token)
    with RssPeak(pid) as peak:
        await asyncio.to_thread(curl_seconds, _content_args(api, view))
    return peak


async def view_figure(name: str, api: Api, settings: Settings, plain: Path, repeats: int) -> Figure:
    tokens = await sealed_tokens(api, settings, plain, repeats + 1)
    size = plain.stat().st_size
    await view_mib_s(api, tokens[0], size)  # warm-up
    return Figure(name, "MiB/s", [await view_mib_s(api, t, size) for t in tokens[1:]])


def curl_figure(name: str, url: str, size: int, repeats: int) -> Figure:
    curl_seconds([*CURL_LIMIT, url])  # warm-up
    return Figure(
        name, "MiB/s", [size / MiB / curl_seconds([*CURL_LIMIT, url]) for _ in range(repeats)]
    )


async def first_byte_ms(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> float:
    """From sending the GET to the first body chunk; the rest is drained untimed."""
    started = time.perf_counter()
    async with session.get(url, headers=headers, timeout=TIMEOUT) as response:
        assert response.status == 200, response.status
        await response.content.readany()
        elapsed = time.perf_counter() - started
        while await response.content.readany():
            pass
    return elapsed * 1000


async def ttfb_figures(
    api: Api, settings: Settings, plain: Path, base_url: str, count: int
) -> dict[str, Figure]:
    """Time to first content byte after redeem, ours vs a plain aiohttp static file GET."""
    tokens = await sealed_tokens(api, settings, plain, count + 1)
    ours: list[float] = []
    for index, token in enumerate(tokens):
        view = await api.redeem(token)
        ms = await first_byte_ms(
            api.session,
            f"{api.url}/v1/views/{view['view_id']}/content",
            {"Authorization": f"Lease {view['lease']}"},
        )
        if index:  # the first is the warm-up
            ours.append(ms)
    static = f"{base_url}/files/{plain.name}"
    async with aiohttp.ClientSession() as session:
        await first_byte_ms(session, static)  # warm-up
        base = [await first_byte_ms(session, static) for _ in range(count)]
    size = plain.stat().st_size // MiB
    p99, base_p99 = percentile(ours, 99), percentile(base, 99)
    return {
        "ttfb": Figure(
            f"our first content byte after redeem, {size} MiB, p99 {p99:.1f} ms", "ms", ours
        ),
        "baseline_ttfb": Figure(
            f"aiohttp static file first byte, {size} MiB, p99 {base_p99:.1f} ms", "ms", base
        ),
        "ttfb_p99": Figure("our first content byte after redeem, p99", "ms", [p99]),
        "baseline_ttfb_p99": Figure("aiohttp static file first byte, p99", "ms", [base_p99]),
    }


def stored_object(client: S3Client, bucket: str, prefix: str = "") -> tuple[str, int]:
    """The largest object in the bucket (the sealed bench object) and its size."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    objects = [(o["Key"], o["Size"]) for page in pages for o in page.get("Contents", [])]
    return max(objects, key=lambda item: item[1])


def boto3_ranged_mib_s(client: S3Client, bucket: str, key: str, size: int) -> float:
    """One ranged GET of the whole object, its body read in 1 MiB chunks: what our S3 store
    does for a view (an earlier baseline of sequential 8 MiB GETs paid a request per range)."""
    started = time.perf_counter()
    body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{size - 1}")["Body"]
    for _ in body.iter_chunks(MiB):
        pass
    return size / MiB / (time.perf_counter() - started)


async def boto3_figure(
    name: str, client: S3Client, bucket: str, key: str, size: int, repeats: int
) -> Figure:
    await asyncio.to_thread(boto3_ranged_mib_s, client, bucket, key, size)  # warm-up
    samples = [
        await asyncio.to_thread(boto3_ranged_mib_s, client, bucket, key, size)
        for _ in range(repeats)
    ]
    return Figure(name, "MiB/s", samples)


def rss_figures(name: str, peaks: list[RssPeak]) -> tuple[Figure, Figure]:
    """(growth over the idle RSS, peak RSS): flat means the growth stays small and the peak
    for 1 GiB stays within 1.1x of the peak for 10 MiB (a growth near 0 makes no ratio)."""
    return (
        Figure(f"{name}: peak RSS growth", "MiB", [p.growth for p in peaks]),
        Figure(f"{name}: peak RSS", "MiB", [p.peak for p in peaks]),
    )


async def rss_view_figures(
    name: str, api: Api, settings: Settings, plain: Path, pid: int, repeats: int
) -> tuple[Figure, Figure]:
    tokens = await sealed_tokens(api, settings, plain, repeats + 1)
    await view_rss(api, tokens[0], pid)  # warm-up
    return rss_figures(name, [await view_rss(api, t, pid) for t in tokens[1:]])


def rss_upload_figures(
    name: str, url: str, token: str, photo: Path, pid: int, repeats: int
) -> tuple[Figure, Figure]:
    """The API process's RSS during a curl -F upload (no worker runs)."""
    args = [*CURL_LIMIT, *curl_upload_args(url, token, photo)]

    def once() -> RssPeak:
        with RssPeak(pid) as peak:
            curl_seconds(args)
        return peak

    once()  # warm-up
    return rss_figures(name, [once() for _ in range(repeats)])
