"""The two-step create: JSON meta first (tokens, a single-use upload URL), then PUT the bytes."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.crypto import keys as kc
from ephemeral.crypto.keyring import Keyring
from tests.api.helpers import problem, redeem, redeemed, status
from tests.api.test_lifecycle import stored_blobs
from tests.fixtures.core import auth, jpeg_bytes, wait_state
from tests.uploads.helpers import create_two_step, media_record, stored_objects, upload_path

TOKEN = r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"


async def test_create_then_put_then_view(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    photo = jpeg_bytes((80, 60))
    created = await create_two_step(client, settings, len(photo), recipients=["bob", "carol"])
    assert created["state"] == "awaiting_upload" and created["kind"] is None
    assert re.fullmatch(rf"{settings.base_url}/v1/uploads/{TOKEN}", created["upload_url"])
    assert created["upload_expires_at"] and len(created["recipients"]) == 2
    media_id = created["id"]
    tokens = {r["id"]: r["token"] for r in created["recipients"]}

    assert (await status(client, settings, media_id))["state"] == "awaiting_upload"
    peek = await client.post("/v1/views/peek", json={"token": tokens["bob"]})
    assert (await peek.json())["state"] == "processing"
    await problem(await redeem(client, tokens["carol"]), 409, "media-processing")

    put = await client.put(upload_path(created), data=photo)
    assert put.status == 202, await put.text()
    assert (await put.json()) == {"id": media_id, "state": "processing", "kind": "image"}
    assert put.headers["Cache-Control"] == "no-store"
    await wait_state(client, settings, media_id, {"ready"})
    view = await redeemed(client, tokens["bob"])
    assert view["kind"] == "image" and (view["width"], view["height"]) == (80, 60)
    again = await client.put(upload_path(created), data=photo)
    await problem(again, 409, "upload-used")


async def test_before_the_upload_the_worker_key_is_under_the_upload_secret(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    """Before the bytes, neither Redis with today's KEK nor the tokens' holder opens the DEK."""
    photo = jpeg_bytes()
    created = await create_two_step(client, settings, len(photo))
    record = await media_record(redis, settings, created["id"])
    assert record["kek"] == "" and record["uwk"] and record["state"] == "awaiting_upload"
    epoch, kek = Keyring(settings.keyring_path, 3600).current()
    with pytest.raises(kc.UnwrapError):
        kc.unwrap(kek, kc.unb64(record["uwk"]), kc.kek_context(created["id"], epoch))
    assert created["upload_url"].split("/")[-1].split(".")[1] not in str(record)

    assert (await client.put(upload_path(created), data=photo)).status == 202
    record = await media_record(redis, settings, created["id"])
    assert "uwk" not in record and record["udone"] == "1"
    await wait_state(client, settings, created["id"], {"ready"})


async def test_size_is_required_and_bounded(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    largest = settings.limits.max_video_bytes
    for size, pointer in ((None, "/size"), (0, "/size"), (largest + 1, "/size"), ("9", "/size")):
        meta: dict[str, Any] = {"recipients": ["bob"], "views": 9}
        if size is not None:
            meta["size"] = size
        response = await client.post("/v1/media", json=meta, headers=auth(settings))
        body = await problem(response, 422, "invalid-field")
        assert {e["pointer"] for e in body["errors"]} == {"/views", pointer}


async def test_bad_bytes_leave_nothing_and_the_url_usable(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    photo = jpeg_bytes()
    created = await create_two_step(client, settings, len(photo))
    path = upload_path(created)
    await problem(await client.put(path, data=b"\x00" * len(photo)), 415, "unsupported-media-type")
    await problem(await client.put(path, data=photo[:-1]), 400, "bad-request")
    await problem(await client.put(path, data=photo + b"x"), 400, "bad-request")

    async def streamed(data: bytes) -> AsyncIterator[bytes]:  # chunked: no Content-Length
        yield data[:10]
        yield data[10:]

    await problem(await client.put(path, data=streamed(photo[:-5])), 400, "bad-request")
    await problem(await client.put(path, data=streamed(photo + b"xx")), 413, "payload-too-large")
    assert (await status(client, settings, created["id"]))["state"] == "awaiting_upload"
    assert await stored_objects(redis, settings, created["id"]) == set()
    assert stored_blobs(settings) == []
    assert (await client.put(path, data=photo)).status == 202


async def test_the_kind_cap_is_checked_once_the_kind_is_known(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    photo = jpeg_bytes()
    limits = dataclasses.replace(settings.limits, max_image_bytes=len(photo) - 1)
    settings = dataclasses.replace(settings, limits=limits)
    client = await make_client(settings)
    created = await create_two_step(client, settings, len(photo))  # fine for a video
    await problem(await client.put(upload_path(created), data=photo), 413, "payload-too-large")
    assert (await status(client, settings, created["id"]))["state"] == "awaiting_upload"
    assert stored_blobs(settings) == []


async def test_unknown_and_wrong_secret_are_one_404(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    created = await create_two_step(client, settings, 100)
    lookup = created["upload_url"].split("/")[-1].split(".")[0]
    for token in (lookup + "." + "A" * 43, "B" * 22 + "." + "A" * 43, "nonsense"):
        await problem(await client.put(f"/v1/uploads/{token}", data=b"x" * 100), 404, "not-found")


async def test_two_concurrent_puts_one_wins(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    photo = jpeg_bytes((80, 60))
    created = await create_two_step(client, settings, len(photo))
    path = upload_path(created)
    first_started = asyncio.Event()
    second_done = asyncio.Event()

    async def slow_first() -> AsyncIterator[bytes]:
        yield photo[:100]
        first_started.set()
        await second_done.wait()  # still mid-body while the second PUT runs
        yield photo[100:]

    async def second() -> Any:
        await first_started.wait()
        await asyncio.sleep(0.2)  # let the first body's head reach the server
        response = await client.put(path, data=photo)
        second_done.set()
        return response

    headers = {"Content-Length": str(len(photo))}
    one, two = await asyncio.gather(client.put(path, data=slow_first(), headers=headers), second())
    assert sorted([one.status, two.status]) == [202, 409]
    await problem(two, 409, "upload-used")
    await wait_state(client, settings, created["id"], {"ready"})


async def test_unsent_before_the_upload(client: TestClient[Any, Any], settings: Settings) -> None:
    photo = jpeg_bytes()
    created = await create_two_step(client, settings, len(photo))
    assert (await client.delete(f"/v1/media/{created['id']}", headers=auth(settings))).status == 204
    await problem(await client.put(upload_path(created), data=photo), 410, "revoked")


async def test_an_upload_never_sent_expires_and_is_purged(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    settings = dataclasses.replace(
        settings, limits=dataclasses.replace(settings.limits, upload_ttl=1)
    )
    client = await make_client(settings)
    photo = jpeg_bytes()
    created = await create_two_step(client, settings, len(photo), recipients=["bob"])
    body = await wait_state(client, settings, created["id"], {"failed"}, purged=True)
    assert body["error"]["code"] == "upload-expired"
    assert body["counts"]["failed"] == 1
    await problem(await client.put(upload_path(created), data=photo), 410, "upload-expired")
    token = created["recipients"][0]["token"]
    await problem(await redeem(client, token), 410, "media-failed")
    outbox = f"{settings.redis.prefix}:{{m:{created['id']}}}:outbox"
    events = [fields["type"] for _, fields in await redis.xrange(outbox)]
    assert "media.failed" in events and "media.purged" in events
    assert await stored_objects(redis, settings, created["id"]) == set()
    record = await media_record(redis, settings, created["id"])
    assert "uwk" not in record and "kek" not in record  # no wrapped key outlives the purge


async def test_an_idempotent_retry_replays_the_upload_url(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """The backend's retry of a JSON create gets the same tokens and URL; nothing new is made."""
    photo = jpeg_bytes()
    meta = {"recipients": ["bob"], "size": len(photo)}
    headers = {**auth(settings), "Idempotency-Key": "twostep-retry-0123456789ab"}
    first = await client.post("/v1/media", json=meta, headers=headers)
    again = await client.post("/v1/media", json=meta, headers=headers)
    assert first.status == again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["upload_url"] == (await first.json())["upload_url"]
    other = await client.post("/v1/media", json={**meta, "size": 5}, headers=headers)
    await problem(other, 422, "idempotency-key-reused")


async def test_expect_100_continue_refuses_before_the_body(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    photo = jpeg_bytes()
    created = await create_two_step(client, settings, len(photo))
    path = upload_path(created)
    wrong = await client.put(path, data=photo + b"xx", expect100=True)
    await problem(wrong, 400, "bad-request")
    assert (await client.put(path, data=photo, expect100=True)).status == 202
    again = await client.put(path, data=photo, expect100=True)
    await problem(again, 409, "upload-used")
