"""Running the worker: standalone (`ephemeral worker`) or inside `ephemeral serve`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from arq.worker import Worker, func

from ephemeral.config import Settings
from ephemeral.jobs import NORMALISE, PURGE, arq_pool, deserialize, serialize
from ephemeral.media.box import cleanup_stale_job_dirs
from ephemeral.services import Services, open_services
from workers import jobs
from workers.relay import run_relay
from workers.sweeper import run_sweeper
from workers.webhooks import run_webhooks

log = logging.getLogger("workers")


def build_worker(svc: Services) -> Worker:
    """The worker owns its own pool: arq closes it on shutdown."""
    w = svc.settings.worker
    url = svc.settings.redis.url or ""
    pool = arq_pool(url, svc.keys.queue())
    return Worker(
        functions=[
            func(jobs.normalise, name=NORMALISE, max_tries=w.max_tries, timeout=w.job_timeout),
            # arq hands a killed worker's job on after its longest job timeout: keep it short.
            func(jobs.purge, name=PURGE, max_tries=w.max_tries, timeout=min(60, w.job_timeout)),
        ],
        queue_name=svc.keys.queue(),
        redis_pool=pool,
        job_serializer=serialize,
        job_deserializer=deserialize,
        ctx={"services": svc, jobs.TRANSCODES: asyncio.Semaphore(w.max_transcodes)},
        max_jobs=w.concurrency,
        keep_result=0,
        handle_signals=False,
        poll_delay=0.2,
        job_timeout=w.job_timeout,
    )


async def _close(worker: Worker) -> None:
    """arq's close() cancels the jobs in flight and then gathers them, so a job cut short raises
    CancelledError out of close() and leaves the pool open. Cancel and collect them here first
    (jobs are idempotent: a cut job runs again), so close() only has the pool left to shut."""
    worker.handle_sig(signal.SIGUSR1)
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    worker.tasks.clear()
    await worker.close()


@contextlib.asynccontextmanager
async def running_worker(svc: Services) -> AsyncIterator[None]:
    """The arq worker and the sweeper as tasks on the current loop, stopped on exit."""
    cleanup_stale_job_dirs()
    worker = build_worker(svc)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(worker.async_run(), name="arq-worker"),
        asyncio.create_task(run_sweeper(svc, stop), name="sweeper"),
        asyncio.create_task(run_relay(svc, stop), name="relay"),
        asyncio.create_task(run_webhooks(svc, stop), name="webhooks"),
    ]
    try:
        yield
    finally:
        stop.set()
        await _drain(worker, svc.settings.worker.shutdown_grace)
        await _close(worker)
        # The loops see `stop` within a second; cancelling one mid-command would strand its
        # Redis connection, so they get the chance to finish first.
        done, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("%s ended with %r", task.get_name(), task.exception())


async def _drain(worker: Worker, limit: float) -> None:
    """Let the jobs in flight finish, for a few seconds, before arq's close() cancels them.
    close() gathers the cancelled jobs without return_exceptions, so a job caught even in its
    own bookkeeping after it returned (a few ms) made the shutdown itself raise."""
    worker.allow_pick_jobs = False
    running = [task for task in worker.tasks.values() if not task.done()]
    if running:
        await asyncio.wait(running, timeout=limit)


async def run_standalone(
    settings: Settings,
    stop: asyncio.Event,
    ops: Callable[[Services], AbstractAsyncContextManager[None]] | None = None,
) -> None:
    """`ops` serves /metrics, /healthz and /readyz beside the worker (ops.port)."""
    async with open_services(settings) as svc, running_worker(svc):
        async with ops(svc) if ops is not None else contextlib.nullcontext():
            log.info("worker running")
            await stop.wait()
