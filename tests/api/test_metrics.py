"""/metrics: two API processes and a worker share one multiprocess registry, and the scrape
counts exactly what happened; the in-process registry for storage errors, purge lag, backlog."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from ephemeral.config import Settings
from ephemeral.logs import RequestIdFilter, json_formatter
from storage.fs import TMP_DIR
from tests.api.samples import Samples, parse, value
from tests.fixtures.core import auth, jpeg_bytes, multipart, upload, wait_state
from tests.fixtures.processes import api_processes, free_port, server_env, spawn, wait_healthy


async def scrape(session: aiohttp.ClientSession, url: str) -> tuple[Samples, str]:
    async with session.get(f"{url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return parse(text), text


@pytest.fixture
def worker_ops(settings: Settings) -> Iterator[str]:
    """A worker process with its own ops listener; yields that listener's URL."""
    env = server_env(settings, free_port())
    ops_port = free_port()
    env["EPHEMERAL_OPS_PORT"] = str(ops_port)
    process = spawn([sys.executable, "-m", "ephemeral", "worker"], env, "worker")
    try:
        wait_healthy(f"http://127.0.0.1:{ops_port}", process)
        yield f"http://127.0.0.1:{ops_port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


async def wait_for(
    session: aiohttp.ClientSession, url: str, settings: Settings, media_id: str, field: str
) -> dict[str, Any]:
    import asyncio

    for _ in range(600):
        async with session.get(f"{url}/v1/media/{media_id}", headers=auth(settings)) as response:
            body: dict[str, Any] = await response.json()
        if body["state"] == "failed":
            raise AssertionError(body)
        if (field == "ready" and body["state"] == "ready") or body.get(field):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"media never got {field}")


DELTAS = {
    ("ephemeral_uploads_total", (("kind", "image"),)): 1,
    ("ephemeral_views_total", (("kind", "image"),)): 1,
    ("ephemeral_processing_seconds_count", (("kind", "image"), ("outcome", "ready"))): 1,
    ("ephemeral_purge_lag_seconds_count", ()): 1,
    ("ephemeral_http_errors_total", (("status", "404"), ("code", "not-found"))): 1,
    (
        "ephemeral_http_requests_total",
        (("route", "/v1/media/{media_id}"), ("method", "GET"), ("status", "404")),
    ): 1,
    (
        "ephemeral_http_requests_total",
        (("route", "/v1/views"), ("method", "POST"), ("status", "201")),
    ): 1,
    (
        "ephemeral_http_requests_total",
        (("route", "/v1/media"), ("method", "POST"), ("status", "202")),
    ): 1,
}


async def test_one_scrape_counts_every_process(settings: Settings, worker_ops: str) -> None:
    photo = jpeg_bytes((120, 90))
    with api_processes(settings, 2) as (first, second):
        async with aiohttp.ClientSession() as session:
            before, _ = await scrape(session, first)
            async with session.post(
                f"{first}/v1/media",
                data=multipart({"recipients": ["bob"]}, photo),
                headers=auth(settings),
            ) as response:
                assert response.status == 202
                created = await response.json()
            media_id = created["id"]
            await wait_for(session, second, settings, media_id, "ready")  # the worker's job
            token = created["recipients"][0]["token"]
            async with session.post(f"{second}/v1/views", json={"token": token}) as response:
                assert response.status == 201
                view = await response.json()
            lease = {"Authorization": f"Lease {view['lease']}"}
            content_url = f"{second}/v1/views/{view['view_id']}/content"
            async with session.get(content_url, headers=lease) as response:
                shown = await response.read()
            async with session.delete(f"{second}/v1/views/{view['view_id']}", headers=lease):
                pass  # the only view is over: the purge follows
            async with session.get(f"{first}/v1/media/m_nosuchmedia", headers=auth(settings)) as r:
                assert r.status == 404
            await wait_for(session, first, settings, media_id, "purged_at")
            after, text = await scrape(session, first)
            from_second, _ = await scrape(session, second)
            from_worker, _ = await scrape(session, worker_ops)

    for (name, labels), delta in DELTAS.items():
        moved = value(after, name, **dict(labels)) - value(before, name, **dict(labels))
        assert moved == delta, (name, labels, moved)
    received = value(after, "ephemeral_upload_bytes_total", kind="image")
    assert received - value(before, "ephemeral_upload_bytes_total", kind="image") == len(photo)
    sent = value(after, "ephemeral_content_bytes_total", kind="image")
    assert sent - value(before, "ephemeral_content_bytes_total", kind="image") == len(shown)
    # The other processes' scrapes sum the same files (the worker's on its ops listener).
    for name, labels in DELTAS:
        assert value(from_second, name, **dict(labels)) == value(after, name, **dict(labels))
        assert value(from_worker, name, **dict(labels)) == value(after, name, **dict(labels))
    assert value(after, "ephemeral_queue_depth") >= 0
    assert ("ephemeral_live_media", frozenset()) in after
    # Labels are templates and fixed sets: no id of the media or of the view, no secret.
    for secret in (media_id, view["view_id"], view["lease"], *token.split(".")):
        assert secret not in text


async def test_storage_errors_are_counted_in_process(make_client: Any, settings: Settings) -> None:
    # The app in this process: no multiprocess dir, the default registry, /metrics public.
    client = await make_client(settings, worker=False)

    async def scraped() -> Samples:
        response = await client.get("/metrics")
        assert response.status == 200
        return parse(await response.text())

    before = await scraped()
    temp = settings.blob_root / TMP_DIR
    shutil.rmtree(temp)
    temp.write_text("not a directory")  # every put now fails inside the backend
    lines = JsonLines()
    logging.getLogger("ephemeral").addHandler(lines)
    try:
        response = await client.post(
            "/v1/media",
            data=multipart({"recipients": ["bob"]}, jpeg_bytes()),
            headers=auth(settings),
        )
    finally:
        logging.getLogger("ephemeral").removeHandler(lines)
    assert response.status == 503
    # A line logged inside the request carries its id, the one the client sees.
    (warning,) = [line for line in lines.parsed() if line["level"] == "WARNING"]
    assert warning["request_id"] == response.headers["X-Request-Id"]
    assert warning["msg"] == "backend unavailable: StorageError"
    after = await scraped()
    moved = {
        ("ephemeral_storage_errors_total", (("backend", "fs"), ("op", "put"))): 1,
        ("ephemeral_http_errors_total", (("status", "503"), ("code", "unavailable"))): 1,
        ("ephemeral_uploads_total", (("kind", "image"),)): 0,
    }
    for (name, labels), delta in moved.items():
        assert value(after, name, **dict(labels)) - value(before, name, **dict(labels)) == delta


async def test_purge_lag_runs_from_the_deadline_that_made_the_purge_due(
    make_client: Any, settings: Settings
) -> None:
    client = await make_client(settings)  # with the in-process worker and sweeper
    before = parse(await (await client.get("/metrics")).text())
    created = await upload(client, settings, {"recipients": ["bob"], "expires_in": 1})
    body = await wait_state(client, settings, created["id"], {"purged"}, timeout=30, purged=True)
    after = parse(await (await client.get("/metrics")).text())
    count = "ephemeral_purge_lag_seconds_count"
    assert value(after, count) - value(before, count) == 1
    lag = value(after, "ephemeral_purge_lag_seconds_sum") - value(
        before, "ephemeral_purge_lag_seconds_sum"
    )
    # Unopened: the condition held at expires_at (not when the sweeper noticed), and the
    # blobs were confirmed gone at purged_at.
    expected = stamp(body["purged_at"]) - stamp(created["expires_at"])
    assert abs(lag - expected) < 0.002, (lag, expected)


class JsonLines(logging.Handler):
    """The production formatter and request-id filter, into a list."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(json_formatter())
        self.addFilter(RequestIdFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def parsed(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


def stamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_backlog_gauges_read_the_shared_state(make_client: Any, settings: Settings) -> None:
    client = await make_client(settings, worker=False)  # nobody takes the job
    await upload(client, settings, {"recipients": ["bob"]})
    await upload(client, settings, {"recipients": ["carol"]})
    samples = parse(await (await client.get("/metrics")).text())
    assert value(samples, "ephemeral_queue_depth") == 2
    assert value(samples, "ephemeral_live_media") == 2
    assert value(samples, "ephemeral_webhook_retry_depth") == 0
