"""SSE for senders: events in order from another process, resume, tickets, caps, expiry."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from ephemeral.config import Settings
from tests.api.helpers import lease_auth, problem
from tests.api.test_views import forge, ready_media
from tests.fixtures.core import auth
from tests.fixtures.processes import api_processes, free_port, server_env, wait_healthy


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, str]]:
    """Parse an event stream: one dict per event (id, event, data); comments are skipped."""
    event: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            event[field] = value.removeprefix(" ")


async def take(
    events: AsyncIterator[dict[str, str]], count: int, limit: float = 15
) -> list[dict[str, str]]:
    """The next `count` events, leaving out media.ready: the relay may deliver it after the
    test subscribed, which is right but not what these tests look at."""
    got: list[dict[str, str]] = []
    async with asyncio.timeout(limit):
        async for event in events:
            if event.get("event") == "media.ready":
                continue
            got.append(event)
            if len(got) == count:
                break
    return got


async def test_events_arrive_in_order_from_another_process_and_resume(
    make_client: Any, settings: Settings
) -> None:
    client = await make_client(settings)
    media_id, tokens = await ready_media(client, settings, recipients=["bob"], views=2)
    await asyncio.sleep(0.3)  # let the relay pass over creation-time events
    response = await client.get("/v1/events", headers=auth(settings))
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(response)
    with api_processes(settings, 1) as (other,):
        async with aiohttp.ClientSession() as session:
            token = {"token": tokens["bob"]}
            await (await session.post(f"{other}/v1/views/peek", json=token)).read()
            first = await (await session.post(f"{other}/v1/views", json=token)).json()
            got = await take(events, 2)
            response.close()  # a dropped connection
            await session.post(
                f"{other}/v1/views/{first['view_id']}/screenshot",
                json={"kind": "screenshot"},
                headers=lease_auth(first),
            )
            await (await session.post(f"{other}/v1/views", json=token)).read()
    assert [e["event"] for e in got] == ["recipient.delivered", "recipient.opened"]
    resumed = await client.get(
        "/v1/events", headers={**auth(settings), "Last-Event-ID": got[-1]["id"]}
    )
    rest = await take(sse_events(resumed), 2)
    resumed.close()
    assert [e["event"] for e in rest] == ["recipient.screenshot", "recipient.replayed"]
    datas = [json.loads(e["data"]) for e in got + rest]
    assert [d["data"]["seq"] for d in datas] == sorted(d["data"]["seq"] for d in datas)
    assert len({d["data"]["seq"] for d in datas}) == 4
    assert all(d["data"]["media_id"] == media_id for d in datas)
    assert datas[-1]["data"]["status"] == "replayed" and datas[2]["data"]["kind"] == "screenshot"
    assert tokens["bob"].split(".")[1] not in json.dumps(datas)


async def test_ticket_is_single_use_and_media_filter_sends_a_snapshot(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    media_id, tokens = await ready_media(client, settings)
    issued = await client.post("/v1/events/tickets", headers=auth(settings))
    assert issued.status == 201
    ticket = (await issued.json())["ticket"]
    response = await client.get(f"/v1/events?ticket={ticket}&media_id={media_id}")
    assert response.status == 200
    events = sse_events(response)
    (snapshot,) = await take(events, 1)
    assert snapshot["event"] == "snapshot"
    assert json.loads(snapshot["data"])["recipients"][0]["id"] == "bob"
    await client.post("/v1/views/peek", json={"token": tokens["bob"]})
    (delivered,) = await take(events, 1)
    assert delivered["event"] == "recipient.delivered"
    response.close()
    again = await client.get(f"/v1/events?ticket={ticket}")
    await problem(again, 401, "unauthorized")
    other = await client.get(f"/v1/events?media_id={media_id}", headers=auth(settings, "mallory"))
    await problem(other, 404, "not-found")


async def test_stream_cap_per_sender(client: TestClient[Any, Any], settings: Settings) -> None:
    cap = settings.events.sse_max_streams
    opened = [await client.get("/v1/events", headers=auth(settings)) for _ in range(cap)]
    assert all(r.status == 200 for r in opened)
    await problem(await client.get("/v1/events", headers=auth(settings)), 429, "rate-limited")
    for response in opened:
        response.close()


async def test_stream_closes_when_the_jwt_expires(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    now = int(time.time())
    short = forge(settings, iat=now, exp=now + 2)
    started = time.monotonic()
    response = await client.get("/v1/events", headers={"Authorization": f"Bearer {short}"})
    assert response.status == 200
    async with asyncio.timeout(10):
        await response.read()  # ends when the server closes the stream
    assert time.monotonic() - started < 6


async def test_shutdown_ends_open_event_streams_at_once(settings: Settings) -> None:
    """A stream waits in XREAD for up to a heartbeat (20 s); SIGTERM must not wait for it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ephemeral", "serve", "--no-worker"],
        env=server_env(settings, port),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_healthy, url, process)
        async with aiohttp.ClientSession() as session:
            response = await session.get(f"{url}/v1/events", headers=auth(settings))
            assert response.status == 200
            os.killpg(process.pid, signal.SIGTERM)
            async with asyncio.timeout(10):  # half a heartbeat: only an ended stream gets here
                async for _ in response.content:
                    pass
        assert await asyncio.to_thread(process.wait, 10) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
