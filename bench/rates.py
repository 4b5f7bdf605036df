"""Issue #8 figures beyond flows.py: redeem rate over two API processes, photo normalisation,
group upload cost and purge lag. `measure(work)` starts and stops everything it needs."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import aiohttp

from bench import rates_photo, rates_purge
from bench.flows import CONCURRENCY, RATE_BATCH, Api, small_jpeg
from bench.harness import REPEATS, Figure
from bench.rates_common import bearer, serve
from ephemeral.crypto import keys as kc
from ephemeral.embedded_redis import EmbeddedRedis

GROUP = 250


async def _spread_rate(apis: list[Api], tokens: list[str]) -> float:
    """Redeems at CONCURRENCY in flight, each request to the next API process in turn."""
    queue, turn = list(tokens), itertools.cycle(apis)
    started = time.perf_counter()

    async def worker() -> None:
        while queue:
            token = queue.pop()
            await next(turn).redeem(token)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return len(tokens) / (time.perf_counter() - started)


async def _make_tokens(url: str, bearer_token: str, count: int) -> list[str]:
    """`count` redeemable tokens from media of GROUP recipients, made ready by a worker."""
    async with aiohttp.ClientSession() as session:
        api, created = Api(url, session, bearer_token), []
        for _ in range(-(-count // GROUP)):
            created.append(await api.create([f"u{i}" for i in range(GROUP)], small_jpeg()))
        for body in created:
            await asyncio.wait_for(api.wait_ready(body["id"]), 120)
        return [r["token"] for body in created for r in body["recipients"]]


def recipient_keys_seconds(count: int = GROUP) -> float:
    """The key work a create does per recipient (token, verifier, wrap key, DEK wrap), for
    `count` recipients in this process: the floor under the group upload's extra cost."""
    dek, media_id = kc.new_dek(), "m_" + kc.random_id(16)
    started = time.perf_counter()
    for index in range(count):
        rid = f"g{index}"
        lookup, secret = kc.new_token()
        kc.token_verifier(secret, lookup)
        wrap_key = kc.recipient_wrap_key(secret, media_id, rid)
        kc.wrap(wrap_key, dek, kc.recipient_context(media_id, rid))
    return time.perf_counter() - started


async def _upload_seconds(api: Api, recipients: int, data: bytes) -> float:
    started = time.perf_counter()
    await api.create([f"g{i}" for i in range(recipients)], data)
    return time.perf_counter() - started


async def _api_figures(urls: list[str], bearer_token: str, pool: list[str]) -> dict[str, Figure]:
    two = Figure("redeem rate, two API processes (round-robin)", "views/s")
    one = Figure("redeem rate, one API process", "views/s")
    g250 = Figure(f"group upload, {GROUP} recipients (small photo, to the 202)", "s")
    g1 = Figure("group upload, 1 recipient (small photo, to the 202)", "s")
    floor = Figure(f"key work for {GROUP} recipients alone (token, 2 HKDF, AES-GCM wrap)", "s")
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        apis = [Api(url, session, bearer_token) for url in urls]
        for index in range(REPEATS + 1):  # interleaved; the first round is the warm-up
            both = await _spread_rate(apis, [pool.pop() for _ in range(RATE_BATCH)])
            alone = await _spread_rate(apis[:1], [pool.pop() for _ in range(RATE_BATCH)])
            if index:
                two.samples.append(both)
                one.samples.append(alone)
        data = small_jpeg()
        for index in range(REPEATS + 1):
            many = await _upload_seconds(apis[0], GROUP, data)
            single = await _upload_seconds(apis[0], 1, data)
            keys = recipient_keys_seconds()
            if index:
                g250.samples.append(many)
                g1.samples.append(single)
                floor.samples.append(keys)
    return {
        "redeem_two_procs": two,
        "redeem_one_proc": one,
        "group_250": g250,
        "group_1": g1,
        "group_key_floor": floor,
    }


async def _measure_api(work: Path) -> dict[str, Figure]:
    data_dir = work / "rates-data"
    async with EmbeddedRedis(work / "rates-redis") as redis:
        token = bearer(redis.url, data_dir)
        # A server with its worker makes the media ready, then leaves: it takes no CPU from
        # the two API-only processes measured after it (same Redis, same data dir).
        with serve(redis.url, data_dir) as url:
            pool = await _make_tokens(url, token, 2 * (REPEATS + 1) * RATE_BATCH)
        with serve(redis.url, data_dir, worker=False) as first:
            with serve(redis.url, data_dir, worker=False) as second:
                return await _api_figures([first, second], token, pool)


def measure(work: Path) -> dict[str, Figure]:
    """All rates figures; `work` is a scratch directory (subdirectories are made in it)."""
    figures = asyncio.run(_measure_api(work))
    figures.update(rates_photo.measure())
    figures.update(rates_purge.measure(work))
    return figures
