"""Per-sender abuse controls over real HTTP: uploads a minute, recipients a day, same-content
fan-out, jobs in flight and bytes stored. Each refusal is a 429 that leaves nothing behind."""

from __future__ import annotations

import re
from typing import Any

from ephemeral.abuse.scripts import AbuseScripts
from ephemeral.config import Settings
from ephemeral.web_keys import SERVICES
from tests.api.helpers import lease_auth, problem, redeemed
from tests.api.ratelimit_helpers import limited, media_ids, post_upload
from tests.api.test_lifecycle import stored_blobs
from tests.fixtures.core import jpeg_bytes, wait_state
from workers.runtime import running_worker

RATELIMIT_ITEM = re.compile(r'^"([a-z-]+)";r=(\d+);t=(\d+)$')


def rate_item(response: Any) -> tuple[str, int, int]:
    found = RATELIMIT_ITEM.match(response.headers["RateLimit"])
    assert found, response.headers["RateLimit"]
    return found[1], int(found[2]), int(found[3])


async def refused(response: Any, policy: str) -> dict[str, Any]:
    body = await problem(response, 429, "rate-limited")
    assert body["violated-policies"] == [policy]
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["RateLimit-Policy"].startswith(f'"{policy}";q=')
    name, remaining, reset = rate_item(response)
    assert (name, remaining) == (policy, 0) and reset == int(response.headers["Retry-After"])
    return body


async def test_the_61st_upload_in_a_minute_is_429_with_retry_after(
    make_client: Any, settings: Settings
) -> None:
    settings = limited(settings, uploads_per_minute=60, inflight_jobs=0)
    client = await make_client(settings, worker=False)
    for sent in range(1, 61):
        response = await post_upload(client, settings, ["bob"])
        assert response.status == 202, await response.text()
        assert response.headers["RateLimit-Policy"].startswith('"uploads";q=60;w=60, ')
        assert response.headers["RateLimit"].startswith(f'"uploads";r={60 - sent};t=')
    blobs = stored_blobs(settings)
    response = await post_upload(client, settings, ["bob"])
    await refused(response, "uploads")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["RateLimit-Policy"] == '"uploads";q=60;w=60'
    assert stored_blobs(settings) == blobs and len(await media_ids(client, settings)) == 60
    other = await post_upload(client, settings, ["bob"], sub="carol")  # quotas are per sender
    assert other.status == 202, await other.text()


async def test_recipients_a_day_refuse_a_create_that_would_pass_the_quota(
    make_client: Any, settings: Settings
) -> None:
    settings = limited(settings, recipients_per_day=5)
    client = await make_client(settings, worker=False)
    first = await post_upload(client, settings, ["b1", "b2", "b3"])
    assert first.status == 202 and '"recipients";r=2;t=' in first.headers["RateLimit"]
    before = (stored_blobs(settings), await media_ids(client, settings))
    body = await refused(await post_upload(client, settings, ["c1", "c2", "c3"]), "recipients")
    assert "5 recipients a day" in body["detail"]
    assert (stored_blobs(settings), await media_ids(client, settings)) == before
    last = await post_upload(client, settings, ["d1", "d2"])  # exactly the quota: allowed
    assert last.status == 202, await last.text()


async def test_fanout_trips_on_identical_content_and_not_on_different_content(
    make_client: Any, settings: Settings
) -> None:
    # Room for exactly four jobs: the refused create must give its in-flight slot back.
    settings = limited(settings, fanout_recipients=3, inflight_jobs=4)
    client = await make_client(settings, worker=False)
    same, other = jpeg_bytes(color="red"), jpeg_bytes(color="blue")
    for group in (["r1", "r2"], ["r3"], ["r1", "r2"]):  # a resend to the same people adds none
        response = await post_upload(client, settings, group, same)
        assert response.status == 202, await response.text()
    before = (stored_blobs(settings), await media_ids(client, settings))
    body = await refused(await post_upload(client, settings, ["r4"], same), "fanout")
    assert "3 distinct recipients" in body["detail"]
    # Another sender with the very same bytes: the count is per content, not per sender.
    await refused(await post_upload(client, settings, ["r9"], same, sub="mallory"), "fanout")
    assert (stored_blobs(settings), await media_ids(client, settings)) == before
    response = await post_upload(client, settings, ["r4", "r5", "r6"], other)
    assert response.status == 202, await response.text()


async def test_a_first_send_to_a_big_group_is_one_message_not_a_fanout(
    make_client: Any, settings: Settings
) -> None:
    settings = limited(settings, fanout_recipients=3)
    client = await make_client(settings, worker=False)
    group = [f"member{i}" for i in range(10)]
    response = await post_upload(client, settings, group)
    assert response.status == 202, await response.text()
    await refused(await post_upload(client, settings, ["one-more"]), "fanout")


async def test_inflight_jobs_are_capped_per_sender_at_enqueue(
    make_client: Any, settings: Settings
) -> None:
    settings = limited(settings, inflight_jobs=1)
    client = await make_client(settings, worker=False)  # no worker yet: the job stays queued
    first = await post_upload(client, settings, ["bob"])
    assert first.status == 202
    media_id = (await first.json())["id"]
    blobs = stored_blobs(settings)
    body = await refused(await post_upload(client, settings, ["bob"]), "inflight")
    assert "1 uploads processing at once" in body["detail"]
    assert stored_blobs(settings) == blobs
    # Another sender is not starved by alice's queue.
    assert (await post_upload(client, settings, ["bob"], sub="carol")).status == 202
    async with running_worker(client.app[SERVICES]):
        await wait_state(client, settings, media_id, {"ready"})
        again = await post_upload(client, settings, ["bob"])
        assert again.status == 202, await again.text()


async def test_stored_bytes_come_back_when_the_content_is_purged(
    make_client: Any, settings: Settings
) -> None:
    photo = jpeg_bytes((80, 60))
    settings = limited(settings, stored_bytes=len(photo) + len(photo) // 2)
    client = await make_client(settings)
    first = await post_upload(client, settings, ["bob"], photo)
    assert first.status == 202
    created = await first.json()
    await wait_state(client, settings, created["id"], {"ready"})
    blobs = stored_blobs(settings)
    body = await refused(await post_upload(client, settings, ["bob"], photo), "stored")
    assert "bytes waiting to be viewed" in body["detail"]
    assert stored_blobs(settings) == blobs  # the refused upload was read, sealed and discarded
    view = await redeemed(client, created["recipients"][0]["token"])  # the only view ...
    closed = await client.delete(f"/v1/views/{view['view_id']}", headers=lease_auth(view))
    assert closed.status == 204  # ... and its lease ended: the content is purged
    await wait_state(client, settings, created["id"], {"purged"}, purged=True)
    again = await post_upload(client, settings, ["bob"], photo)
    assert again.status == 202, await again.text()


async def test_the_quota_scripts_stay_in_one_cluster_slot(
    make_client: Any, settings: Settings, monkeypatch: Any
) -> None:
    from redis.crc import key_slot

    calls: list[tuple[str, list[str]]] = []
    original = AbuseScripts.run

    async def recording(self: AbuseScripts, name: str, keys: list[str], args: list[Any]) -> Any:
        calls.append((name, list(keys)))
        return await original(self, name, keys, args)

    monkeypatch.setattr(AbuseScripts, "run", recording)
    settings = limited(settings, inflight_jobs=1)
    client = await make_client(settings, worker=False)
    assert (await post_upload(client, settings, ["bob"])).status == 202
    assert (await post_upload(client, settings, ["bob"])).status == 429  # prunes, then refuses
    assert {name for name, _ in calls} >= {"quota_admit", "fanout"}
    for name, keys in calls:
        assert len({key_slot(k.encode()) for k in keys}) == 1, (name, keys)


async def test_caps_hold_under_concurrent_uploads(make_client: Any, settings: Settings) -> None:
    """Both checks are single atomic steps in Redis: a burst cannot slip past either cap."""
    import asyncio

    settings = limited(settings, uploads_per_minute=5, inflight_jobs=3)
    client = await make_client(settings, worker=False)
    burst = [post_upload(client, settings, [f"r{i}"], jpeg_bytes(color="green")) for i in range(12)]
    statuses = sorted([r.status for r in await asyncio.gather(*burst)])
    assert statuses == [202] * 3 + [429] * 9, statuses
    assert len(await media_ids(client, settings)) == 3
    settings = limited(settings, uploads_per_minute=5, inflight_jobs=0)
    client = await make_client(settings, worker=False)
    burst = [post_upload(client, settings, [f"s{i}"], sub="carol") for i in range(12)]
    statuses = sorted([r.status for r in await asyncio.gather(*burst)])
    assert statuses == [202] * 5 + [429] * 7, statuses
    assert len(await media_ids(client, settings, sub="carol")) == 5


async def test_expect_100_continue_is_answered_with_the_429(
    make_client: Any, settings: Settings
) -> None:
    """A sender at a limit learns it before sending a byte of the file."""
    import asyncio

    from tests.fixtures.core import sender_token

    settings = limited(settings, uploads_per_minute=1)
    client = await make_client(settings, worker=False)
    assert (await post_upload(client, settings, ["bob"])).status == 202
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(
            b"POST /v1/media HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {sender_token(settings)}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=b\r\n"
            + b"Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 429"), head  # no body was ever sent
    assert b"Retry-After: " in head and b'RateLimit: "uploads";r=0;t=' in head
