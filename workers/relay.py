"""The relay: per-media outboxes into one event stream per sender and one per tenant.

At least once: entries are appended to the owner streams before the media's cursor moves, so a
crash repeats some (consumers order and dedupe by `seq`) and loses none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from ephemeral.events import RETENTION_MS, SENDER_HIDDEN, envelope
from ephemeral.services import Services
from ephemeral.state import typed
from ephemeral.state.keys import LIVE_SHARDS
from workers.pace import pause

log = logging.getLogger("workers.relay")
BATCH = 500
LOCK_MS = 10_000
FULL_SCAN_SECONDS = 60.0


async def relay_media(svc: Services, media_id: str) -> int:
    k, redis = svc.keys, svc.redis
    if not await redis.exists(k.media(media_id)):
        return 0  # a discarded upload's mark: no record, no outbox, and no lock left behind
    if not await redis.set(k.relay_lock(media_id), "1", nx=True, px=LOCK_MS):
        return 0  # another relay has it; it will see what we would have
    try:
        media = await typed.hgetall(redis, k.media(media_id))
        cursor = media.get("relayed", "0-0")
        entries = await redis.xrange(k.outbox(media_id), f"({cursor}", "+", count=BATCH)
        if not entries:
            return 0
        minid = f"{int(time.time() * 1000) - RETENTION_MS}-0"
        tenant, sender = media.get("tenant", ""), media.get("sender", "")
        status_only = svc.auth.tenants.status_only(tenant)
        async with redis.pipeline(transaction=False) as pipe:
            for _, fields in entries:
                full = envelope(media_id, media, fields)
                event = json.dumps(full)
                pipe.xadd(k.tenant_events(tenant), {"e": event}, minid=minid, approximate=True)
                if fields.get("type") not in SENDER_HIDDEN:
                    if status_only:  # receipts_to_sender = status_only: no time to the sender
                        event = json.dumps({**full, "timestamp": None})
                    stream = k.sender_events(tenant, sender)
                    pipe.xadd(stream, {"e": event}, minid=minid, approximate=True)
            await pipe.execute()
        await svc.scripts.run("relayed", [k.media(media_id)], [entries[-1][0]])
        return len(entries)
    finally:
        await redis.delete(k.relay_lock(media_id))


async def relay_once(svc: Services) -> int:
    """Relay every media marked pending; unmark only what did not change meanwhile."""
    moved = 0
    for shard in range(LIVE_SHARDS):
        key = svc.keys.relay_pending(shard)
        pending = await svc.redis.zrange(key, 0, BATCH - 1, withscores=True)
        for media_id, score in pending:
            count = await relay_media(svc, media_id)
            moved += count
            if count < BATCH:  # a newer mark stays for the next pass
                await svc.scripts.run("unmark", [key], [media_id, _score_text(score)])
    return moved


def _score_text(score: float) -> str:
    """ZSCORE's reply for an integer score, as Redis prints it."""
    return str(int(score)) if float(score).is_integer() else repr(score)


async def full_scan(svc: Services) -> None:
    """The backstop for a mark lost in a crash: every live media is looked at now and then."""
    for shard in range(LIVE_SHARDS):
        due, pending = svc.keys.live_due(shard), svc.keys.relay_pending(shard)
        members = await svc.redis.zrange(due, 0, -1)
        for start in range(0, len(members), BATCH):
            await svc.scripts.run("remark", [due, pending], members[start : start + BATCH])


async def run_relay(svc: Services, stop: asyncio.Event, interval: float = 0.1) -> None:
    last_scan = 0.0
    while not stop.is_set():
        try:
            if time.monotonic() - last_scan > FULL_SCAN_SECONDS:
                await full_scan(svc)
                last_scan = time.monotonic()
            await relay_once(svc)
        except Exception as exc:
            log.warning("relay pass failed: %s", type(exc).__name__)
        await pause(stop, interval)
