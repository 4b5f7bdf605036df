"""A 250-member group: paging with a small limit, the status filter, counts, and the ETag."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp.test_utils import TestClient

from ephemeral.config import Settings
from ephemeral.state.media import encode_cursor
from ephemeral.state.records import STATUSES
from tests.api.helpers import lease_auth, problem, redeemed, status
from tests.api.test_views import ready_media
from tests.fixtures.core import auth

MEMBERS = [f"m{i:03d}" for i in range(250)]


async def pages(
    client: TestClient[Any, Any], settings: Settings, media_id: str, query: str
) -> list[dict[str, Any]]:
    """Follow next_cursor to the end; every page holds at most `limit` rows."""
    limit = int(dict(p.split("=") for p in query.split("&"))["limit"])
    rows: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(len(MEMBERS) + 2):
        url = f"/v1/media/{media_id}/recipients?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(url, headers=auth(settings))
        assert response.status == 200, await response.text()
        body = await response.json()
        assert len(body["recipients"]) <= limit
        rows += body["recipients"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("the cursor never ended")


async def test_250_members_page_once_each_and_match_the_counts(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    media_id, tokens = await ready_media(client, settings, recipients=MEMBERS)
    for rid in MEMBERS[:7]:
        assert (await client.post("/v1/views/peek", json={"token": tokens[rid]})).status == 200
    for rid in MEMBERS[10:13]:
        await redeemed(client, tokens[rid])
    for rid in MEMBERS[200:205]:
        removed = await client.delete(
            f"/v1/media/{media_id}/recipients/{rid}", headers=auth(settings)
        )
        assert removed.status == 204

    everyone = await pages(client, settings, media_id, "limit=7")
    assert [r["id"] for r in everyone] == MEMBERS  # each exactly once, in order
    counts = (await status(client, settings, media_id))["counts"]
    tally = Counter(r["status"] for r in everyone)
    assert {s: counts[s] for s in STATUSES} == {s: tally.get(s, 0) for s in STATUSES}
    assert (tally["delivered"], tally["opened"], tally["revoked"]) == (7, 3, 5)

    seen: list[str] = []
    for wanted in STATUSES:
        rows = await pages(client, settings, media_id, f"status={wanted}&limit=3")
        assert all(r["status"] == wanted for r in rows)
        assert len(rows) == counts[wanted]
        seen += [r["id"] for r in rows]
    assert sorted(seen) == MEMBERS

    bad = await client.get(f"/v1/media/{media_id}/recipients?limit=0", headers=auth(settings))
    await problem(bad, 422, "invalid-field")


async def test_the_status_etag_changes_when_a_member_opens(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    media_id, tokens = await ready_media(client, settings, recipients=["bob", "carol"])
    url = f"/v1/media/{media_id}"
    before = await client.get(url, headers=auth(settings))
    etag = before.headers["ETag"]
    unchanged = await client.get(url, headers={**auth(settings), "If-None-Match": etag})
    assert unchanged.status == 304
    view = await redeemed(client, tokens["bob"])
    after = await client.get(url, headers={**auth(settings), "If-None-Match": etag})
    assert after.status == 200 and after.headers["ETag"] != etag
    body = await after.json()
    assert next(r for r in body["recipients"] if r["id"] == "bob")["status"] == "opened"
    again = await client.get(
        url, headers={**auth(settings), "If-None-Match": after.headers["ETag"]}
    )
    assert again.status == 304
    await client.delete(f"/v1/views/{view['view_id']}", headers=lease_auth(view))


async def test_a_crafted_cursor_is_a_first_page_never_a_500(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    media_id, _ = await ready_media(client, settings, recipients=["bob", "carol"])
    # "²" passes str.isdigit() but not int(); a 30-digit offset is past what Redis takes.
    for crafted in ("²", "9" * 30, "(²", "-1", ""):
        cursor = encode_cursor(crafted)
        for url in (
            f"/v1/media/{media_id}/recipients?cursor={cursor}",
            f"/v1/media/{media_id}?cursor={cursor}",
            f"/v1/media?cursor={cursor}",
        ):
            response = await client.get(url, headers=auth(settings))
            assert response.status == 200, (crafted, url, await response.text())
