"""Unsend, revoke, expiry and the sweeper: content is purged whatever path leads there."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.services import open_services
from ephemeral.state import typed
from ephemeral.state.keys import Keys
from tests.api.helpers import lease_auth, member, problem, redeem, redeemed, status
from tests.api.test_views import ready_media
from tests.fixtures.core import auth, upload, wait_state


def stored_blobs(settings: Settings) -> list[str]:
    root = settings.data_dir / "blobs"
    return [
        str(p) for p in root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(root).parts
    ]


async def no_keys_left(redis: Redis, settings: Settings, media_id: str, rids: list[str]) -> None:
    keys = Keys(settings.redis.prefix)
    assert await typed.hget(redis, keys.media(media_id), "kek") is None
    assert await typed.hget(redis, keys.media(media_id), "caption") is None
    for rid in rids:
        assert await typed.hget(redis, keys.recipient(media_id, rid), "wk") is None
    assert await typed.smembers(redis, keys.objects(media_id)) == set()


async def test_unsend_before_anyone_opened(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    media_id, tokens = await ready_media(client, settings, recipients=["bob", "carol"])
    response = await client.delete(f"/v1/media/{media_id}", headers=auth(settings))
    assert response.status == 204
    again = await client.delete(f"/v1/media/{media_id}", headers=auth(settings))
    assert again.status == 204
    body = await status(client, settings, media_id)
    assert body["state"] == "revoked" and body["purged_at"]
    for rid in ("bob", "carol"):
        row = member(body, rid)
        assert row["status"] == "revoked" and row["revoked_reason"] == "unsent"
        await problem(await redeem(client, tokens[rid]), 410, "revoked")
        peek = await client.post("/v1/views/peek", json={"token": tokens[rid]})
        assert (await peek.json())["state"] == "revoked"
    assert body["counts"]["revoked"] == 2
    assert stored_blobs(settings) == []
    await no_keys_left(redis, settings, media_id, ["bob", "carol"])


async def test_unsend_after_one_opened_cuts_the_live_lease(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    media_id, tokens = await ready_media(client, settings, recipients=["bob", "carol"])
    view = await redeemed(client, tokens["bob"])
    assert (await client.delete(f"/v1/media/{media_id}", headers=auth(settings))).status == 204
    body = await status(client, settings, media_id)
    assert member(body, "bob")["status"] == "opened"  # those who opened keep opened
    assert member(body, "carol")["status"] == "revoked"
    cut = await client.get(f"/v1/views/{view['view_id']}/content", headers=lease_auth(view))
    await problem(cut, 410, "lease-ended")
    assert body["purged_at"] and stored_blobs(settings) == []
    await no_keys_left(redis, settings, media_id, ["bob", "carol"])


async def test_revoke_one_member(client: TestClient[Any, Any], settings: Settings) -> None:
    media_id, tokens = await ready_media(client, settings, recipients=["bob", "carol"])
    response = await client.delete(f"/v1/media/{media_id}/recipients/carol", headers=auth(settings))
    assert response.status == 204
    await problem(await redeem(client, tokens["carol"]), 410, "revoked")
    body = await status(client, settings, media_id)
    assert member(body, "carol")["revoked_reason"] == "removed"
    assert body["state"] == "ready"
    view = await redeemed(client, tokens["bob"])
    await client.delete(f"/v1/views/{view['view_id']}", headers=lease_auth(view))
    await wait_state(client, settings, media_id, {"purged"})
    unknown = await client.delete(f"/v1/media/{media_id}/recipients/zed", headers=auth(settings))
    await problem(unknown, 404, "not-found")


async def test_short_expiry_purges_unopened_media(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    created = await upload(client, settings, {"recipients": ["bob"], "expires_in": 1})
    media_id = created["id"]
    body = await wait_state(client, settings, media_id, {"purged"}, timeout=15)
    row = member(body, "bob")
    assert row["status"] == "expired" and row["expired_at"] and row["views_left"] == 0
    await problem(await redeem(client, created["recipients"][0]["token"]), 410, "expired")
    assert stored_blobs(settings) == []
    await no_keys_left(redis, settings, media_id, ["bob"])


async def test_a_sweeper_restart_mid_purge_still_purges(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    client = await make_client(settings)
    media_id, _ = await ready_media(client, settings)
    await client.close()
    # A worker that died after destroying the keys but before deleting the blob.
    async with open_services(settings) as svc:
        objects = await svc.lifecycle.begin_purge(media_id)
    assert (
        objects
        and await typed.hget(redis, Keys(settings.redis.prefix).recipient(media_id, "bob"), "wk")
        is None
    )
    assert stored_blobs(settings) != []
    restarted = await make_client(settings)
    body = await wait_state(restarted, settings, media_id, {"purged"}, timeout=15)
    assert body["purged_at"] and stored_blobs(settings) == []


async def test_receipts_outlive_the_content_and_then_expire(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    settings = dataclasses.replace(settings, receipts_ttl=60)
    client = await make_client(settings)
    media_id, tokens = await ready_media(client, settings)
    view = await redeemed(client, tokens["bob"])
    await client.delete(f"/v1/views/{view['view_id']}", headers=lease_auth(view))
    body = await wait_state(client, settings, media_id, {"purged"})
    assert member(body, "bob")["opened_at"]
    keys = Keys(settings.redis.prefix)
    ttl = await redis.pttl(keys.media(media_id))
    assert 0 < ttl <= 60_000
    assert 0 < await redis.pttl(keys.recipient(media_id, "bob")) <= 60_000


async def test_non_owner_gets_404_everywhere(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    media_id, _ = await ready_media(client, settings)
    mallory = auth(settings, "mallory")
    for method, path in [
        ("GET", f"/v1/media/{media_id}"),
        ("GET", f"/v1/media/{media_id}/recipients"),
        ("DELETE", f"/v1/media/{media_id}"),
        ("DELETE", f"/v1/media/{media_id}/recipients/bob"),
    ]:
        response = await client.request(method, path, headers=mallory)
        await problem(response, 404, "not-found")
    listing = await (await client.get("/v1/media", headers=mallory)).json()
    assert listing["media"] == []
    assert (await status(client, settings, media_id))["state"] == "ready"


async def test_listing_pages_newest_first_and_etag(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    ids = [(await upload(client, settings, {"recipients": ["bob"]}))["id"] for _ in range(3)]
    first = await (await client.get("/v1/media?limit=2", headers=auth(settings))).json()
    assert [m["id"] for m in first["media"]] == ids[::-1][:2]
    second = await (
        await client.get(f"/v1/media?limit=2&cursor={first['next_cursor']}", headers=auth(settings))
    ).json()
    assert [m["id"] for m in second["media"]] == ids[:1] and second["next_cursor"] is None
    one = await client.get(f"/v1/media/{ids[0]}", headers=auth(settings))
    etag = one.headers["ETag"]
    cached = await client.get(
        f"/v1/media/{ids[0]}", headers={**auth(settings), "If-None-Match": etag}
    )
    if (await status(client, settings, ids[0]))["state"] == (await one.json())["state"]:
        assert cached.status in (200, 304)


async def test_a_lost_job_is_enqueued_again(make_client: Any, settings: Settings) -> None:
    """The API died between creating the record and enqueueing: the sweeper notices."""
    settings = dataclasses.replace(
        settings, worker=dataclasses.replace(settings.worker, job_timeout=2)
    )
    api_only = await make_client(settings, worker=False)
    created = await upload(api_only, settings, {"recipients": ["bob"]})
    redis = Redis.from_url(settings.redis.url or "", decode_responses=True)
    try:
        async for key in redis.scan_iter(f"{settings.redis.prefix}:queue*"):
            await redis.delete(key)  # the job is lost: gone from the queue and from arq
        await redis.delete(f"arq:job:normalise:{created['id']}")
    finally:
        await redis.aclose()
    await api_only.close()
    client = await make_client(settings)
    await wait_state(client, settings, created["id"], {"ready"}, timeout=20)
