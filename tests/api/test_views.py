"""Recipient routes: peek, redeem, replays, retries, leases, ranges, and who may view."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
from aiohttp.test_utils import TestClient

from ephemeral.config import Settings
from ephemeral.crypto import keys as kc
from ephemeral.web_keys import SERVICES
from tests.api.helpers import lease_auth, member, problem, redeem, redeemed, status
from tests.fixtures.core import JWT_KEY, auth, jpeg_bytes, upload, wait_state


async def ready_media(
    client: TestClient[Any, Any], settings: Settings, **meta: Any
) -> tuple[str, dict[str, str]]:
    meta.setdefault("recipients", ["bob"])
    created = await upload(client, settings, meta, jpeg_bytes((80, 60)))
    await wait_state(client, settings, created["id"], {"ready"})
    return created["id"], {r["id"]: r["token"] for r in created["recipients"]}


async def test_peek_consumes_nothing_and_sets_delivered_once(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    media_id, tokens = await ready_media(client, settings, views=2)
    for _ in range(3):
        peek = await client.post("/v1/views/peek", json={"token": tokens["bob"]})
        assert peek.status == 200
        body = await peek.json()
        assert body["state"] == "ready" and body["kind"] == "image" and body["views_left"] == 2
        assert 0 < body["expires_in"] <= 1_209_600 and body["recipient_auth"] == "link"
        assert body["capture"] == "notify"
        assert peek.headers["Cache-Control"] == "no-store"
        assert peek.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in peek.headers["Content-Security-Policy"]
    row = member(await status(client, settings, media_id), "bob")
    assert row["status"] == "delivered" and row["delivered_at"] and row["views_left"] == 2


async def test_replay_then_gone_and_status_moves_forward(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    media_id, tokens = await ready_media(client, settings, views=2)
    first = await redeemed(client, tokens["bob"])
    assert first["views_left"] == 1
    row = member(await status(client, settings, media_id), "bob")
    assert row["status"] == "opened" and row["replay_expires_at"] and row["views_used"] == 1
    second = await redeemed(client, tokens["bob"])
    assert second["views_left"] == 0 and second["view_id"] != first["view_id"]
    # A replay ends the previous lease: one live lease per recipient.
    old = await client.get(f"/v1/views/{first['view_id']}/content", headers=lease_auth(first))
    await problem(old, 410, "lease-ended")
    body = await status(client, settings, media_id)
    row = member(body, "bob")
    assert row["status"] == "replayed" and row["replayed_at"] and row["views_left"] == 0
    assert body["counts"]["replayed"] == 1 and body["counts"]["opened"] == 0
    body = await problem(await redeem(client, tokens["bob"]), 410, "already-viewed")
    assert body["opened_at"]


async def test_replay_after_the_window_is_gone(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    media_id, tokens = await ready_media(client, settings, views=2, replay_window=1)
    await redeemed(client, tokens["bob"])
    await asyncio.sleep(1.2)
    await problem(await redeem(client, tokens["bob"]), 410, "expired")
    row = member(await status(client, settings, media_id), "bob")
    assert row["status"] == "opened" and row["views_left"] == 0


async def test_lost_response_retry_returns_the_same_view(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    media_id, tokens = await ready_media(client, settings)
    redeem_id = "r" * 22
    first = await redeemed(client, tokens["bob"], redeem_id=redeem_id, device="phone")
    retry = await redeem(client, tokens["bob"], redeem_id=redeem_id)
    assert retry.status == 200
    again = await retry.json()
    assert again["view_id"] == first["view_id"] and again["lease"] == first["lease"]
    assert again["views_left"] == 0
    other = await redeem(client, tokens["bob"], redeem_id="s" * 22)
    await problem(other, 410, "already-viewed")
    assert member(await status(client, settings, media_id), "bob")["views_used"] == 1


async def test_content_ranges_etag_cookie_and_head(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _, tokens = await ready_media(client, settings)
    response = await redeem(client, tokens["bob"])
    view = await response.json()
    cookie = response.cookies[f"__Secure-L_{view['view_id']}"]
    assert cookie["path"] == f"/v1/views/{view['view_id']}"
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict"
    url = f"/v1/views/{view['view_id']}/content"
    whole = await client.get(url, headers=lease_auth(view))
    data = await whole.read()
    assert whole.status == 200 and len(data) == view["size"] and data[:2] == b"\xff\xd8"
    etag = whole.headers["ETag"]
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert whole.headers["Cache-Control"] == "no-store"
    part = await client.get(url, headers={**lease_auth(view), "Range": "bytes=10-19"})
    assert part.status == 206 and await part.read() == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    tail = await client.get(url, headers={**lease_auth(view), "Range": "bytes=-5"})
    assert await tail.read() == data[-5:]
    stale = await client.get(
        url, headers={**lease_auth(view), "Range": "bytes=0-1", "If-Range": '"nope"'}
    )
    assert stale.status == 200 and await stale.read() == data
    fresh = await client.get(
        url, headers={**lease_auth(view), "Range": "bytes=0-1", "If-Range": etag}
    )
    assert fresh.status == 206
    outside = await client.get(url, headers={**lease_auth(view), "Range": f"bytes={len(data)}-"})
    await problem(outside, 416, "range-not-satisfiable")
    assert outside.headers["Content-Range"] == f"bytes */{len(data)}"
    # The browser path: the path-scoped cookie alone (the test client is plain HTTP, so send it).
    by_cookie = await client.get(
        url,
        headers={"Cookie": f"__Secure-L_{view['view_id']}={view['lease']}", "Range": "bytes=0-3"},
    )
    assert by_cookie.status == 206 and await by_cookie.read() == data[:4]
    head = await client.head(url, headers=lease_auth(view))
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(data)
    wrong = await client.get(url, headers={"Authorization": "Lease " + "A" * 43})
    await problem(wrong, 404, "not-found")


async def test_keepalive_and_close_end_the_lease(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _, tokens = await ready_media(client, settings)
    view = await redeemed(client, tokens["bob"])
    alive = await client.post(f"/v1/views/{view['view_id']}/keepalive", headers=lease_auth(view))
    assert alive.status == 200 and (await alive.json())["lease_idle"] > 0
    closed = await client.delete(f"/v1/views/{view['view_id']}", headers=lease_auth(view))
    assert closed.status == 204
    after = await client.get(f"/v1/views/{view['view_id']}/content", headers=lease_auth(view))
    await problem(after, 410, "lease-ended")
    gone = await client.post(f"/v1/views/{view['view_id']}/keepalive", headers=lease_auth(view))
    await problem(gone, 410, "lease-ended")


async def test_idle_lease_ends_and_the_media_is_purged(
    make_client: Any, settings: Settings
) -> None:
    import dataclasses

    settings = dataclasses.replace(settings, lease=dataclasses.replace(settings.lease, idle=1))
    client = await make_client(settings)
    media_id, tokens = await ready_media(client, settings)
    view = await redeemed(client, tokens["bob"])
    assert view["lease_idle"] == 1
    started = time.monotonic()
    await wait_state(client, settings, media_id, {"purged"}, timeout=10)
    assert time.monotonic() - started < 5
    after = await client.get(f"/v1/views/{view['view_id']}/content", headers=lease_auth(view))
    assert after.status in (404, 410)


async def test_sender_jwt_on_recipient_route_is_forbidden_and_consumes_nothing(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    media_id, tokens = await ready_media(client, settings)
    peek = await client.post(
        "/v1/views/peek", json={"token": tokens["bob"]}, headers=auth(settings)
    )
    await problem(peek, 403, "forbidden")
    response = await redeem_with(client, tokens["bob"], auth(settings))
    await problem(response, 403, "forbidden")
    row = member(await status(client, settings, media_id), "bob")
    assert row["views_left"] == 1 and row["status"] == "sent"
    # The recipient's own JWT is fine.
    own = await redeem_with(client, tokens["bob"], auth(settings, "bob"))
    assert own.status == 201


async def redeem_with(client: TestClient[Any, Any], token: str, headers: dict[str, str]) -> Any:
    return await client.post("/v1/views", json={"token": token}, headers=headers)


async def test_account_mode_needs_the_recipients_jwt(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _, tokens = await ready_media(client, settings, recipient_auth="account")
    peek = await client.post("/v1/views/peek", json={"token": tokens["bob"]})
    await problem(peek, 401, "unauthorized")
    await problem(await redeem(client, tokens["bob"]), 401, "unauthorized")
    await problem(
        await redeem_with(client, tokens["bob"], auth(settings, "carol")), 403, "forbidden"
    )
    assert (await redeem_with(client, tokens["bob"], auth(settings, "bob"))).status == 201


def forge(settings: Settings, **claims: Any) -> str:
    now = int(time.time())
    base = {
        "sub": "alice",
        "aud": settings.auth.audience,
        "iss": settings.auth.issuer,
        "iat": now,
        "exp": now + 600,
    }
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, JWT_KEY, algorithm="HS256")


async def test_bad_jwts_are_401_with_a_challenge(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    now = int(time.time())
    unsigned = jwt.encode(
        {
            "sub": "alice",
            "aud": settings.auth.audience,
            "iss": settings.auth.issuer,
            "iat": now,
            "exp": now + 60,
        },
        key=None,  # type: ignore[arg-type]  # the point: an unsigned token
        algorithm="none",
    )
    cases = {
        "wrong audience": forge(settings, aud="someone-else"),
        "wrong issuer": forge(settings, iss="evil"),
        "expired": forge(settings, iat=now - 7200, exp=now - 3600),
        "too long-lived": forge(settings, exp=now + 7200),
        "no exp": forge(settings, exp=None),
        "alg none": unsigned,
        "wrong key": jwt.encode({"sub": "alice"}, "x" * 40, algorithm="HS256"),
    }
    for name, token in cases.items():
        response = await client.get("/v1/media", headers={"Authorization": f"Bearer {token}"})
        await problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), name
    missing = await client.get("/v1/media")
    await problem(missing, 401, "unauthorized")
    assert "WWW-Authenticate" in missing.headers


async def test_unknown_and_malformed_tokens_are_one_404(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _, tokens = await ready_media(client, settings)
    lookup, secret = tokens["bob"].split(".")
    wrong_secret = lookup + "." + ("A" if secret[0] != "A" else "B") + secret[1:]
    for token in [wrong_secret, "A" * 22 + "." + secret, "garbage", tokens["bob"] + "x"]:
        await problem(await redeem(client, token), 404, "not-found")
        await problem(await client.post("/v1/views/peek", json={"token": token}), 404, "not-found")
    plain = await client.post(
        "/v1/views", data=b'{"token": "x"}', headers={"Content-Type": "text/plain"}
    )
    await problem(plain, 415, "unsupported-media-type")


async def test_the_byte_budget_ends_the_lease(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    _, tokens = await ready_media(client, settings)
    view = await redeemed(client, tokens["bob"])
    url = f"/v1/views/{view['view_id']}/content"
    for _ in range(settings.lease.byte_budget_factor):
        response = await client.get(url, headers=lease_auth(view))
        assert response.status == 200
        assert len(await response.read()) == view["size"]
    await problem(await client.get(url, headers=lease_auth(view)), 410, "lease-ended")


async def test_a_lease_row_of_the_previous_format_still_streams_and_shows_its_caption(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    """A rolling upgrade: a lease redeemed by a process of the release before this one holds
    the DEK under the lease key in `wk` (no `rk`, no `dk`); this release still serves it."""
    media_id, tokens = await ready_media(client, settings, caption="hi there", views=2)
    redeem_id = "q" * 22
    view = await redeemed(client, tokens["bob"], redeem_id=redeem_id)
    svc = client.app[SERVICES]
    _, secret = kc.parse_token(tokens["bob"]) or ("", b"")
    rkey, lkey = svc.keys.recipient(media_id, "bob"), svc.keys.lease(media_id, view["view_id"])
    recipient_wrapped = await svc.redis.hget(rkey, "wk")
    dek = kc.unwrap(
        kc.recipient_wrap_key(secret, media_id, "bob"),
        kc.unb64(recipient_wrapped),
        kc.recipient_context(media_id, "bob"),
    )
    lease_key = kc.lease_wrap_key(view["lease"], view["view_id"])
    old_wk = kc.b64(kc.wrap(lease_key, dek, kc.lease_context(view["view_id"])))
    await svc.redis.hset(lkey, "wk", old_wk)
    await svc.redis.hdel(lkey, "rk", "dk")
    url = f"/v1/views/{view['view_id']}/content"
    whole = await client.get(url, headers=lease_auth(view))
    data = await whole.read()
    assert whole.status == 200 and len(data) == view["size"] and data[:2] == b"\xff\xd8"
    again = await redeem(client, tokens["bob"], redeem_id=redeem_id)  # the replay path
    assert again.status == 200 and (await again.json())["caption"] == "hi there"
    await client.delete(f"/v1/views/{view['view_id']}", headers=lease_auth(view))
    assert not {"wk", "rk", "dk"} & set(await svc.redis.hkeys(lkey))  # ended: no key left
