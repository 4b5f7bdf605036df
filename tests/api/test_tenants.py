"""Tenants: service keys, on_behalf_of, isolation by tenant, JWT issuers, status_only receipts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import jwt

from ephemeral.config import EventSettings, Settings
from ephemeral.state.keys import Keys
from tests.api.helpers import member, problem, redeemed
from tests.api.tenant_helpers import (
    A1,
    A2,
    B1,
    KEY_A,
    create,
    jwt_for,
    key,
    ready,
    two_tenants,
)
from tests.fixtures.core import jpeg_bytes, multipart

TIME_FIELDS = (
    "delivered_at",
    "opened_at",
    "replayed_at",
    "replay_expires_at",
    "first_screenshot_at",
    "last_screenshot_at",
    "link_previewed_at",
    "expired_at",
    "revoked_at",
)


async def test_backend_creates_on_behalf_of_a_sender_and_other_tenants_see_404(
    make_client: Any, settings: Settings
) -> None:
    settings = two_tenants(settings)
    client = await make_client(settings)
    created = await create(
        client, key(A1), {"recipients": ["bob", "carol"], "on_behalf_of": "alice", "views": 2}
    )
    media_id = created["id"]
    assert [r["id"] for r in created["recipients"]] == ["bob", "carol"]
    # The sender named in on_behalf_of owns it: their JWT reads it and lists it.
    body = await ready(client, jwt_for(settings, "a", "alice"), media_id)
    assert body["counts"]["sent"] == 2
    listed = await client.get("/v1/media", headers=jwt_for(settings, "a", "alice"))
    assert [m["id"] for m in (await listed.json())["media"]] == [media_id]
    # Both keys of the rotation read it, and page it.
    for value in (A1, A2):
        response = await client.get(f"/v1/media/{media_id}", headers=key(value))
        assert response.status == 200
        page = await client.get(f"/v1/media/{media_id}/recipients?limit=1", headers=key(value))
        first = await page.json()
        assert page.status == 200 and [r["id"] for r in first["recipients"]] == ["bob"]
        path = f"/v1/media/{media_id}/recipients?limit=1&cursor={first['next_cursor']}"
        second = await (await client.get(path, headers=key(value))).json()
        assert [r["id"] for r in second["recipients"]] == ["carol"]
    # Another sender of the same tenant, the same id in tenant B, and tenant B's backend:
    # 404 on every owner route, never 403, and nothing changes.
    strangers = [
        jwt_for(settings, "a", "mallory"),
        jwt_for(settings, "b", "alice"),
        key(B1),
    ]
    for headers in strangers:
        for method, path in (
            ("GET", f"/v1/media/{media_id}"),
            ("GET", f"/v1/media/{media_id}/recipients"),
            ("DELETE", f"/v1/media/{media_id}/recipients/bob"),
            ("DELETE", f"/v1/media/{media_id}"),
        ):
            response = await client.request(method, path, headers=headers)
            await problem(response, 404, "not-found")
    body = await ready(client, key(A2), media_id)
    assert body["counts"]["sent"] == 2 and body["revoked_at"] is None
    # The backend revokes one member and unsends the media of its tenant.
    response = await client.delete(f"/v1/media/{media_id}/recipients/bob", headers=key(A1))
    assert response.status == 204
    response = await client.delete(f"/v1/media/{media_id}", headers=key(A2))
    assert response.status == 204
    body = await ready_or_state(client, jwt_for(settings, "a", "alice"), media_id)
    assert body["state"] == "revoked"
    assert member(body, "bob")["revoked_reason"] == "removed"
    assert member(body, "carol")["revoked_reason"] == "unsent"


async def ready_or_state(client: Any, headers: dict[str, str], media_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/media/{media_id}", headers=headers)
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def test_on_behalf_of_is_for_backends_and_validated_like_a_recipient(
    make_client: Any, settings: Settings, redis: Any
) -> None:
    settings = two_tenants(settings)
    client = await make_client(settings, worker=False)
    cases: list[tuple[dict[str, str], dict[str, Any], str]] = [
        (
            jwt_for(settings, "a", "alice"),
            {"recipients": ["bob"], "on_behalf_of": "x"},
            "/on_behalf_of",
        ),
        (key(A1), {"recipients": ["bob"]}, "/on_behalf_of"),
        (key(A1), {"recipients": ["bob"], "on_behalf_of": "no spaces"}, "/on_behalf_of"),
        (key(A1), {"recipients": ["bob"], "on_behalf_of": 7}, "/on_behalf_of"),
        (key(A1), {"recipients": ["alice"], "on_behalf_of": "alice"}, "/recipients/0"),
        # Tenant B allows 3 recipients (a per-tenant limit); tenant A the default.
        (key(B1), {"recipients": ["r1", "r2", "r3", "r4"], "on_behalf_of": "s"}, "/recipients"),
    ]
    for headers, meta, pointer in cases:
        response = await client.post(
            "/v1/media", data=multipart(meta, jpeg_bytes()), headers=headers
        )
        body = await problem(response, 422, "invalid-field")
        assert pointer in [e["pointer"] for e in body["errors"]], body
    # Several problems are reported at once.
    meta = {"recipients": [], "views": 9}
    response = await client.post("/v1/media", data=multipart(meta, jpeg_bytes()), headers=key(A1))
    pointers = {e["pointer"] for e in (await problem(response, 422, "invalid-field"))["errors"]}
    assert {"/on_behalf_of", "/recipients", "/views"} <= pointers
    four = {"recipients": ["r1", "r2", "r3", "r4"], "on_behalf_of": "s"}
    await create(client, key(A1), four)
    # Bad input left nothing behind but the one good create.
    keys = [k async for k in redis.scan_iter(f"{settings.redis.prefix}:owner:*")]
    assert keys == [Keys(settings.redis.prefix).owner_media("a", "s")]


async def test_service_keys_authenticate_their_tenant_only(
    make_client: Any, settings: Settings
) -> None:
    settings = two_tenants(settings)
    client = await make_client(settings)
    unknown = "ek_" + "A" * 43
    for bad in (unknown, "ek_short", "ek_" + "!" * 43):
        response = await client.get("/v1/media/m_x", headers=key(bad))
        body = await problem(response, 401, "unauthorized")
        assert "WWW-Authenticate" in response.headers and bad not in json.dumps(body)
    created = await create(client, key(B1), {"recipients": ["bob"], "on_behalf_of": "alice"})
    for value in (A1, A2):  # a hash of tenant A never authenticates tenant B
        response = await client.get(f"/v1/media/{created['id']}", headers=key(value))
        await problem(response, 404, "not-found")
    # Sender-only and backend-only routes refuse the other credential with 403.
    await problem(await client.get("/v1/media", headers=key(A1)), 403, "forbidden")
    await problem(await client.post("/v1/events/tickets", headers=key(A1)), 403, "forbidden")
    response = await client.delete("/v1/subjects/alice", headers=jwt_for(settings, "b", "alice"))
    await problem(response, 403, "forbidden")
    # Recipient routes refuse a service key like a JWT of someone else: nothing consumed.
    await ready(client, key(B1), created["id"])
    token = created["recipients"][0]["token"]
    for path in ("/v1/views/peek", "/v1/views"):
        response = await client.post(path, json={"token": token}, headers=key(B1))
        await problem(response, 403, "forbidden")
    body = await ready(client, key(B1), created["id"])
    assert member(body, "bob")["status"] == "sent" and member(body, "bob")["views_left"] == 1


async def test_the_jwt_issuer_selects_the_tenant(make_client: Any, settings: Settings) -> None:
    settings = two_tenants(settings)
    client = await make_client(settings)
    in_a = await create(client, jwt_for(settings, "a", "alice"), {"recipients": ["bob"]})
    in_b = await create(client, jwt_for(settings, "b", "alice"), {"recipients": ["bob"]})
    for tenant, mine, theirs in (("a", in_a, in_b), ("b", in_b, in_a)):
        headers = jwt_for(settings, tenant, "alice")
        assert (await client.get(f"/v1/media/{mine['id']}", headers=headers)).status == 200
        response = await client.get(f"/v1/media/{theirs['id']}", headers=headers)
        await problem(response, 404, "not-found")
        listed = await (await client.get("/v1/media", headers=headers)).json()
        assert [m["id"] for m in listed["media"]] == [mine["id"]]
    now = int(time.time())
    claims = {"sub": "alice", "aud": "ephemeral", "iat": now, "exp": now + 600}
    forged = jwt.encode({**claims, "iss": "https://auth.b.example"}, KEY_A, algorithm="HS256")
    stranger = jwt.encode({**claims, "iss": "https://elsewhere"}, KEY_A, algorithm="HS256")
    for token in (forged, stranger):
        response = await client.get(f"/v1/media/{in_b['id']}", headers=key(token))
        await problem(response, 401, "unauthorized")


async def test_status_only_hides_times_from_the_sender_not_the_backend(
    make_client: Any, settings: Settings, redis: Any
) -> None:
    settings = quick_heartbeat(two_tenants(settings, b_receipts="status_only"))
    client = await make_client(settings)
    alice = jwt_for(settings, "b", "alice")
    created = await create(client, alice, {"recipients": ["bob", "carol"], "views": 2})
    media_id = created["id"]
    await ready(client, alice, media_id)
    tokens = {r["id"]: r["token"] for r in created["recipients"]}
    await redeemed(client, tokens["bob"])
    assert (await client.post("/v1/views/peek", json={"token": tokens["carol"]})).status == 200
    seen = await ready(client, alice, media_id)
    assert member(seen, "bob")["status"] == "opened"
    assert member(seen, "carol")["status"] == "delivered"
    for row in seen["recipients"]:
        assert all(row[name] is None for name in TIME_FIELDS), row
    page = await (await client.get(f"/v1/media/{media_id}/recipients", headers=alice)).json()
    assert all(row[name] is None for row in page["recipients"] for name in TIME_FIELDS)
    backend = await ready(client, key(B1), media_id)
    assert member(backend, "bob")["opened_at"] and member(backend, "bob")["replay_expires_at"]
    # Two representations of one version, two ETags: the sender's never revalidates the other.
    as_sender = await client.get(f"/v1/media/{media_id}", headers=alice)
    as_backend = await client.get(f"/v1/media/{media_id}", headers=key(B1))
    assert as_sender.headers["ETag"] != as_backend.headers["ETag"]
    check = {**key(B1), "If-None-Match": as_sender.headers["ETag"]}
    assert (await client.get(f"/v1/media/{media_id}", headers=check)).status == 200
    assert member(backend, "carol")["delivered_at"]
    # Events over SSE, replayed from the start: none carries a time to the sender; the
    # backend's stream (the tenant's) carries them.
    opened: dict[str, dict[str, Any]] = {}
    for who, headers in (("sender", alice), ("backend", key(B1))):
        response = await client.get("/v1/events", headers={**headers, "Last-Event-ID": "0-0"})
        assert response.status == 200
        events = await _events_until(response, "recipient.delivered")  # carol's, the last
        response.close()
        assert {e["type"] for e in events} >= {"media.ready", "recipient.opened"}
        opened[who] = next(e for e in events if e["type"] == "recipient.opened")
        if who == "sender":
            assert all(e["timestamp"] is None for e in events), events
        else:
            assert all(e["timestamp"] for e in events)
    assert opened["sender"]["data"] == opened["backend"]["data"]
    # The SSE snapshot for the sender hides them too; the backend's shows them.
    for headers, hidden in ((alice, True), (key(B1), False)):
        response = await client.get(f"/v1/events?media_id={media_id}", headers=headers)
        assert response.status == 200
        snapshot = await _first_event(response)
        response.close()
        bob = member(snapshot, "bob")
        assert (bob["opened_at"] is None) is hidden
    await streams_closed(redis, settings, "sse:b:alice", "sse-backend:b")


async def _events_until(response: Any, etype: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data:"):
                found.append(json.loads(line.removeprefix("data:").strip()))
                if found[-1]["type"] == etype:
                    return found
    raise AssertionError(f"no {etype}")


async def _first_event(response: Any) -> dict[str, Any]:
    async with asyncio.timeout(10):
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data:"):
                body: dict[str, Any] = json.loads(line.removeprefix("data:").strip())
                return body
    raise AssertionError("no event")


async def test_backend_event_stream_is_the_tenant_stream(
    make_client: Any, settings: Settings, redis: Any
) -> None:
    settings = quick_heartbeat(two_tenants(settings))
    client = await make_client(settings)
    response = await client.get("/v1/events", headers=key(A1))
    assert response.status == 200
    created = await create(client, key(A1), {"recipients": ["bob"], "on_behalf_of": "alice"})
    await create(client, key(B1), {"recipients": ["bob"], "on_behalf_of": "alice"})
    async with asyncio.timeout(20):
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data:"):
                event = json.loads(line.removeprefix("data:").strip())
                assert event["data"]["tenant"] == "a"  # never tenant B's
                if event["type"] == "media.ready":
                    assert event["data"]["media_id"] == created["id"]
                    break
    response.close()
    await streams_closed(redis, settings, "sse-backend:a")


async def test_account_mode_recipient_ids_are_scoped_by_tenant(
    make_client: Any, settings: Settings
) -> None:
    settings = two_tenants(settings)
    client = await make_client(settings)
    meta = {"recipients": ["bob"], "recipient_auth": "account", "on_behalf_of": "alice"}
    created = await create(client, key(A1), meta)
    await ready(client, key(A1), created["id"])
    token = created["recipients"][0]["token"]
    # bob of tenant B is another person than bob of tenant A: 403, nothing consumed.
    for path in ("/v1/views/peek", "/v1/views"):
        response = await client.post(
            path, json={"token": token}, headers=jwt_for(settings, "b", "bob")
        )
        await problem(response, 403, "forbidden")
    assert member(await ready(client, key(A1), created["id"]), "bob")["status"] == "sent"
    response = await client.post("/v1/views", json={"token": token})
    await problem(response, 401, "unauthorized")  # account mode needs the recipient's JWT
    response = await client.post(
        "/v1/views", json={"token": token}, headers=jwt_for(settings, "a", "bob")
    )
    assert response.status == 201, await response.text()


def quick_heartbeat(settings: Settings) -> Settings:
    """Streams notice a closed client at their next heartbeat: make it come soon."""
    return dataclasses.replace(settings, events=EventSettings(sse_heartbeat=0.3))


async def streams_closed(redis: Any, settings: Settings, *slots: str) -> None:
    """The server's stream handlers have ended (their slots are released): a clean teardown."""
    async with asyncio.timeout(10):
        for slot in slots:
            while await redis.zcard(f"{settings.redis.prefix}:{slot}"):
                await asyncio.sleep(0.05)
