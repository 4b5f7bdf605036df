"""GET /v1/config: every limit and default, no auth, cacheable by ETag, no secret in it."""

from __future__ import annotations

import dataclasses
from typing import Any

from ephemeral.config import IdempotencySettings, LimitSettings, Settings, WebhookSettings
from tests.fixtures.core import JWT_KEY

PEPPER = "pepper-for-the-config-test-0123456789"
WEBHOOK_SECRET = "whsec_c2VjcmV0LWZvci10aGUtY29uZmlnLXRlc3Q="


async def test_config_publishes_every_default_with_its_configured_value(
    make_client: Any, settings: Settings
) -> None:
    settings = dataclasses.replace(
        settings,
        idempotency=IdempotencySettings(pepper=PEPPER),
        webhooks=WebhookSettings(urls="https://hooks.example.test/in", secrets=WEBHOOK_SECRET),
    )
    client = await make_client(settings, worker=False)
    response = await client.get("/v1/config")  # no Authorization: anyone may read it
    assert response.status == 200
    assert response.headers["Cache-Control"].startswith("public")
    text = await response.text()
    body = await response.json()
    lim = settings.limits
    # The "Defaults" table of docs/API.md, row by row.
    assert body["limits"]["max_upload_bytes"] == {
        "image": lim.max_image_bytes,
        "video": lim.max_video_bytes,
        "audio": lim.max_audio_bytes,
    }
    assert body["limits"]["max_image_pixels"] == lim.max_image_pixels
    assert body["limits"]["max_video_frame"] == {"width": 3840, "height": 2160}
    assert body["limits"]["upload_deadline"] == lim.upload_deadline
    assert body["limits"]["upload_min_rate"] == 32 * 1024
    assert body["limits"]["upload_rate_window"] == 30
    assert body["processing"] == {"job_timeout": settings.worker.job_timeout, "max_tries": 3}
    assert body["limits"]["max_duration"] == {"video": 60, "audio": 60}
    assert body["output"] == {"image_max_side": 4096, "allow_remux": False}
    assert body["defaults"]["expires_in"] == {
        "default": 1_209_600,
        "min": lim.expires_min,
        "max": 2_592_000,
    }
    assert body["defaults"]["replay_window"]["default"] == 86_400
    assert body["defaults"]["views"] == {"default": 1, "max": 2}
    assert body["lease"]["idle"] == 60 and body["lease"]["max_floor"] == 600
    assert body["lease"]["max"] == settings.lease_max_bound
    assert body["receipts_ttl"] == 30 * 86_400
    assert body["limits"]["max_recipients"] == 250
    published = {p["name"]: p for p in body["rate_limits"]["policies"]}
    assert body["rate_limits"]["headers"] == "draft-ietf-httpapi-ratelimit-headers-10"
    assert published["uploads"]["quota"] == settings.ratelimit.uploads_per_minute
    assert published["redeem-misses"]["per"] == "client-address"
    assert body["events"]["sse_max_streams"] == 5 and body["events"]["retention"] == 86_400
    assert body["webhooks"]["max_tries"] == 8
    assert body["idempotency"]["ttl"] == 86_400
    assert set(body["kinds"]) == {"image", "video", "audio"}
    assert "image/heic" in body["accepted_formats"]["image"]
    assert "video/webm" in body["accepted_formats"]["video"]
    assert "audio/ogg" in body["accepted_formats"]["audio"]
    # Nothing secret or internal: keys, peppers, webhook endpoints, Redis.
    for secret in (JWT_KEY, PEPPER, WEBHOOK_SECRET, "hooks.example.test", settings.redis.url):
        assert str(secret) not in text
    assert "token" not in text.lower()


async def test_config_etag_follows_the_settings(make_client: Any, settings: Settings) -> None:
    client = await make_client(settings, worker=False)
    first = await client.get("/v1/config")
    etag = first.headers["ETag"]
    cached = await client.get("/v1/config", headers={"If-None-Match": etag})
    assert cached.status == 304 and cached.headers["ETag"] == etag
    assert await cached.read() == b""

    changed = dataclasses.replace(
        settings, limits=LimitSettings(expires_min=1, max_recipients=10, max_image_bytes=1 << 20)
    )
    other = await make_client(changed, worker=False)
    second = await other.get("/v1/config", headers={"If-None-Match": etag})
    assert second.status == 200 and second.headers["ETag"] != etag
    body = await second.json()
    assert body["limits"]["max_recipients"] == 10
    assert body["limits"]["max_upload_bytes"]["image"] == 1 << 20
    assert body != await first.json()
