"""The core promise, end to end over HTTP: a group of three, one view each, then purge."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.state import typed
from ephemeral.state.keys import Keys
from tests.fixtures.core import auth, upload, wait_state


async def redeem(client: TestClient[Any, Any], token: str, **extra: Any) -> Any:
    return await client.post("/v1/views", json={"token": token, **extra})


async def test_group_of_three_views_once_then_purged(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    created = await upload(client, settings, {"recipients": ["bob", "carol", "dave"]})
    media_id = created["id"]
    assert created["state"] == "processing"
    tokens = {r["id"]: r["token"] for r in created["recipients"]}
    status = await wait_state(client, settings, media_id, {"ready"})
    assert status["counts"]["sent"] == 3

    for index, rid in enumerate(["bob", "carol", "dave"]):
        peek = await client.post("/v1/views/peek", json={"token": tokens[rid]})
        assert peek.status == 200
        assert (await peek.json())["state"] == "ready"
        response = await redeem(client, tokens[rid])
        assert response.status == 201, await response.text()
        view = await response.json()
        content = await client.get(
            f"/v1/views/{view['view_id']}/content",
            headers={"Authorization": f"Lease {view['lease']}"},
        )
        assert content.status == 200
        body = await content.read()
        assert body[:2] == b"\xff\xd8"
        again = await redeem(client, tokens[rid])
        assert again.status == 410
        assert (await again.json())["code"] == "already-viewed"
        status = await (await client.get(f"/v1/media/{media_id}", headers=auth(settings))).json()
        row = next(r for r in status["recipients"] if r["id"] == rid)
        assert row["status"] == "opened" and row["opened_at"] and row["views_left"] == 0
        assert status["counts"]["opened"] == index + 1
        closed = await client.delete(
            f"/v1/views/{view['view_id']}", headers={"Authorization": f"Lease {view['lease']}"}
        )
        assert closed.status == 204

    final = await wait_state(client, settings, media_id, {"purged"})
    assert final["purged_at"]
    keys = Keys(settings.redis.prefix)
    assert await typed.smembers(redis, keys.objects(media_id)) == set()
    blobs = [
        p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file() and "tmp" not in p.parts
    ]
    assert blobs == []
    for rid in ("bob", "carol", "dave"):
        assert await typed.hget(redis, keys.recipient(media_id, rid), "wk") is None
    assert await typed.hget(redis, keys.media(media_id), "kek") is None

    # Every change was appended to the media's outbox in the same script as the change.
    events = [fields for _, fields in await redis.xrange(keys.outbox(media_id))]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "media.ready" and kinds[-1] == "media.purged"
    assert kinds.count("recipient.delivered") == 3 and kinds.count("recipient.opened") == 3
    assert [int(e["seq"]) for e in events] == list(range(1, len(events) + 1))
    opened = [e for e in events if e["type"] == "recipient.opened"]
    assert [e["recipient"] for e in opened] == ["bob", "carol", "dave"]
    assert json.loads(opened[-1]["counts"])["opened"] == 3
    for token in tokens.values():
        assert not any(token.split(".")[1] in str(e) for e in events)
