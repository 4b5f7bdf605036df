"""DELETE /v1/subjects/{id}: nothing of the person is left in Redis or storage, and repeats."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.erasure import Erasure
from ephemeral.state import typed
from ephemeral.state.keys import Keys
from ephemeral.web_keys import SERVICES
from tests.api.helpers import lease_auth, problem, redeem, redeemed
from tests.api.tenant_helpers import A1, B1, create, jwt_for, key, ready, two_tenants
from workers.webhook_delivery import Job, dead_record


async def dump(redis: Redis, prefix: str) -> dict[str, str]:
    """Every key under the prefix with its whole value, as text."""
    found: dict[str, str] = {}
    async for name in redis.scan_iter(f"{prefix}:*", count=1000):
        kind = await redis.type(name)
        value: Any
        if kind == "string":
            value = await redis.get(name)
        elif kind == "hash":
            value = await typed.hgetall(redis, name)
        elif kind == "list":
            value = await typed.lrange(redis, name, 0, -1)
        elif kind == "set":
            value = await typed.smembers(redis, name)
        elif kind == "zset":
            value = await redis.zrange(name, 0, -1, withscores=True)
        elif kind == "stream":
            value = await redis.xrange(name)
        else:
            value = kind
        found[name] = repr(value)
    return found


def blobs(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


async def wait_relayed(redis: Redis, stream: str, needle: str) -> None:
    async with asyncio.timeout(10):
        while needle not in repr(await redis.xrange(stream)):
            await asyncio.sleep(0.05)


async def test_erasure_leaves_nothing_of_the_person(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    settings = two_tenants(settings)
    client = await make_client(settings)
    prefix = settings.redis.prefix
    # alice sends to bob and carol (bob views it, a lease stays open), and a second media.
    # With an Idempotency-Key: its record (a tombstone after the unsend) names the media.
    retry_safe = {**key(A1), "Idempotency-Key": str(uuid.uuid4())}
    sent = await create(
        client, retry_safe, {"recipients": ["bob", "carol"], "on_behalf_of": "alice"}
    )
    other = await create(client, jwt_for(settings, "a", "alice"), {"recipients": ["dave"]})
    # bob sends to alice and carol, alice opens it and reports a screenshot; dave sends to alice
    # only, and she never opens it.
    received = await create(
        client, jwt_for(settings, "a", "bob"), {"recipients": ["alice", "carol"], "views": 2}
    )
    only = await create(client, jwt_for(settings, "a", "dave"), {"recipients": ["alice"]})
    # The same person id in tenant B is someone else: left alone.
    elsewhere = await create(client, key(B1), {"recipients": ["bob"], "on_behalf_of": "alice"})
    for media, owner in ((sent, "alice"), (other, "alice"), (received, "bob"), (only, "dave")):
        await ready(client, jwt_for(settings, "a", owner), media["id"])
    await ready(client, key(B1), elsewhere["id"])
    tokens = {
        (m["id"], r["id"]): r["token"] for m in (sent, received, only) for r in m["recipients"]
    }
    await redeemed(client, tokens[(sent["id"], "bob")])
    view = await redeemed(client, tokens[(received["id"], "alice")])
    shot = await client.post(
        f"/v1/views/{view['view_id']}/screenshot",
        json={"kind": "screenshot"},
        headers=lease_auth(view),
    )
    assert shot.status in (200, 202, 204), await shot.text()
    assert (
        await client.post("/v1/views/peek", json={"token": tokens[(received["id"], "carol")]})
    ).status == 200
    ticket = await client.post("/v1/events/tickets", headers=jwt_for(settings, "a", "alice"))
    assert ticket.status == 201
    await wait_relayed(redis, f"{prefix}:events:a:s:bob", '"recipient": "alice"')
    await wait_relayed(redis, f"{prefix}:events:a:all", '"sender": "alice"')
    # Dead letters as the dispatcher writes them: one for her media, one for someone else's.
    dead = Keys(prefix).webhook_dead("a")
    for media in (sent, received):
        event = json.dumps({"type": "media.ready", "data": {"media_id": media["id"], "seq": 1}})
        record = dead_record(Job("msg_x", "e", 8, event), "https://h", 8, "500")
        await typed.command(redis, "LPUSH", dead, record)
    before = await dump(redis, prefix)
    assert any("alice" in k or "alice" in v for k, v in before.items())
    objects_before = blobs(settings.blob_root)
    assert any(p.startswith(sent["id"]) for p in objects_before)

    response = await client.delete("/v1/subjects/alice", headers=key(A1))
    assert response.status == 204, await response.text()

    after = await dump(redis, prefix)
    leftovers = {k: v for k, v in after.items() if "alice" in k or "alice" in v}

    # Tenant B's alice is another person: only her keys may still say "alice".
    def of_tenant_b(name: str) -> bool:  # keys carry the tenant as :b: (or /b/ in rate limits)
        return ":b:" in name or "/b/" in name or elsewhere["id"] in name

    assert all(of_tenant_b(k) for k in leftovers), leftovers
    remaining = blobs(settings.blob_root)
    assert not any(p.startswith((sent["id"], other["id"])) for p in remaining)
    assert any(p.startswith(received["id"]) for p in remaining)  # carol can still view it
    for media in (sent, other):  # not even their ids
        assert not any(media["id"] in k or media["id"] in v for k, v in after.items())
    letters = [json.loads(row)["media_id"] for row in await typed.lrange(redis, dead, 0, -1)]
    assert letters == [received["id"]]
    # What bob, the other sender, sees: alice is gone from the list and the counts.
    body = await ready(client, jwt_for(settings, "a", "bob"), received["id"])
    assert [r["id"] for r in body["recipients"]] == ["carol"]
    counts = body["counts"]
    assert counts["delivered"] == 1 and counts["opened"] == 0 and counts["screenshot"] == 0
    assert (
        sum(
            counts[s]
            for s in ("sent", "delivered", "opened", "replayed", "expired", "revoked", "failed")
        )
        == 1
    )
    # dave's media had only alice: nobody can view it any more, so it is purged.
    async with asyncio.timeout(10):
        while True:
            gone = await client.get(
                f"/v1/media/{only['id']}", headers=jwt_for(settings, "a", "dave")
            )
            body = await gone.json()
            if body["purged_at"]:
                break
            await asyncio.sleep(0.05)
    assert body["recipients"] == [] and not any(
        p.startswith(only["id"]) for p in blobs(settings.blob_root)
    )
    # Her tokens and her lease are dead; her media are unknown to everyone.
    for token in (tokens[(received["id"], "alice")], tokens[(sent["id"], "carol")]):
        await problem(await redeem(client, token), 404, "not-found")
    content = await client.get(f"/v1/views/{view['view_id']}/content", headers=lease_auth(view))
    assert content.status in (404, 410)
    for headers in (key(A1), jwt_for(settings, "a", "alice")):
        await problem(
            await client.get(f"/v1/media/{sent['id']}", headers=headers), 404, "not-found"
        )
    listed = await (await client.get("/v1/media", headers=jwt_for(settings, "a", "alice"))).json()
    assert listed["media"] == []
    # Tenant B's alice keeps her media.
    assert (await client.get(f"/v1/media/{elsewhere['id']}", headers=key(B1))).status == 200
    # Idempotent: 204 again, and nothing new appears.
    again = await client.delete("/v1/subjects/alice", headers=key(A1))
    assert again.status == 204
    after_again = await dump(redis, prefix)
    assert not any(
        ("alice" in k or "alice" in v) and not of_tenant_b(k) for k, v in after_again.items()
    )


async def test_erasure_of_an_unknown_person_and_bad_ids(
    make_client: Any, settings: Settings
) -> None:
    settings = two_tenants(settings)
    client = await make_client(settings, worker=False)
    assert (await client.delete("/v1/subjects/nobody", headers=key(A1))).status == 204
    for bad in ("bad%0Aid", "x" * 257):
        response = await client.delete(f"/v1/subjects/{bad}", headers=key(A1))
        await problem(response, 422, "invalid-field")
    # A sender id is a JWT sub, wider than a recipient id: erasable too.
    auth0 = "auth0|5f7c8ec7c33c6c004bbafe82"
    created = await create(client, jwt_for(settings, "a", auth0), {"recipients": ["bob"]})
    response = await client.delete(f"/v1/subjects/{quote(auth0, safe='')}", headers=key(A1))
    assert response.status == 204
    gone = await client.get(f"/v1/media/{created['id']}", headers=key(A1))
    await problem(gone, 404, "not-found")
    await problem(await client.delete("/v1/subjects/x"), 401, "unauthorized")


async def test_an_id_the_streams_hold_json_escaped_is_erased_from_them(
    make_client: Any, settings: Settings
) -> None:
    """Events are written with json.dumps, so "josé" sits in the streams as "jos\\u00e9"."""
    settings = two_tenants(settings)
    client = await make_client(settings)
    # Non-ASCII: the event streams hold the id JSON-escaped ("jos\u00e9"); still found.
    josé = "auth0|josé"
    media = await create(client, jwt_for(settings, "a", josé), {"recipients": ["bob"]})
    await ready(client, key(A1), media["id"])
    stream = Keys(settings.redis.prefix).tenant_events("a")
    app_redis = client.app[SERVICES].redis
    for _ in range(100):  # the relay copies the media's events into the tenant stream
        if await app_redis.xlen(stream):
            break
        await asyncio.sleep(0.05)
    response = await client.delete(f"/v1/subjects/{quote(josé, safe='')}", headers=key(A1))
    assert response.status == 204
    left = [f["e"] for _, f in await app_redis.xrange(stream) if "jos" in f["e"]]
    assert left == []


async def test_an_erasure_cut_short_is_finished_by_repeating_it(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    """A crash after some steps (here: the first sent and received media only) leaves the
    indexes that drive the work; the repeated request finds the rest and finishes."""
    settings = two_tenants(settings)
    client = await make_client(settings)
    prefix = settings.redis.prefix
    sent = [
        await create(client, key(A1), {"recipients": ["bob"], "on_behalf_of": "alice"})
        for _ in range(2)
    ]
    received = [
        await create(client, key(A1), {"recipients": ["alice", "carol"], "on_behalf_of": s})
        for s in ("bob", "dave")
    ]
    for media in sent + received:
        await ready(client, key(A1), media["id"])
    erasure = Erasure(client.app[SERVICES], "a", "alice")
    await erasure.erase_sent(sent[0]["id"])
    await erasure.erase_received(received[0]["id"])
    # The crash: nothing after these two steps ran.
    partial = await dump(redis, prefix)
    assert any(sent[1]["id"] in k for k in partial)
    assert any("alice" in v for k, v in partial.items() if received[1]["id"] in k)
    assert (await client.delete("/v1/subjects/alice", headers=key(A1))).status == 204
    after = await dump(redis, prefix)
    assert not {k: v for k, v in after.items() if "alice" in k or "alice" in v}
    assert not any(sent[1]["id"] in k for k in after)
    for media in received:
        body = await ready(client, key(A1), media["id"])
        assert [r["id"] for r in body["recipients"]] == ["carol"] and body["counts"]["sent"] == 1


async def test_concurrent_erasures_and_redemptions_end_in_the_same_place(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    """Two erasures at once (a retried request), while alice keeps trying to redeem: every
    answer is a 204 or a clean 4xx, and nothing of her is left."""
    settings = two_tenants(settings)
    client = await make_client(settings)
    prefix = settings.redis.prefix
    received = [
        await create(
            client, key(A1), {"recipients": ["alice", "carol"], "on_behalf_of": f"s{i}", "views": 2}
        )
        for i in range(4)
    ]
    mine = await create(client, key(A1), {"recipients": ["bob"], "on_behalf_of": "alice"})
    for media in [*received, mine]:
        await ready(client, key(A1), media["id"])
    tokens = [next(r["token"] for r in m["recipients"] if r["id"] == "alice") for m in received]

    async def erase() -> int:
        response = await client.delete("/v1/subjects/alice", headers=key(A1))
        return int(response.status)

    async def view(token: str) -> int:
        return int((await redeem(client, token)).status)

    results = await asyncio.gather(erase(), erase(), *(view(t) for t in tokens * 2))
    assert results[:2] == [204, 204]
    assert set(results[2:]) <= {200, 201, 404}
    assert (await client.delete("/v1/subjects/alice", headers=key(A1))).status == 204
    after = await dump(redis, prefix)
    assert not {k: v for k, v in after.items() if "alice" in k or "alice" in v}
    for media in received:
        body = await ready(client, key(A1), media["id"])
        assert [r["id"] for r in body["recipients"]] == ["carol"]
        counts = body["counts"]
        assert counts["sent"] == 1 and sum(v for s, v in counts.items() if s != "screenshot") == 1
