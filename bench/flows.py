"""The measured flows against a real `ephemeral serve` process and its own redis-server."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from bench.harness import (
    REPEATS,
    Figure,
    curl_seconds,
    curl_upload_args,
    free_port,
    process,
    python,
)
from ephemeral.config import RedisSettings, Settings
from ephemeral.crypto import keys as kc
from ephemeral.embedded_redis import EmbeddedRedis
from ephemeral.services import open_services
from ephemeral.state.views import VIEW_PREFIX

JWT_KEY = "bench-secret-key-of-at-least-thirty-two-bytes"
MiB = 1 << 20
RATE_BATCH = 500
CONCURRENCY = 64


def small_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), "green").save(out, "JPEG")
    return out.getvalue()


class Api:
    def __init__(self, url: str, session: aiohttp.ClientSession, token: str) -> None:
        self.url, self.session, self.token = url, session, token

    async def create(self, recipients: list[str], data: bytes) -> dict[str, Any]:
        form = aiohttp.FormData()
        form.add_field(
            "meta", json.dumps({"recipients": recipients}), content_type="application/json"
        )
        form.add_field("file", data, filename="p.jpg")
        async with self.session.post(
            f"{self.url}/v1/media", data=form, headers={"Authorization": f"Bearer {self.token}"}
        ) as r:
            assert r.status == 202, await r.text()
            body: dict[str, Any] = await r.json()
            return body

    async def wait_ready(self, media_id: str) -> None:
        while True:
            async with self.session.get(
                f"{self.url}/v1/media/{media_id}?recipients=none",
                headers={"Authorization": f"Bearer {self.token}"},
            ) as r:
                if (await r.json())["state"] == "ready":
                    return
            await asyncio.sleep(0.05)

    async def redeem(self, token: str) -> dict[str, Any]:
        async with self.session.post(f"{self.url}/v1/views", json={"token": token}) as r:
            assert r.status == 201, await r.text()
            body: dict[str, Any] = await r.json()
            return body


async def seal_large(settings: Settings, media_id: str, token: str, rid: str, plain: Path) -> None:
    """Delivery is measured on a large object sealed directly with the worker's own vault code
    (normalisation would shrink a real photo); the bench says so in its report."""
    async with open_services(settings) as svc:
        _, secret = kc.parse_token(token) or ("", b"")
        wrapped = await svc.redis.hget(svc.keys.recipient(media_id, rid), "wk")  # type: ignore[misc]
        dek = kc.unwrap(
            kc.recipient_wrap_key(secret, media_id, rid),
            kc.unb64(wrapped),
            kc.recipient_context(media_id, rid),
        )

        async def chunks() -> Any:
            with plain.open("rb") as handle:
                while chunk := handle.read(MiB):
                    yield chunk

        sealed = await svc.vault.seal(f"{media_id}/bench", dek, chunks())
        await svc.media.record_object(media_id, sealed.key)
        await svc.redis.hset(
            svc.keys.media(media_id),  # type: ignore[misc]
            mapping={
                "obj": sealed.key,
                "hdr": sealed.header,
                "size": sealed.size,
                "mime": "image/jpeg",
            },
        )


async def redeem_rate(api: Api, tokens: list[str]) -> float:
    queue = list(tokens)
    started = time.perf_counter()

    async def worker() -> None:
        while queue:
            await api.redeem(queue.pop())

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return len(tokens) / (time.perf_counter() - started)


async def raw_script_rate(settings: Settings, tokens: list[str], redis_url: str) -> float:
    """The redeem script alone, same concurrency, arguments prepared before the clock starts."""
    async with open_services(settings) as svc:
        calls = []
        for token in tokens:
            lookup, secret = kc.parse_token(token) or ("", b"")
            media_id, rid = (await svc.views.resolve(lookup)) or ("", "")
            view_id = VIEW_PREFIX + media_id[2:] + kc.random_id(16)
            lease = kc.lease_secret(secret, view_id)
            calls.append(
                (
                    media_id,
                    rid,
                    kc.token_verifier(secret, lookup),
                    view_id,
                    kc.lease_verifier(lease, view_id),
                )
            )
        started = time.perf_counter()

        async def worker() -> None:
            while calls:
                media_id, rid, verifier, view_id, lease_vf = calls.pop()
                result = await svc.views.redeem(
                    media_id, rid, verifier, "", view_id, lease_vf, "wrapped", "", ""
                )
                assert result.outcome == "ok", result

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return len(tokens) / (time.perf_counter() - started)


async def run_all(work: Path, plain: Path, photo: Path, base_url: str) -> dict[str, Figure]:
    size = plain.stat().st_size
    figures: dict[str, Figure] = {}
    async with EmbeddedRedis(work / "redis") as redis:
        port = free_port()
        settings = Settings(data_dir=work / "data", redis=RedisSettings(url=redis.url))
        settings = dataclasses.replace(
            settings, auth=dataclasses.replace(settings.auth, jwt_key=JWT_KEY)
        )
        env = {
            **os.environ,
            "EPHEMERAL_REDIS_URL": redis.url,
            "EPHEMERAL_AUTH_JWT_KEY": JWT_KEY,
            "EPHEMERAL_DATA_DIR": str(settings.data_dir),
            "EPHEMERAL_PORT": str(port),
            "EPHEMERAL_LIMITS_MAX_IMAGE_BYTES": str(size + MiB),
        }
        url = f"http://127.0.0.1:{port}"
        from ephemeral.auth import Authenticator

        token = Authenticator(settings, JWT_KEY).mint("bench")
        meta = 'meta={"recipients":["bob"]};type=application/json'
        # Ingest is measured before processing, as issue #8 defines it: an API without a worker.
        with process([python(), "-m", "ephemeral", "serve", "--no-worker"], env, f"{url}/healthz"):
            figures["upload"] = _curl_figure(
                "our upload", size, curl_upload_args(url, token, photo)
            )
        figures["baseline_upload"] = _curl_figure(
            "bare aiohttp multipart to file",
            size,
            ["-F", meta, "-F", f"file=@{photo}", f"{base_url}/ingest"],
        )
        figures["baseline_upload_fsync"] = _curl_figure(
            "bare aiohttp multipart to file, then fsync (durable, as ours)",
            size,
            ["-F", meta, "-F", f"file=@{photo}", f"{base_url}/ingest?fsync=1"],
        )
        await _forget_ingest(redis.url)
        with process([python(), "-m", "ephemeral", "serve"], env, f"{url}/healthz"):
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONCURRENCY)
            ) as session:
                api = Api(url, session, token)
                rids = [f"r{i}" for i in range(REPEATS + 1)]
                created = await api.create(rids, small_jpeg())
                await api.wait_ready(created["id"])
                tokens = [r["token"] for r in created["recipients"]]
                await seal_large(settings, created["id"], tokens[0], rids[0], plain)
                views = Figure("our view", "MiB/s")
                for index, view_token in enumerate(tokens):
                    started = time.perf_counter()
                    view = await api.redeem(view_token)
                    redeem_seconds = time.perf_counter() - started
                    # curl's own transfer time, as for the baseline, plus the redeem before it.
                    transfer = curl_seconds(
                        [
                            "-H",
                            f"Authorization: Lease {view['lease']}",
                            f"{url}/v1/views/{view['view_id']}/content",
                        ]
                    )
                    if index:  # the first is the warm-up
                        views.samples.append(size / MiB / (redeem_seconds + transfer))
                figures["view"] = views
                figures["baseline_view"] = _curl_figure(
                    "aiohttp static file (sendfile)", size, [f"{base_url}/files/plain.bin"]
                )

                batches = []
                for _ in range(2 * (REPEATS + 1) * RATE_BATCH // 250):
                    created = await api.create([f"u{i}" for i in range(250)], small_jpeg())
                    batches.append(created)
                for created in batches:
                    await api.wait_ready(created["id"])
                pool = [r["token"] for c in batches for r in c["recipients"]]
                ours, raw = (
                    Figure("our redeem rate", "views/s"),
                    Figure("the redeem script via redis.asyncio", "views/s"),
                )
                for index in range(REPEATS + 1):
                    mine = [pool.pop() for _ in range(RATE_BATCH)]
                    theirs = [pool.pop() for _ in range(RATE_BATCH)]
                    rate = await redeem_rate(api, mine)
                    base = await raw_script_rate(settings, theirs, redis.url)
                    if index:
                        ours.samples.append(rate)
                        raw.samples.append(base)
                figures["redeem_rate"] = ours
                figures["baseline_redeem_rate"] = raw
                figures["raw_redis_script"] = Figure(
                    "raw Redis redeem-script calls", "calls/s", list(raw.samples)
                )
    return figures


async def _forget_ingest(url: str) -> None:
    """The ingest runs left media waiting for a worker (unprocessable 100 MiB files): their
    jobs, and the sweeper's re-enqueues of them, would take the CPU from the views measured
    next. Nothing that follows needs them, so the database is emptied."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def _curl_figure(name: str, size: int, args: list[str]) -> Figure:
    figure = Figure(name, "MiB/s")
    curl_seconds(args)  # warm-up
    for _ in range(REPEATS):
        figure.samples.append(size / MiB / curl_seconds(args))
    return figure
