"""Stopping a worker while a job runs: the job is cut (it is idempotent) and the stop is clean."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from ephemeral.app import create_app
from ephemeral.config import Settings
from ephemeral.services import open_services
from ephemeral.state import typed
from tests.fixtures.clips import make_clip
from tests.fixtures.core import AppClient, auth
from workers.runtime import running_worker


async def test_a_worker_stopped_mid_job_closes_cleanly_and_the_job_survives(
    make_client: AppClient, settings: Settings, tmp_path: Path, aiohttp_client: Any
) -> None:
    # No grace: the job is cut for sure. A cut job's arq in-progress marker outlives it by the
    # job timeout: keep that short.
    worker = dataclasses.replace(settings.worker, job_timeout=30, shutdown_grace=0)
    settings = dataclasses.replace(settings, worker=worker)
    api: TestClient[Any, Any] = await make_client(settings, worker=False)
    clip = make_clip(tmp_path / "clip.mp4", 8, size="1280x720")
    with clip.open("rb") as handle:
        form = {"meta": '{"recipients": ["bob"]}', "file": handle}
        response = await api.post("/v1/media", data=form, headers=auth(settings))
    assert response.status == 202, await response.text()
    media_id = (await response.json())["id"]
    async with open_services(settings) as svc:
        async with running_worker(svc):
            for _ in range(200):  # until the transcode has started
                await asyncio.sleep(0.05)
                if await svc.redis.keys("arq:in-progress:*"):
                    break
        # Leaving the block cut the job: close() raised nothing and the media still processes.
        state = await typed.hget(svc.redis, svc.keys.media(media_id), "state")
        assert state == "processing"
    server = TestServer(create_app(settings, background=[running_worker]))
    again: TestClient[Any, Any] = await aiohttp_client(server)
    for _ in range(600):
        body = await (await again.get(f"/v1/media/{media_id}", headers=auth(settings))).json()
        if body["state"] != "processing":
            break
        await asyncio.sleep(0.1)
    assert body["state"] == "ready", body["error"]
