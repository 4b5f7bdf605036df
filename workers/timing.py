"""How long each normalise job took, by the media's kind and the job's outcome."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.exceptions import RedisError

from ephemeral import metrics
from ephemeral.services import Services
from ephemeral.state import typed


@dataclass
class JobRun:
    outcome: str = "retry"  # left so when the job raises (arq's Retry, a timeout, a crash)


@contextlib.asynccontextmanager
async def timed_processing(svc: Services, media_id: str) -> AsyncIterator[JobRun]:
    run = JobRun()
    started = time.monotonic()
    try:
        yield run
    except asyncio.CancelledError:  # arq's job timeout: no more awaiting here
        metrics.observe_processing("", "cancelled", time.monotonic() - started)
        raise
    except BaseException:
        await _observe(svc, media_id, run, started)
        raise
    await _observe(svc, media_id, run, started)


async def _observe(svc: Services, media_id: str, run: JobRun, started: float) -> None:
    elapsed = time.monotonic() - started
    kind = ""
    with contextlib.suppress(RedisError, OSError):  # a metric never fails the job
        kind = await typed.hget(svc.redis, svc.keys.media(media_id), "kind") or ""
    metrics.observe_processing(kind, run.outcome, elapsed)
