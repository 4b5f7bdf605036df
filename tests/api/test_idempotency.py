"""Idempotency-Key on POST /v1/media: one media per key, replays, 409/422, scope, tombstones."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.state import typed
from ephemeral.state.keys import Keys
from tests.api.helpers import problem, redeemed
from tests.api.tenant_helpers import jwt_for, two_tenants
from tests.fixtures.core import auth, jpeg_bytes, multipart, wait_state

BOUNDARY = "idem-test-boundary"


def new_key() -> str:
    return str(uuid.uuid4())


async def create(
    client: TestClient[Any, Any],
    settings: Settings,
    key: str | None,
    meta: dict[str, Any],
    data: bytes | None = None,
    sub: str = "alice",
) -> Any:
    headers = auth(settings, sub)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post(
        "/v1/media", data=multipart(meta, data or jpeg_bytes()), headers=headers
    )


def raw_body(meta: dict[str, Any], data: bytes) -> tuple[bytes, bytes, bytes]:
    """A multipart body by hand: (the meta part and the file part's headers, file, end)."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="meta"\r\n'
        f"Content-Type: application/json\r\n\r\n{json.dumps(meta)}\r\n"
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head, data, f"\r\n--{BOUNDARY}--\r\n".encode()


async def dripping(
    redis: Redis, settings: Settings, head: bytes, data: bytes
) -> AsyncIterator[bytes]:
    """The head, then the file a byte at a time until the server has claimed the key (the
    multipart reader needs bytes after a part to see where it ends); then the rest of the file."""
    yield head
    sent = 0
    deadline = time.monotonic() + 10
    while not await idem_records(redis, settings) and time.monotonic() < deadline:
        yield data[sent : sent + 1]
        sent += 1
        await asyncio.sleep(0.02)
    yield data[sent:]


async def redis_snapshot(redis: Redis, prefix: str) -> dict[str, Any]:
    """Every key of the test's prefix with its value (arq's job keys are not under it)."""
    found: dict[str, Any] = {}
    async for key in redis.scan_iter(f"{prefix}:*"):
        kind = await redis.type(key)
        if kind == "hash":
            found[key] = await typed.hgetall(redis, key)
        elif kind == "string":
            found[key] = await redis.get(key)
        elif kind == "set":
            found[key] = sorted(await typed.smembers(redis, key))
        elif kind == "zset":
            found[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            found[key] = await typed.lrange(redis, key, 0, -1)
        elif kind == "stream":
            found[key] = await redis.xrange(key)
    return found


def blobs(settings: Settings) -> list[Path]:
    root = settings.data_dir / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def idem_records(redis: Redis, settings: Settings) -> dict[str, dict[str, str]]:
    prefix = Keys(settings.redis.prefix).idempotency("")
    return {k: await typed.hgetall(redis, k) async for k in redis.scan_iter(prefix + "*")}


async def test_a_retry_replays_the_first_answer_and_changes_nothing(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    client = await make_client(settings, worker=False)
    key = new_key()
    meta = {"recipients": ["bob", "carol"], "client_ref": "msg-1"}
    first = await create(client, settings, key, meta)
    assert first.status == 202, await first.text()
    assert "Idempotent-Replayed" not in first.headers
    body = await first.json()
    before, files = await redis_snapshot(redis, settings.redis.prefix), blobs(settings)

    again = await create(client, settings, key, meta, data=jpeg_bytes(color="blue"))
    assert again.status == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == body  # the same media, the same tokens
    assert again.headers["Location"] == f"/v1/media/{body['id']}"
    assert again.headers["Cache-Control"] == "no-store"
    assert await redis_snapshot(redis, settings.redis.prefix) == before
    assert blobs(settings) == files
    listing = await (await client.get("/v1/media", headers=auth(settings))).json()
    assert [m["id"] for m in listing["media"]] == [body["id"]]

    # Redis alone reveals neither the tokens nor the key: the record is named by an HMAC and
    # its answer is ciphertext; no value anywhere holds a token or a token secret.
    (name, record), *others = (await idem_records(redis, settings)).items()
    assert not others and key not in name
    assert record["st"] == "done" and record["media"] == body["id"]
    secrets = [r["token"] for r in body["recipients"]] + [
        r["token"].split(".")[1] for r in body["recipients"]
    ]
    dump = json.dumps(before, default=str)
    assert key not in dump
    for secret in secrets:
        assert secret not in dump
    for value in record.values():
        assert all(r["token"].split(".")[0] not in value for r in body["recipients"])
    ttl = await redis.pttl(name)
    assert 86_400_000 - 60_000 < ttl <= 86_400_000  # 24 h from the first request


async def test_concurrent_identical_requests_create_one_media(
    make_client: Any, settings: Settings
) -> None:
    client = await make_client(settings, worker=False)
    key, meta = new_key(), {"recipients": ["bob"]}
    data = jpeg_bytes((1200, 900))
    responses = await asyncio.gather(*(create(client, settings, key, meta, data) for _ in range(8)))
    created: list[dict[str, Any]] = []
    replayed: list[dict[str, Any]] = []
    busy = []
    for response in responses:
        if response.status == 202:
            body = await response.json()
            target = replayed if response.headers.get("Idempotent-Replayed") else created
            target.append(body)
        else:
            await problem(response, 409, "idempotency-key-in-flight")
            assert int(response.headers["Retry-After"]) >= 1
            busy.append(response)
    assert len(created) == 1, (len(created), len(replayed), len(busy))
    assert all(body == created[0] for body in replayed)
    listing = await (await client.get("/v1/media", headers=auth(settings))).json()
    assert [m["id"] for m in listing["media"]] == [created[0]["id"]]


async def test_the_same_key_with_other_meta_is_422(make_client: Any, settings: Settings) -> None:
    # No worker: these end right after a create, before any job could run.
    client = await make_client(settings, worker=False)
    key = new_key()
    assert (await create(client, settings, key, {"recipients": ["bob"]})).status == 202
    other = await create(client, settings, key, {"recipients": ["bob"], "views": 2})
    await problem(other, 422, "idempotency-key-reused")
    # Defaults are part of the meta: spelling one out is the same request.
    same = await create(client, settings, key, {"recipients": ["bob"], "views": 1})
    assert same.status == 202 and same.headers["Idempotent-Replayed"] == "true"


async def test_a_retry_while_the_first_upload_streams_is_409(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    client = await make_client(settings, worker=False)
    key, meta = new_key(), {"recipients": ["bob"]}
    head, data, end = raw_body(meta, jpeg_bytes())
    resume = asyncio.Event()

    async def paused_body() -> AsyncIterator[bytes]:
        async for piece in dripping(redis, settings, head, data[:200]):
            yield piece
        await resume.wait()
        yield data[200:] + end

    headers = {
        **auth(settings),
        "Idempotency-Key": key,
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    first = asyncio.ensure_future(client.post("/v1/media", data=paused_body(), headers=headers))
    deadline = time.monotonic() + 10
    while not (records := await idem_records(redis, settings)) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert [r["st"] for r in records.values()] == ["inflight"]
    retry = await create(client, settings, key, meta)
    await problem(retry, 409, "idempotency-key-in-flight")
    assert int(retry.headers["Retry-After"]) >= 1
    clash = await create(client, settings, key, {"recipients": ["carol"]})
    await problem(clash, 422, "idempotency-key-reused")
    resume.set()
    done = await first
    assert done.status == 202, await done.text()
    later = await create(client, settings, key, meta)
    assert later.headers["Idempotent-Replayed"] == "true"
    assert await later.json() == await done.json()


async def test_a_rejected_upload_releases_the_key(make_client: Any, settings: Settings) -> None:
    # No worker: these end right after a create, before any job could run.
    client = await make_client(settings, worker=False)
    key, meta = new_key(), {"recipients": ["bob"]}
    refused = await create(client, settings, key, meta, data=b"plain text, not a photo" * 10)
    await problem(refused, 415, "unsupported-media-type")
    retry = await create(client, settings, key, meta)
    assert retry.status == 202 and "Idempotent-Replayed" not in retry.headers


async def test_a_client_that_disconnects_mid_upload_releases_the_key(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    client = await make_client(settings, worker=False)
    key, meta = new_key(), {"recipients": ["bob"]}
    head, data, end = raw_body(meta, jpeg_bytes((800, 600)))
    request = (
        "POST /v1/media HTTP/1.1\r\n"
        f"Host: {client.host}:{client.port}\r\n"
        f"Authorization: {auth(settings)['Authorization']}\r\n"
        f"Idempotency-Key: {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(head) + len(data) + len(end)}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(request)
    async for piece in dripping(redis, settings, head, data[:200]):
        writer.write(piece)
        await writer.drain()
    writer.close()  # gone, mid-file
    await writer.wait_closed()
    deadline = time.monotonic() + 20
    while True:  # the server notices the disconnect, discards the upload, frees the key
        retry = await create(client, settings, key, meta)
        if retry.status != 409 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert retry.status == 202, await retry.text()
    assert "Idempotent-Replayed" not in retry.headers
    listing = await (await client.get("/v1/media", headers=auth(settings))).json()
    assert [m["id"] for m in listing["media"]] == [(await retry.json())["id"]]
    del reader


async def test_keys_are_scoped_to_tenant_and_sender(make_client: Any, settings: Settings) -> None:
    client = await make_client(settings, worker=False)
    other_tenant = await make_client(dataclasses.replace(settings, tenant="other"), worker=False)
    key, meta = new_key(), {"recipients": ["carol"]}
    ids = set()
    for target, sub in ((client, "alice"), (client, "bob"), (other_tenant, "alice")):
        response = await create(target, settings, key, meta, sub=sub)
        assert response.status == 202 and "Idempotent-Replayed" not in response.headers
        ids.add((await response.json())["id"])
    assert len(ids) == 3


async def test_a_malformed_key_is_422_and_leaves_nothing(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    # No worker: these end right after a create, before any job could run.
    client = await make_client(settings, worker=False)
    for bad in ("short", "a" * 21, "has spaces in it, twenty-two+", "x" * 256, "é" * 30):
        response = await create(client, settings, bad, {"recipients": ["bob"]})
        await problem(response, 422, "invalid-field")
    assert await idem_records(redis, settings) == {}
    assert blobs(settings) == []
    for good in (new_key(), "A" * 22, "b64url_-" * 4):
        assert (await create(client, settings, good, {"recipients": ["bob"]})).status == 202


async def test_after_unsend_a_replay_gets_the_state_without_tokens(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    # No worker: these end right after a create, before any job could run.
    client = await make_client(settings, worker=False)
    key, meta = new_key(), {"recipients": ["bob"]}
    first = await (await create(client, settings, key, meta)).json()
    assert (await client.delete(f"/v1/media/{first['id']}", headers=auth(settings))).status == 204
    [record] = (await idem_records(redis, settings)).values()
    assert record["st"] == "tomb" and "ct" not in record
    replay = await create(client, settings, key, meta)
    assert replay.status == 202 and replay.headers["Idempotent-Replayed"] == "true"
    text = await replay.text()
    body = json.loads(text)
    assert body["id"] == first["id"] and body["state"] == "revoked"
    assert first["recipients"][0]["token"].split(".")[0] not in text
    assert all("token" not in row and "url" not in row for row in body["recipients"])


async def test_after_purge_a_replay_gets_the_state_without_tokens(
    client: Any, settings: Settings, redis: Redis
) -> None:
    key, meta = new_key(), {"recipients": ["bob"]}
    first = await (await create(client, settings, key, meta)).json()
    await wait_state(client, settings, first["id"], {"ready"})
    view = await redeemed(client, first["recipients"][0]["token"])
    lease = {"Authorization": f"Lease {view['lease']}"}
    await client.delete(f"/v1/views/{view['view_id']}", headers=lease)
    await wait_state(client, settings, first["id"], {"purged"}, purged=True)
    [record] = (await idem_records(redis, settings)).values()
    assert record["st"] == "tomb" and "ct" not in record
    replay = await create(client, settings, key, meta)
    text = await replay.text()
    assert replay.status == 202 and replay.headers["Idempotent-Replayed"] == "true"
    assert json.loads(text)["state"] == "purged"
    assert first["recipients"][0]["token"].split(".")[0] not in text


async def test_a_malformed_key_is_refused_before_the_body_is_sent(
    make_client: Any, settings: Settings
) -> None:
    client = await make_client(settings, worker=False)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(
            b"POST /v1/media HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: {auth(settings)['Authorization']}\r\n".encode()
            + b"Idempotency-Key: too-short\r\n"
            + b"Content-Type: multipart/form-data; boundary=b\r\n"
            + b"Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 422"), head  # no body was ever sent
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_status_only_tenant_replay_shows_no_times_to_the_sender(
    make_client: Any, settings: Settings
) -> None:
    settings = two_tenants(settings, b_receipts="status_only")
    client = await make_client(settings, worker=False)
    sender = jwt_for(settings, "b", "alice")
    key, meta = new_key(), {"recipients": ["bob"]}
    headers = {**sender, "Idempotency-Key": key}
    first = await client.post("/v1/media", data=multipart(meta, jpeg_bytes()), headers=headers)
    assert first.status == 202, await first.text()
    created = await first.json()
    peek = await client.post("/v1/views/peek", json={"token": created["recipients"][0]["token"]})
    assert peek.status == 200  # bob's delivered_at is set now
    assert (await client.delete(f"/v1/media/{created['id']}", headers=sender)).status == 204
    replay = await client.post("/v1/media", data=multipart(meta, jpeg_bytes()), headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    [bob] = (await replay.json())["recipients"]
    assert bob["status"] == "revoked"  # unsent before opening: delivered, then revoked
    assert bob["delivered_at"] is None and bob["revoked_at"] is None
