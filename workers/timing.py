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
    outcome: str = "retry"  # left so when the job raises (arq's Retry, a crash)


@contextlib.asynccontextmanager
async def timed_processing(svc: Services, media_id: str) -> AsyncIterator[JobRun]:
    # The kind is read before the job, never after it: a job's tail must not outlast the
    # state change a caller waits for (a worker shut down then would cancel it mid-await).
    kind = ""
    with contextlib.suppress(RedisError, OSError):  # a metric never fails the job
        kind = await typed.hget(svc.redis, svc.keys.media(media_id), "kind") or ""
    run = JobRun()
    started = time.monotonic()
    try:
        yield run
    except asyncio.CancelledError:  # arq's job timeout, or the worker shutting down
        run.outcome = "cancelled"
        raise
    finally:
        metrics.observe_processing(kind, run.outcome, time.monotonic() - started)
