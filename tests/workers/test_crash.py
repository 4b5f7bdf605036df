"""A worker SIGKILLed mid-transcode: the job runs again elsewhere and nothing is left behind."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ephemeral.config import Settings
from ephemeral.media.jobdir import JOB_PREFIX, job_root
from ephemeral.state import typed
from ephemeral.state.keys import Keys
from tests.api.test_lifecycle import stored_blobs
from tests.fixtures.clips import make_clip
from tests.fixtures.core import upload, wait_state
from tests.fixtures.processes import free_port, server_env, spawn

pytestmark = pytest.mark.slow


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def ffmpeg_under(root: int) -> list[int]:
    """ffmpeg processes descending from `root` (other tests may run ffmpeg meanwhile)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "ffmpeg":
                continue
        except OSError:
            continue
        pid = int(entry.name)
        ancestor = pid
        while ancestor > 1:
            ancestor = _parent(ancestor)
            if ancestor == root:
                found.append(pid)
                break
    return found


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = server_env(settings, free_port())
    env["EPHEMERAL_WORKER_JOB_TIMEOUT"] = str(settings.worker.job_timeout)
    return spawn([sys.executable, "-m", "ephemeral", "worker"], env, "worker")


async def test_sigkill_mid_transcode_then_ready_after_restart(
    make_client: Any, settings: Settings, redis: Any, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        settings, worker=dataclasses.replace(settings.worker, job_timeout=15)
    )
    clip = make_clip(tmp_path / "long.mp4", 10, size="640x360")  # about 3 s to transcode
    client = await make_client(settings, worker=False)  # the API alone; workers are processes
    created = await upload(client, settings, {"recipients": ["bob"]}, clip.read_bytes())
    first = start_worker(settings)
    second: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 30
        while not ffmpeg_under(first.pid):
            assert time.monotonic() < deadline, "the transcode never started"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        orphans = ffmpeg_under(first.pid)
        os.kill(first.pid, signal.SIGKILL)  # the worker only: a crash, not a shutdown
        first.wait(timeout=10)
        await asyncio.sleep(1)
        alive = [pid for pid in orphans if Path(f"/proc/{pid}").exists()]
        assert not alive, "the killed worker's ffmpeg outlived it"
        second = start_worker(settings)
        # arq hands the job on once the killed worker's claim lapses (job timeout + 10 s).
        body = await wait_state(client, settings, created["id"], {"ready", "failed"}, timeout=90)
        assert body["state"] == "ready", body["error"]
        keys = Keys(settings.redis.prefix)
        ready = await typed.hget(redis, keys.media(created["id"]), "obj")
        deadline = time.monotonic() + 15
        # Right after publishing, the job drops the original and the killed attempt's leftovers.
        while await typed.smembers(redis, keys.objects(created["id"])) != {ready}:
            assert time.monotonic() < deadline, "leftover objects were never dropped"
            await asyncio.sleep(0.1)
        assert body["kind"] == "video"
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
    assert second is not None
    assert len(stored_blobs(settings)) == 1
    assert not list((settings.data_dir / "blobs" / ".tmp").glob("*.part"))
    ours = (f"{JOB_PREFIX}{first.pid}-", f"{JOB_PREFIX}{second.pid}-")  # others may run too
    assert not [p for p in Path(job_root()).iterdir() if p.name.startswith(ours)]
