"""Bad input gets a clear 4xx problem+json and leaves nothing behind."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import struct
import zlib
from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.state import typed
from ephemeral.state.keys import Keys
from tests.api.helpers import member, problem
from tests.api.test_lifecycle import stored_blobs
from tests.fixtures.core import auth, jpeg_bytes, multipart, sender_token, upload, wait_state


async def leftovers(redis: Redis, settings: Settings) -> list[str]:
    queue = f"{settings.redis.prefix}:queue"
    # Rate-limit counters count attempts, refused ones too (that is how abuse is seen); they
    # hold no media and expire with their window.
    counters = Keys(settings.redis.prefix).ratelimit_prefix() + ":"
    found = [
        key
        async for key in redis.scan_iter(f"{settings.redis.prefix}:*")
        if not key.startswith((queue, counters))  # queue: arq's own health-check record
    ]
    # The live-set shards and the queue may exist empty-handed; they must hold nothing of ours.
    real = []
    for key in found:
        kind = await redis.type(key)
        if kind == "zset" and await redis.zcard(key) == 0:
            continue
        if kind == "hash" and not await typed.hgetall(redis, key):
            continue
        real.append(key)
    return real


async def post(client: TestClient[Any, Any], settings: Settings, body: Any, **headers: str) -> Any:
    return await client.post("/v1/media", data=body, headers={**auth(settings), **headers})


async def test_oversize_is_413_and_leaves_nothing(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    limits = dataclasses.replace(settings.limits, max_image_bytes=100 * 1024)
    settings = dataclasses.replace(settings, limits=limits)
    client = await make_client(settings)
    big = jpeg_bytes()[:20] + os.urandom(150 * 1024)  # inside the body cap, over the file cap
    response = await post(client, settings, multipart({"recipients": ["bob"]}, big))
    await problem(response, 413, "payload-too-large")
    huge = jpeg_bytes()[:20] + os.urandom(600 * 1024)  # refused from Content-Length alone
    response = await post(client, settings, multipart({"recipients": ["bob"]}, huge))
    await problem(response, 413, "payload-too-large")

    async def chunked() -> Any:
        boundary = "xyz"
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="meta"\r\n'
            'Content-Type: application/json\r\n\r\n{"recipients": ["bob"]}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            "\r\n"
        ).encode() + big[:20]
        for i in range(20, len(big), 8192):
            yield big[i : i + 8192]
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await post(
        client, settings, chunked(), **{"Content-Type": "multipart/form-data; boundary=xyz"}
    )
    await problem(response, 413, "payload-too-large")
    assert stored_blobs(settings) == []
    assert await leftovers(redis, settings) == []


async def test_text_named_jpg_is_415(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    text = b"<html><body>definitely not a photo</body></html>" * 10
    response = await post(client, settings, multipart({"recipients": ["bob"]}, text, "cat.jpg"))
    await problem(response, 415, "unsupported-media-type")
    assert stored_blobs(settings) == [] and await leftovers(redis, settings) == []


async def test_part_order_and_shape_are_400(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    form = FormData()
    form.add_field("file", jpeg_bytes(), filename="a.jpg")
    form.add_field("meta", json.dumps({"recipients": ["bob"]}), content_type="application/json")
    await problem(await post(client, settings, form), 400, "bad-request")
    form = FormData()
    form.add_field("meta", "{not json", content_type="application/json")
    form.add_field("file", jpeg_bytes(), filename="a.jpg")
    await problem(await post(client, settings, form), 400, "bad-request")
    form = FormData()
    form.add_field("meta", json.dumps({"recipients": ["bob"]}), content_type="application/json")
    await problem(await post(client, settings, form), 400, "bad-request")
    form = FormData()
    form.add_field("meta", json.dumps({"recipients": ["bob"]}), content_type="application/json")
    form.add_field("file", jpeg_bytes(), filename="a.jpg")
    form.add_field("extra", "after the file")
    await problem(await post(client, settings, form), 400, "bad-request")
    garbage = await post(
        client, settings, b"--nope\r\n\r\n", **{"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert garbage.status == 400
    # A JSON body is the two-step create, which needs the upload's size up front.
    json_body = await client.post("/v1/media", json={"recipients": ["bob"]}, headers=auth(settings))
    await problem(json_body, 422, "invalid-field")
    text_body = await post(client, settings, b"hello", **{"Content-Type": "text/plain"})
    await problem(text_body, 415, "unsupported-media-type")
    assert stored_blobs(settings) == [] and await leftovers(redis, settings) == []


async def test_bad_meta_is_422_with_pointers(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    meta = {
        "recipients": ["bob", "bob", "", "alice", 5, "carol"],
        "views": 3,
        "expires_in": 10**9,
        "caption": "x" * 486,
        "capture": "maybe",
        "colour": "red",
    }
    response = await post(client, settings, multipart(meta, jpeg_bytes()))
    body = await problem(response, 422, "invalid-field")
    pointers = {e["pointer"] for e in body["errors"]}
    assert {
        "/recipients/1",
        "/recipients/2",
        "/recipients/3",
        "/recipients/4",
        "/views",
        "/expires_in",
        "/caption",
        "/capture",
        "/colour",
    } <= pointers
    assert "/recipients/5" not in pointers
    empty = await post(client, settings, multipart({"recipients": []}, jpeg_bytes()))
    await problem(empty, 422, "invalid-field")
    assert stored_blobs(settings) == [] and await leftovers(redis, settings) == []


def bomb_png(side: int = 30_000) -> bytes:
    """A 30000x30000 greyscale PNG of a few hundred KiB: 900 MP once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * side
    body = b"".join(raw.compress(row) for _ in range(side)) + raw.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


async def test_decompression_bomb_fails_cleanly(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    created = await upload(client, settings, {"recipients": ["bob"]}, bomb_png())
    body = await wait_state(client, settings, created["id"], {"failed"})
    assert body["error"]["code"] == "too-many-pixels"
    assert member(body, "bob")["status"] == "failed" and body["counts"]["failed"] == 1
    response = await client.post("/v1/views", json={"token": created["recipients"][0]["token"]})
    await problem(response, 410, "media-failed")
    body = await wait_state(client, settings, created["id"], {"failed"}, purged=True)
    assert stored_blobs(settings) == []


async def test_a_truncated_photo_fails_as_invalid_media(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    image = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (400, 300), "blue").save(image, "PNG")
    created = await upload(client, settings, {"recipients": ["bob"]}, image.getvalue()[:200])
    body = await wait_state(client, settings, created["id"], {"failed"})
    assert body["error"]["code"] == "invalid-media"


async def test_expect_100_continue_is_answered_with_the_error(
    make_client: Any, settings: Settings
) -> None:
    client = await make_client(settings)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(
            b"POST /v1/media HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {sender_token(settings)}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=b\r\n"
            + b"Content-Length: 999999999999\r\nExpect: 100-continue\r\n\r\n"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 413"), head  # no body was ever sent
    finally:
        writer.close()
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(
            b"POST /v1/media HTTP/1.1\r\nHost: x\r\n"
            + b"Content-Type: multipart/form-data; boundary=b\r\n"
            + b"Content-Length: 10\r\nExpect: 100-continue\r\n\r\n"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 401") and b"WWW-Authenticate" in head
    finally:
        writer.close()


async def test_multipart_without_a_usable_boundary_is_400(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    """Found by schemathesis: a Content-Type with no boundary was a 500."""
    body = b'{"recipients": ["bob"]}'
    for ctype in ("multipart/form-data", "multipart/form-data; boundary=" + "b" * 71):
        await problem(
            await post(client, settings, body, **{"Content-Type": ctype}), 400, "bad-request"
        )
    assert stored_blobs(settings) == [] and await leftovers(redis, settings) == []


async def test_a_part_header_aiohttp_refuses_is_400(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    """Found by schemathesis: a control character in a part's header was a 500."""
    body = (
        b'--b\r\nContent-Disposition: form-data; name="a\x1cb"\r\n\r\n{}\r\n'
        b'--b\r\nContent-Disposition: form-data; name="meta"\r\n\r\n{"recipients": ["bob"]}\r\n'
        b"--b--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    await problem(await post(client, settings, body, **headers), 400, "bad-request")
    assert stored_blobs(settings) == [] and await leftovers(redis, settings) == []
