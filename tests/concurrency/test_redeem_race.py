"""Exactly once, across processes: concurrent redemptions, and Redis killed mid-storm."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.embedded_redis import EmbeddedRedis
from ephemeral.state.keys import Keys
from tests.api.test_views import ready_media
from tests.fixtures.processes import api_processes

pytestmark = pytest.mark.slow


async def storm(
    session: aiohttp.ClientSession, urls: list[str], token: str, requests: int
) -> Counter[int]:
    async def one(i: int) -> int:
        try:
            async with session.post(f"{urls[i % len(urls)]}/v1/views", json={"token": token}) as r:
                await r.read()
                return r.status
        except aiohttp.ClientError:
            return -1  # the connection broke: no answer, so no view handed out

    return Counter(await asyncio.gather(*(one(i) for i in range(requests))))


async def test_300_concurrent_redeems_on_two_processes_yield_exactly_views(
    make_client: Any, settings: Settings
) -> None:
    client = await make_client(settings)
    media = []
    for round_ in range(10):
        views = 1 if round_ % 2 == 0 else 2
        media_id, tokens = await ready_media(client, settings, views=views)
        media.append((media_id, tokens["bob"], views))
    with api_processes(settings, 2) as urls:
        connector = aiohttp.TCPConnector(limit=300)
        async with aiohttp.ClientSession(connector=connector) as session:
            for media_id, token, views in media:
                counts = await storm(session, urls, token, 300)
                assert counts[201] == views, (media_id, counts)
                assert counts[410] == 300 - views, counts
                assert not [s for s in counts if s >= 500 or s < 0], counts


async def test_redis_killed_mid_storm_never_doubles_a_view(
    make_client: Any, settings: Settings
) -> None:
    with tempfile.TemporaryDirectory(prefix="ephk-", dir="/tmp") as tmp:
        server = EmbeddedRedis(Path(tmp))
        async with server:
            settings = dataclasses.replace(
                settings, redis=dataclasses.replace(settings.redis, url=server.url)
            )
            client = await make_client(settings)
            tokens = []
            for _ in range(20):
                _, recipient_tokens = await ready_media(client, settings)
                tokens.append(recipient_tokens["bob"])
            await client.close()  # only the API processes talk to Redis from here on

            granted: Counter[str] = Counter()
            with api_processes(settings, 2) as urls:
                async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=200),
                    timeout=aiohttp.ClientTimeout(total=20),
                ) as session:

                    async def wave(count: int) -> Counter[int]:
                        results = await asyncio.gather(
                            *(storm(session, urls, t, count) for t in tokens)
                        )
                        total: Counter[int] = Counter()
                        for token, counts in zip(tokens, results, strict=True):
                            granted[token] += counts[201]
                            total += counts
                        assert not [s for s in total if s >= 500 and s != 503], total
                        return total

                    first = asyncio.create_task(wave(15))
                    await asyncio.sleep(0.05)
                    server.stop(kill=True)  # SIGKILL, mid-storm
                    await first
                    down = await wave(5)
                    assert set(down) == {503}, down  # Redis is down: 503s, never a view
                    server.start()
                    await server.wait_ready()
                    await wave(15)

            assert max(granted.values()) <= 1, granted
            # Every 201 handed out was durable: it survived the SIGKILL.
            keys = Keys(settings.redis.prefix)
            redis = Redis.from_url(server.url, decode_responses=True)
            try:
                for token in tokens:
                    lookup = token.split(".")[0]
                    media_id, rid = (await redis.get(keys.lookup(lookup))).split(" ")
                    used = int(await redis.hget(keys.recipient(media_id, rid), "vu") or 0)
                    assert used <= 1
                    if granted[token]:
                        assert used == 1, token
            finally:
                await redis.aclose()
            assert sum(granted.values()) >= 1
