"""Privacy: only ciphertext at rest, metadata stripped, no secret in any log line."""

from __future__ import annotations

import io
import logging
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient
from PIL import Image
from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.crypto.keys import unb64
from tests.api.helpers import lease_auth, redeemed
from tests.fixtures.core import upload, wait_state

CAMERA = "PrivacyCam X9000"
XMP_MARKER = "xmp-marker-7f3a9c"
CAPTION = "meet me at the old lighthouse 51.5007N"


def gps_photo() -> bytes:
    """A 120x80 photo whose EXIF says: rotate 90 deg (orientation 6), with GPS and a camera."""
    image = Image.new("RGB", (120, 80), "white")
    for x in range(30):  # a red block in the top-left corner of the stored pixels
        for y in range(20):
            image.putpixel((x, y), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    exif[0x010F] = "PrivacyCam"  # Make
    exif[0x0110] = CAMERA  # Model
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (51.0, 30.0, 2.52)
    gps[3] = "W"
    gps[4] = (0.0, 7.0, 39.6)
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description about="{XMP_MARKER}"/></x:xmpmeta>'
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), xmp=xmp.encode(), comment=b"secret comment")
    return out.getvalue()


async def every_redis_value(url: str, prefix: str) -> bytes:
    raw = Redis.from_url(url)
    blob = bytearray()
    try:
        async for key in raw.scan_iter(f"{prefix}:*"):
            kind = (await raw.type(key)).decode()
            blob += key
            if kind == "string":
                blob += await raw.get(key) or b""
            elif kind == "hash":
                for field, value in (await raw.hgetall(key)).items():
                    blob += field + value
            elif kind == "list":
                blob += b"".join(await raw.lrange(key, 0, -1))
            elif kind == "set":
                blob += b"".join(await raw.smembers(key))
            elif kind == "zset":
                blob += b"".join(await raw.zrange(key, 0, -1))
            elif kind == "stream":
                for _, fields in await raw.xrange(key):
                    for field, value in fields.items():
                        blob += field + value
    finally:
        await raw.aclose()
    return bytes(blob)


def windows(data: bytes, size: int = 48) -> list[bytes]:
    step = max(size, len(data) // 12)
    return [data[i : i + size] for i in range(0, len(data) - size, step)]


async def test_nothing_readable_at_rest_and_metadata_stripped(
    client: TestClient[Any, Any],
    settings: Settings,
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    original = gps_photo()
    created = await upload(
        client,
        settings,
        {"recipients": ["bob", "carol"], "caption": CAPTION, "views": 2},
        original,
    )
    await wait_state(client, settings, created["id"], {"ready"})
    tokens = {r["id"]: r["token"] for r in created["recipients"]}
    view = await redeemed(client, tokens["bob"])
    assert view["caption"] == CAPTION
    response = await client.get(f"/v1/views/{view['view_id']}/content", headers=lease_auth(view))
    output = await response.read()

    # What the recipient sees: upright, and nothing but pixels.
    shown = Image.open(io.BytesIO(output))
    assert shown.format == "JPEG" and shown.size == (80, 120)
    red = cast(tuple[int, int, int], shown.convert("RGB").getpixel((shown.width - 5, 5)))
    assert red[0] > 200 and red[1] < 60  # the red corner rotated to the top-right
    assert not shown.getexif() and "icc_profile" not in shown.info
    assert "xmp" not in shown.info and "comment" not in shown.info
    for needle in (
        b"PrivacyCam",
        CAMERA.encode(),
        XMP_MARKER.encode(),
        b"GPS",
        b"Exif",
        b"secret comment",
    ):
        assert needle not in output

    # What sits at rest: only ciphertext, in the blobs and in Redis.
    blobs = b"".join(
        p.read_bytes() for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()
    )
    assert blobs.startswith(b"EMS1")
    state = await every_redis_value(settings.redis.url or "", settings.redis.prefix)
    secrets = [unb64(t.split(".")[1]) for t in tokens.values()]
    needles = (
        windows(original)
        + windows(output)
        + [CAMERA.encode(), XMP_MARKER.encode(), CAPTION.encode(), view["lease"].encode()]
        + [t.split(".")[1].encode() for t in tokens.values()]
        + secrets
    )
    for needle in needles:
        assert needle not in blobs
        assert needle not in state

    # What the logs say: route templates only, never a lookup, view id, token or lease.
    lines = "\n".join(record.getMessage() for record in caplog.records)
    assert "/v1/views/{view_id}/content" in lines
    forbidden = [view["view_id"], view["lease"]]
    for token in tokens.values():
        forbidden += token.split(".")
    for needle in forbidden:
        assert needle not in lines
