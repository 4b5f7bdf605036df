"""Purge, derived from state: evaluate a media's deadlines, then destroy keys and blobs."""

from __future__ import annotations

import asyncio
import logging
import time

from ephemeral.jobs import Jobs
from ephemeral.state import typed
from ephemeral.state.idempotency import tombstone
from ephemeral.state.media import MediaRepo
from storage.base import StorageError, Store

log = logging.getLogger("ephemeral.lifecycle")
RETRY_LATER_MS = 5_000


class Lifecycle:
    def __init__(
        self, media: MediaRepo, store: Store, jobs: Jobs, receipts_ttl: int, requeue_ms: int
    ) -> None:
        self.media = media
        self.store = store
        self.jobs = jobs
        self.receipts_ttl = receipts_ttl
        self.requeue_ms = requeue_ms
        self.keys = media.keys
        self.scripts = media.scripts

    async def evaluate(self, media_id: str) -> str:
        """Apply due deadlines and purge when due. Idempotent; safe to run from anywhere."""
        k = self.keys
        result = await self.scripts.run(
            "evaluate",
            k.whole(media_id),
            [k.recipient_prefix(media_id), k.lease_prefix(media_id), self.requeue_ms],
        )
        if result[0] == "gone":
            await self._delete_orphans(media_id)
            return "gone"
        if result[0] == "stuck":
            await self.fail(media_id, "processing-failed", "processing did not finish in time")
            return "failed"
        await self.media.schedule(media_id, result[2], result[3])
        if result[4] == "1":
            await self.jobs.normalise(media_id)
        if result[1] == "1":
            await self.purge(media_id)
            return "purged"
        return "ok"

    async def fail(self, media_id: str, code: str, detail: str) -> bool:
        k = self.keys
        result = await self.scripts.run(
            "mark_failed",
            k.whole(media_id),
            [k.recipient_prefix(media_id), k.lease_prefix(media_id), code, detail],
        )
        if result[0] != "ok":
            return False
        await self.purge(media_id)
        return True

    async def purge(self, media_id: str) -> bool:
        """Keys are destroyed first (at once); blobs are deleted until storage confirms."""
        objects = await self.begin_purge(media_id)
        return await self.finish_purge(media_id, objects)

    async def begin_purge(self, media_id: str) -> list[str]:
        # Ordered steps across slots: bring the sweeper back soon *before* destroying keys,
        # so a crash anywhere after this still ends in a finished purge.
        await self.media.retry_later(media_id, int(time.time() * 1000) + RETRY_LATER_MS)
        # Then no replay of the create may hand out tokens again (API.md, Idempotency-Key).
        await tombstone(self.media.redis, self.scripts, self.keys, media_id)
        k = self.keys
        begun = await self.scripts.run(
            "purge_begin",
            k.whole(media_id),
            [k.recipient_prefix(media_id), k.lease_prefix(media_id), RETRY_LATER_MS],
        )
        if begun[0] != "" or begun[1] != "":
            await self.media.schedule(media_id, begun[0], begun[1])
        return [o for o in begun[2:] if o]

    async def finish_purge(self, media_id: str, objects: list[str]) -> bool:
        if not await self._delete_objects(media_id, objects):
            return False
        k = self.keys
        result = await self.scripts.run(
            "purge_finish",
            k.whole(media_id),
            [k.recipient_prefix(media_id), self.receipts_ttl * 1000],
        )
        if result[0] == "ok":
            await self.media.schedule(media_id, "", result[2])
        return True

    async def _delete_objects(self, media_id: str, objects: list[str]) -> bool:
        for object_key in objects:
            for attempt in range(3):
                try:
                    await self.store.delete(object_key)
                    break
                except StorageError as exc:
                    log.warning("blob delete failed (attempt %d): %s", attempt + 1, exc)
                    await asyncio.sleep(0.2 * (attempt + 1))
            else:
                # Storage is down: the sweeper comes back to this media shortly.
                await self.media.retry_later(media_id, int(time.time() * 1000) + RETRY_LATER_MS)
                return False
            await self.media.release_object(media_id, object_key)
        return True

    async def _delete_orphans(self, media_id: str) -> None:
        """A crash between storing a blob and creating its record leaves only the objects set."""
        objects = await typed.smembers(self.media.redis, self.keys.objects(media_id))
        if await self._delete_objects(media_id, sorted(objects)):
            await self.media.unschedule(media_id)
