"""Per-address limits (redeem misses, the viewer), trusted proxies, and the memory alarm."""

from __future__ import annotations

from typing import Any

from ephemeral.config import Settings
from tests.api.helpers import problem
from tests.api.ratelimit_helpers import limited, post_upload, stranger_token
from tests.api.test_ratelimit import refused
from tests.api.test_views import ready_media

ATTACKER = {"X-Forwarded-For": "203.0.113.7"}
NEIGHBOUR = {"X-Forwarded-For": "198.51.100.2"}


async def redeem(client: Any, token: str, headers: dict[str, str] | None = None) -> Any:
    return await client.post("/v1/views", json={"token": token}, headers=headers or {})


async def test_the_31st_miss_in_a_minute_is_429_for_that_address_only(
    make_client: Any, settings: Settings
) -> None:
    settings = limited(settings, redeem_misses_per_minute=30, trusted_proxies="127.0.0.1")
    client = await make_client(settings)
    _, tokens = await ready_media(client, settings, recipients=["bob", "carol"])
    for _ in range(15):  # peek and redeem misses both count
        for path in ("/v1/views/peek", "/v1/views"):
            response = await client.post(path, json={"token": stranger_token()}, headers=ATTACKER)
            await problem(response, 404, "not-found")
    body = await refused(await redeem(client, stranger_token(), headers=ATTACKER), "redeem-misses")
    assert "30 unknown links a minute" in body["detail"]
    assert response.headers.get("RateLimit") is None  # a plain 404 carries no counters
    # Decided: a limited address waits even with a valid token (the 429 comes before the
    # token is read), and nothing is consumed: the link still works from elsewhere.
    await refused(await redeem(client, tokens["bob"], headers=ATTACKER), "redeem-misses")
    peek = await client.post("/v1/views/peek", json={"token": tokens["bob"]}, headers=NEIGHBOUR)
    assert peek.status == 200 and (await peek.json())["views_left"] == 1
    assert (await redeem(client, tokens["bob"], headers=NEIGHBOUR)).status == 201
    # Misses are never counted per lookup: the neighbour's misses do not touch carol's link.
    for _ in range(29):
        await problem(await redeem(client, stranger_token(), headers=NEIGHBOUR), 404, "not-found")
    assert (await redeem(client, tokens["carol"], headers=NEIGHBOUR)).status == 201


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(
    make_client: Any, settings: Settings
) -> None:
    settings = limited(settings, redeem_misses_per_minute=3)  # trusted_proxies: none
    client = await make_client(settings, worker=False)
    for index in range(3):
        spoofed = {"X-Forwarded-For": f"192.0.2.{index}"}
        await problem(await redeem(client, stranger_token(), headers=spoofed), 404, "not-found")
    fresh = {"X-Forwarded-For": "192.0.2.200"}
    await refused(await redeem(client, stranger_token(), headers=fresh), "redeem-misses")


async def test_only_trusted_hops_are_skipped_in_forwarded_for(
    make_client: Any, settings: Settings
) -> None:
    settings = limited(
        settings, redeem_misses_per_minute=2, trusted_proxies="127.0.0.1, 10.0.0.0/8"
    )
    client = await make_client(settings, worker=False)
    # The client wrote a fake first hop; our proxies (10.x) appended the real address.
    for fake in ("1.1.1.1", "8.8.8.8"):
        chain = {"X-Forwarded-For": f"{fake}, 203.0.113.9, 10.1.2.3"}
        await problem(await redeem(client, stranger_token(), headers=chain), 404, "not-found")
    bare = {"X-Forwarded-For": "203.0.113.9"}
    await refused(await redeem(client, stranger_token(), headers=bare), "redeem-misses")


async def test_viewer_requests_are_limited_per_address(
    make_client: Any, settings: Settings
) -> None:
    settings = limited(settings, viewer_per_minute=5, trusted_proxies="127.0.0.1")
    client = await make_client(settings, worker=False)
    page = "/v/" + "A" * 22
    for path in (page, page, "/v/_/viewer.js", page, "/v/_/viewer.css"):
        response = await client.get(path, headers=ATTACKER)
        assert response.status == 200
    limited_page = await client.get(page, headers=ATTACKER)
    await refused(limited_page, "viewer")
    assert limited_page.headers["Referrer-Policy"] == "no-referrer"
    assert limited_page.headers["RateLimit-Policy"] == '"viewer";q=5;w=60'
    assert (await client.get(page, headers=NEIGHBOUR)).status == 200


async def test_the_memory_alarm_sheds_uploads_while_views_still_work(
    make_client: Any, settings: Settings
) -> None:
    client = await make_client(settings)
    _, tokens = await ready_media(client, settings, recipients=["bob"], views=2)
    # A second API process on the same Redis whose alarm threshold is already passed.
    tight = await make_client(limited(settings, memory_alarm_bytes=1), worker=False)
    shed = await post_upload(tight, settings, ["carol"])
    body = await problem(shed, 503, "unavailable")
    assert "uploads are paused" in body["detail"] and int(shed.headers["Retry-After"]) >= 1
    peek = await tight.post("/v1/views/peek", json={"token": tokens["bob"]})
    assert peek.status == 200
    assert (await redeem(tight, tokens["bob"])).status == 201
    assert (await tight.get("/v/" + tokens["bob"].split(".")[0])).status == 200
