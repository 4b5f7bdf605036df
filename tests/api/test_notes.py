"""Screenshots, recordings and reports told on a lease; the link-preview hint."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.state import typed
from ephemeral.state.keys import Keys
from ephemeral.web_keys import SERVICES
from tests.api.helpers import lease_auth, member, problem, redeemed, status
from tests.api.test_views import ready_media


async def test_screenshots_counted_once_per_lease_and_kind(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    media_id, tokens = await ready_media(client, settings, recipients=["bob", "carol"])
    view = await redeemed(client, tokens["bob"])
    url = f"/v1/views/{view['view_id']}/screenshot"
    first = await client.post(url, json={"kind": "screenshot"}, headers=lease_auth(view))
    assert first.status == 202 and (await first.json())["accepted"] is True
    again = await client.post(url, json={"kind": "screenshot"}, headers=lease_auth(view))
    assert again.status == 202 and (await again.json())["accepted"] is False
    body = await status(client, settings, media_id)
    row = member(body, "bob")
    assert row["screenshot_count"] == 1 and row["first_screenshot_at"] == row["last_screenshot_at"]
    assert body["counts"]["screenshot"] == 1
    # The viewer closed; a recording noticed just after is still accepted.
    await client.delete(f"/v1/views/{view['view_id']}", headers=lease_auth(view))
    late = await client.post(url, json={"kind": "recording"}, headers=lease_auth(view))
    assert late.status == 202 and (await late.json())["accepted"] is True
    body = await status(client, settings, media_id)
    assert member(body, "bob")["screenshot_count"] == 2 and body["counts"]["screenshot"] == 1
    bad = await client.post(url, json={"kind": "photo"}, headers=lease_auth(view))
    await problem(bad, 422, "invalid-field")
    wrong = await client.post(
        url, json={"kind": "screenshot"}, headers={"Authorization": "Lease " + "x" * 43}
    )
    await problem(wrong, 404, "not-found")
    # Ten minutes after the end the lease no longer takes reports.
    keys = Keys(settings.redis.prefix)
    lease_key = keys.lease(media_id, view["view_id"])
    await typed.hset(redis, lease_key, "ended_at", str(int(time.time() * 1000) - 601_000))
    await typed.hdel(redis, lease_key, "noted:report")
    too_late = await client.post(
        f"/v1/views/{view['view_id']}/report", json={}, headers=lease_auth(view)
    )
    await problem(too_late, 410, "lease-ended")


async def test_reports_reach_the_backend_only(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    media_id, tokens = await ready_media(client, settings)
    view = await redeemed(client, tokens["bob"])
    response = await client.post(
        f"/v1/views/{view['view_id']}/report", json={"reason": "spam"}, headers=lease_auth(view)
    )
    assert response.status == 202
    keys = Keys(settings.redis.prefix)

    async def types(stream: str) -> list[str]:
        entries = await redis.xrange(stream)
        return [json.loads(fields["e"])["type"] for _, fields in entries]

    async with asyncio.timeout(10):
        while "recipient.reported" not in await types(keys.tenant_events("default")):
            await asyncio.sleep(0.05)
    reported = [
        json.loads(f["e"])
        for _, f in await redis.xrange(keys.tenant_events("default"))
        if json.loads(f["e"])["type"] == "recipient.reported"
    ]
    assert reported[0]["data"]["reason"] == "spam" and reported[0]["data"]["media_id"] == media_id
    assert "recipient.reported" not in await types(keys.sender_events("default", "alice"))
    assert "recipient.opened" in await types(keys.sender_events("default", "alice"))


async def test_link_preview_hint_is_set_once(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    media_id, tokens = await ready_media(client, settings)
    views = client.app[SERVICES].views
    lookup = tokens["bob"].split(".")[0]
    await views.mark_previewed(lookup)
    first = member(await status(client, settings, media_id), "bob")["link_previewed_at"]
    await asyncio.sleep(0.01)
    await views.mark_previewed(lookup)
    await views.mark_previewed("A" * 22)  # unknown: nothing happens
    row = member(await status(client, settings, media_id), "bob")
    assert first and row["link_previewed_at"] == first
    assert row["status"] == "sent" and row["views_left"] == 1
