"""The sweeper: re-evaluates every media whose deadline has come, so no crash strands content."""

from __future__ import annotations

import asyncio
import logging
import time

from ephemeral.services import Services
from workers.pace import pause

log = logging.getLogger("workers.sweeper")


async def sweep_once(svc: Services) -> int:
    """One pass over the due part of the live-set; returns how many media were evaluated."""
    now_ms = int(time.time() * 1000)
    due = await svc.media.due(now_ms, svc.settings.worker.sweep_batch)
    for media_id in due:
        try:
            await svc.lifecycle.evaluate(media_id)
        except Exception as exc:  # one bad media must not stop the sweep of the others
            log.warning("sweeping a media failed: %s", type(exc).__name__)
    return len(due)


async def run_sweeper(svc: Services, stop: asyncio.Event) -> None:
    interval = svc.settings.worker.sweep_interval
    last_prune = 0.0
    while not stop.is_set():
        try:
            await sweep_once(svc)
            if time.monotonic() - last_prune > 600:
                svc.keyring.prune()
                last_prune = time.monotonic()
        except Exception as exc:
            log.warning("sweep failed: %s", type(exc).__name__)
        await pause(stop, interval)
