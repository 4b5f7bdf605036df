"""The Python SDK against a real server process: send, status, watch, open, errors, unsend."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from ephemeral.auth import Authenticator
from ephemeral.client import (
    Client,
    Event,
    Gone,
    InvalidField,
    MediaStatus,
    NotFound,
    PayloadTooLarge,
    RecipientClient,
    SentMedia,
    Unauthorized,
    UnsupportedMediaType,
)
from tests.client.conftest import Service, noisy_jpeg
from tests.fixtures.core import JWT_KEY


async def ready(client: Client, media_id: str) -> MediaStatus:
    async with asyncio.timeout(60):
        return await client.wait_ready(media_id)


async def test_send_streams_with_progress_and_status_is_typed(
    service: Service, tmp_path: Path
) -> None:
    photo = noisy_jpeg(tmp_path / "holiday.jpg")
    size = photo.stat().st_size
    calls: list[tuple[int, int]] = []
    async with Client(service.url, service.token()) as client:
        sent = await client.send(
            photo,
            to=["bob", "carol", "dave"],
            views=2,
            expires_in=3600,
            caption="from the beach",
            progress=lambda done, total: calls.append((done, total)),
        )
        status = await ready(client, sent.id)
    assert size > 3 * 256 * 1024  # several chunks, so several calls
    assert len(calls) >= 4 and calls[-1] == (size, size)
    assert all(total == size for _, total in calls)
    assert all(a[0] < b[0] for a, b in itertools.pairwise(calls))
    assert isinstance(sent, SentMedia) and sent.state == "processing" and sent.views == 2
    assert [r.id for r in sent.recipients] == ["bob", "carol", "dave"]
    assert all(f"/v/{r.token.split('.')[0]}#" in r.url for r in sent.recipients)
    assert isinstance(sent.created_at, datetime) and sent.expires_at is not None
    assert round((sent.expires_at - sent.created_at).total_seconds()) == 3600
    assert "token" not in repr(sent.recipients[0]) and sent.recipients[0].token not in repr(sent)
    assert isinstance(status, MediaStatus) and status.state == "ready" and status.kind == "image"
    assert status.counts["sent"] == 3 and not status.terminal
    assert [(m.id, m.status, m.views_left) for m in status.recipients] == [
        ("bob", "sent", 2),
        ("carol", "sent", 2),
        ("dave", "sent", 2),
    ]


async def collect(events: list[Event], stream: AsyncIterator[Event]) -> None:
    async for event in stream:
        events.append(event)


async def wait_for(events: list[Event], kind: str, limit: float = 20) -> None:
    async with asyncio.timeout(limit):
        while not any(e.type == kind for e in events):
            await asyncio.sleep(0.05)


async def test_watch_in_order_and_open_streams_what_the_service_serves(
    service: Service, tmp_path: Path
) -> None:
    async with Client(service.url, service.token()) as client:
        sent = await client.send(noisy_jpeg(tmp_path / "a.jpg", 300), to=["bob"], views=2)
        await ready(client, sent.id)
        events: list[Event] = []
        watcher = asyncio.create_task(collect(events, client.watch(sent.id)))
        await wait_for(events, "snapshot")
        link = sent.recipients[0].url
        async with RecipientClient(device="laptop") as recipient:
            async with recipient.open(link) as view:  # peeks (delivered), then redeems
                peek = view.peeked
                chunks = [chunk async for chunk in view.chunks(4096)]
                await view.screenshot()
                lease = view.info.lease
                content_url = view.info.content_url
            got = b"".join(chunks)
            # The second view, fetched by hand: the same bytes the SDK streamed.
            async with aiohttp.ClientSession() as session:
                answer = await session.post(
                    f"{service.url}/v1/views", json={"token": sent.recipients[0].token}
                )
                replay = await answer.json()
                served = await session.get(
                    replay["content_url"], headers={"Authorization": f"Lease {replay['lease']}"}
                )
                expected = await served.read()
                ended = await session.get(content_url, headers={"Authorization": f"Lease {lease}"})
                ended_body = await ended.json()
        await wait_for(events, "recipient.replayed")
        watcher.cancel()
        bob = (await client.status(sent.id)).member("bob")
    assert peek is not None and peek.state == "ready" and peek.views_left == 2
    assert peek.capture == "notify"
    assert got == expected and len(got) == view.info.size and len(chunks) > 1
    assert view.info.mime == "image/jpeg" and view.info.views_left == 1
    assert Image.open(io.BytesIO(got)).size == (300, 300)
    # Leaving the block ended the first lease (the replay would have too: so check the code).
    assert ended.status == 410 and ended_body["code"] == "lease-ended"
    snapshot = events[0].snapshot
    assert events[0].type == "snapshot" and snapshot is not None and snapshot.id == sent.id
    kinds = [e.type for e in events[1:] if e.type != "media.ready"]
    assert kinds == [
        "recipient.delivered",
        "recipient.opened",
        "recipient.screenshot",
        "recipient.replayed",
    ]
    assert bob.status == "replayed" and bob.screenshot_count == 1 and bob.last_screenshot_at
    opened = next(e for e in events if e.type == "recipient.opened")
    assert opened.recipient == "bob" and opened.media_id == sent.id and opened.id
    assert opened.data["device"] == "laptop" and isinstance(opened.timestamp, datetime)
    seqs = [e.seq or 0 for e in events[1:]]
    assert seqs == sorted(seqs) and 0 not in seqs


async def test_problems_become_typed_exceptions(service: Service, tmp_path: Path) -> None:
    photo = noisy_jpeg(tmp_path / "p.jpg", 64)
    async with Client(service.url, service.token()) as client:
        with pytest.raises(NotFound) as missing:
            await client.status("m_nothing_here_at_all_x")
        with pytest.raises(InvalidField) as own:
            await client.send(photo, to=["alice"])
        text = tmp_path / "notes.txt"
        text.write_text("not a photo\n" * 100)
        with pytest.raises(UnsupportedMediaType) as unsupported:
            await client.send(text, to=["bob"])
        sent = await client.send(photo, to=["bob", "carol"])
        await ready(client, sent.id)
        await client.revoke(sent.id, "carol")
        await client.unsend(sent.id)
        await client.unsend(sent.id)  # repeatable
        status = await client.status(sent.id)
    async with Client(service.url, "not-a-jwt") as stranger:
        with pytest.raises(Unauthorized) as unauthorized:
            await stranger.status(sent.id)
    async with RecipientClient() as recipient:
        with pytest.raises(Gone) as unsent:
            async with recipient.open(sent.recipients[0].url):
                pass
        with pytest.raises(NotFound):
            await recipient.peek(sent.recipients[0].url[:-3] + "AAA")
    assert missing.value.status == 404 and missing.value.code == "not-found"
    assert missing.value.detail and missing.value.instance
    assert own.value.status == 422 and own.value.errors[0]["pointer"].startswith("/recipients")
    assert unsupported.value.code == "unsupported-media-type"
    assert unauthorized.value.code == "unauthorized" and unauthorized.value.status == 401
    assert unsent.value.code == "revoked" and unsent.value.status == 410
    assert status.state == "revoked" and status.terminal
    assert {m.id: m.revoked_reason for m in status.recipients} == {
        "bob": "unsent",
        "carol": "removed",
    }


async def test_an_oversized_file_is_refused_before_its_bytes_are_sent(
    service: Service, tmp_path: Path
) -> None:
    big = tmp_path / "huge.mp4"
    with big.open("wb") as handle:  # sparse: nothing is written, nothing could be read whole
        handle.truncate(2 * 1024**3)
    calls: list[int] = []
    async with Client(service.url, service.token()) as client:
        with pytest.raises(PayloadTooLarge) as refused:
            await client.send(big, to=["bob"], progress=lambda done, _: calls.append(done))
    assert refused.value.status == 413 and refused.value.code == "payload-too-large"
    assert calls == []  # Expect: 100-continue: refused from the headers


async def test_open_retries_a_lost_answer_without_spending_a_second_view(
    service: Service, tmp_path: Path
) -> None:
    """A redeem whose answer is lost is retried with the same redeem_id: one view, not two."""
    async with Client(service.url, service.token()) as client:
        sent = await client.send(noisy_jpeg(tmp_path / "r.jpg", 64), to=["bob"], views=2)
        await ready(client, sent.id)
    async with RecipientClient() as recipient:
        base, token = service.url, sent.recipients[0].token
        redeem_id = os.urandom(16).hex()[:22]
        first = await recipient.redeem(base, token, redeem_id, wait=0)
        again = await recipient.redeem(base, token, redeem_id, wait=0)
    async with Client(service.url, service.token()) as client:
        bob = (await client.status(sent.id)).member("bob")
    assert again.view_id == first.view_id and again.lease == first.lease
    assert bob.views_used == 1 and bob.views_left == 1


async def test_watch_outlives_its_token_and_resumes_without_loss(
    service: Service, tmp_path: Path
) -> None:
    """The service closes a stream at the JWT's exp; watch reconnects with a fresh token from
    the provider and Last-Event-ID, so an open during the gap is neither lost nor repeated."""
    authority = Authenticator(service.settings, JWT_KEY)
    minted: list[str] = []

    def short_lived() -> str:
        minted.append(authority.mint("alice", lifetime=2))
        return minted[-1]

    async with Client(service.url, service.token()) as client:
        sent = await client.send(noisy_jpeg(tmp_path / "w.jpg", 64), to=["bob", "carol", "dave"])
        await ready(client, sent.id)
    events: list[Event] = []
    async with Client(service.url, short_lived) as watcher, RecipientClient() as recipient:
        task = asyncio.create_task(collect(events, watcher.watch(sent.id)))
        await wait_for(events, "snapshot")
        async with recipient.open(sent.recipients[0].url) as view:
            await view.read()
        await wait_for(events, "recipient.opened")
        async with asyncio.timeout(20):  # the first stream ends at its token's exp
            while len(minted) < 2:
                await asyncio.sleep(0.05)
        async with recipient.open(sent.recipients[1].url) as view:
            await view.read()
        async with asyncio.timeout(20):
            while sum(e.type == "recipient.opened" for e in events) < 2:
                await asyncio.sleep(0.05)
        task.cancel()
        # Offline meanwhile: resuming from the last id seen gives what happened since.
        last_seen = [e.id for e in events if e.id][-1]
        await client_revoke(service, sent.id, "dave")
        resumed = watcher.watch(sent.id, last_event_id=last_seen)
        later: list[Event] = []
        async with asyncio.timeout(20):
            async for event in resumed:
                later.append(event)
                if event.type == "recipient.revoked":
                    break
    opened = [e.recipient for e in events if e.type == "recipient.opened"]
    assert opened == ["bob", "carol"]  # each once: the resumed stream starts after the last id
    assert sum(e.type == "snapshot" for e in events) >= 2
    ids = [e.id for e in events if e.id]
    assert len(ids) == len(set(ids))
    assert next(e for e in later if e.type != "snapshot").recipient == "dave"


async def client_revoke(service: Service, media_id: str, rid: str) -> None:
    async with Client(service.url, service.token()) as client:
        await client.revoke(media_id, rid)


async def test_a_big_group_pages_through_every_member(service: Service, tmp_path: Path) -> None:
    group = [f"member{n:03d}" for n in range(120)]
    async with Client(service.url, service.token()) as client:
        small = noisy_jpeg(tmp_path / "g.jpg", 32)
        older = [(await client.send(small, to=["bob"])).id for _ in range(2)]
        sent = await client.send(small, to=group)
        first = await ready(client, sent.id)
        everyone = [m.id async for m in client.members(sent.id)]
        mine = [m async for m in client.list_media(page=2)]
    assert len(sent.recipients) == 120
    assert len(first.recipients) == 100 and first.recipients_next_cursor
    assert sorted(everyone) == group and first.counts["sent"] == 120
    assert [m.id for m in mine[:3]] == [sent.id, *reversed(older)]  # newest first, two pages
    assert len({m.id for m in mine}) == len(mine)


async def test_a_send_retried_with_its_idempotency_key_creates_nothing_new(
    service: Service, tmp_path: Path
) -> None:
    photo = noisy_jpeg(tmp_path / "i.jpg", 200)
    async with Client(service.url, service.token()) as client:
        first = await client.send(photo, to=["bob"], idempotency_key="retry-me-0123456789abcdef")
        again = await client.send(photo, to=["bob"], idempotency_key="retry-me-0123456789abcdef")
        with pytest.raises(InvalidField) as reused:
            await client.send(photo, to=["carol"], idempotency_key="retry-me-0123456789abcdef")
    assert not first.idempotent_replayed and again.idempotent_replayed
    assert again.id == first.id and again.recipients == first.recipients
    assert reused.value.code == "idempotency-key-reused"


async def test_twin_sends_with_one_key_make_one_media(service: Service, tmp_path: Path) -> None:
    """Two uploads at once under one key: the second meets `409 idempotency-key-in-flight`
    while the first streams (or the stored answer, if it came late); the SDK waits and gets
    the first answer either way. Never two media."""
    photo = noisy_jpeg(tmp_path / "twin.jpg")
    async with Client(service.url, service.token()) as client:
        key = "twin-" + os.urandom(16).hex()
        both = await asyncio.gather(
            client.send(photo, to=["bob"], idempotency_key=key),
            client.send(photo, to=["bob"], idempotency_key=key),
        )
    assert both[0].id == both[1].id
    assert sorted(s.idempotent_replayed for s in both) == [False, True]


def open_paths() -> list[str]:
    """The files this process holds open right now."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
    return found


async def test_a_refused_send_leaves_no_file_open(service: Service, tmp_path: Path) -> None:
    """The service refuses from the first bytes; the half-read file must be closed at once,
    not whenever the garbage collector gets to its generator."""
    big = tmp_path / "notes.txt"
    big.write_text("not a photo, and long enough to be sent in several chunks\n" * 40_000)
    async with Client(service.url, service.token()) as client:
        for _ in range(3):
            with pytest.raises(UnsupportedMediaType):
                await client.send(big, to=["bob"])
            assert str(big) not in open_paths()
