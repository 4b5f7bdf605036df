"""The relay leaves nothing behind for an upload that was discarded while it ran."""

from __future__ import annotations

from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.services import open_services
from workers.relay import full_scan, relay_media, relay_once


async def test_full_scan_does_not_bring_back_a_discarded_upload(
    settings: Settings, redis: Redis
) -> None:
    async with open_services(settings) as svc:
        media_id = "m_discarded0000000000000"
        await svc.media.reserve_object(media_id, "objects/x", 60)
        shard = svc.keys.live_shard(media_id)
        live = "m_live00000000000000000000"
        await svc.media.schedule(live, 10**13, 0)
        # The scan read the live-set before the upload was discarded, and marks after it.
        due = await redis.zrange(svc.keys.live_due(shard), 0, -1)
        assert media_id in due
        await svc.media.unschedule(media_id)
        marked = await svc.scripts.run(
            "remark", [svc.keys.live_due(shard), svc.keys.relay_pending(shard)], due
        )
        assert int(marked[0]) == (1 if svc.keys.live_shard(live) == shard else 0)
        assert await redis.zscore(svc.keys.relay_pending(shard), media_id) is None

        await full_scan(svc)
        live_pending = svc.keys.relay_pending(svc.keys.live_shard(live))
        assert await redis.zscore(live_pending, live) is not None
        assert await redis.zscore(svc.keys.relay_pending(shard), media_id) is None


async def test_relaying_a_media_without_record_takes_no_lock(
    settings: Settings, redis: Redis
) -> None:
    async with open_services(settings) as svc:
        media_id = "m_neverrecorded0000000000"
        await svc.media.reserve_object(media_id, "objects/y", 60)  # marks it for the relay
        assert await relay_media(svc, media_id) == 0
        assert not await redis.exists(svc.keys.relay_lock(media_id))
        await relay_once(svc)  # the mark of a media with nothing to relay is dropped
        shard = svc.keys.live_shard(media_id)
        assert await redis.zscore(svc.keys.relay_pending(shard), media_id) is None
