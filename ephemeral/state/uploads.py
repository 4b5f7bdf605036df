"""Two-step uploads in Redis: resolve an upload URL, claim it, commit the parts it stores."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from ephemeral.state import typed
from ephemeral.state.keys import Keys
from ephemeral.state.media import MediaRepo
from ephemeral.state.scripts import Scripts
from ephemeral.vault import StoredPart


@dataclass(frozen=True)
class Claim:
    """What the claim script answered: an outcome, and the upload's numbers when it is ok."""

    outcome: str  # ok | not-found | closed | expired | used | busy | offset
    offset: int = 0
    size: int = 0
    expires_ms: int = 0
    wrapped: str = ""  # the DEK under the upload secret ('' for head)
    busy: bool = False
    state: str = ""  # closed: the media's state and error
    error: str = ""


@dataclass(frozen=True)
class Commit:
    outcome: str  # ok | complete | refused | lost
    offset: int = 0


def _part_entry(part: StoredPart) -> str:
    return f"{part.key} {part.header} {part.size}"


class UploadRepo:
    def __init__(self, redis: Redis, scripts: Scripts, keys: Keys, media: MediaRepo) -> None:
        self.redis = redis
        self.scripts = scripts
        self.keys = keys
        self.media = media

    async def resolve(self, lookup: str) -> str | None:
        found: str | None = await self.redis.get(self.keys.upload_lookup(lookup))
        return found

    async def claim(
        self,
        media_id: str,
        verifier: str,
        nonce: str,
        mode: str,
        lock_ms: int,
        offset: int = 0,
        object_key: str = "",
    ) -> Claim:
        k = self.keys
        result = await self.scripts.run(
            "upload_claim",
            [k.media(media_id), k.upload_lock(media_id), k.objects(media_id)],
            [verifier, nonce, lock_ms, mode, offset, object_key],
        )
        outcome = result[0]
        if outcome == "ok":
            return Claim(
                "ok",
                offset=int(result[1]),
                size=int(result[2]),
                expires_ms=int(result[3] or 0),
                wrapped=result[4],
                busy=result[5] == "1",
            )
        if outcome == "offset":
            return Claim("offset", offset=int(result[1]))
        if outcome == "closed":
            return Claim("closed", state=result[1], error=result[2])
        return Claim(outcome)

    async def commit(
        self,
        media_id: str,
        nonce: str,
        start: int,
        part: StoredPart | None,
        *,
        kind: str = "",
        kek: str = "",
        epoch: int = 0,
        processing_ms: int = 0,
        requeue_ms: int = 0,
        release: bool = True,
        lock_ms: int = 0,
    ) -> Commit:
        """Append a part (or none: release, or refresh the lock) in one script."""
        k = self.keys
        result = await self.scripts.run(
            "upload_commit",
            [
                k.media(media_id),
                k.upload_lock(media_id),
                k.upload_parts(media_id),
                k.timers(media_id),
            ],
            [
                nonce,
                start,
                _part_entry(part) if part else "",
                part.size if part else 0,
                kind,
                kek,
                epoch,
                processing_ms,
                requeue_ms,
                "1" if release else "0",
                lock_ms,
            ],
        )
        if result[0] == "complete":
            await self.media.schedule(media_id, result[1], result[2])
            return Commit("complete")
        if result[0] in ("ok", "refused"):
            return Commit(result[0], int(result[1]))
        return Commit(result[0])

    async def parts(self, media_id: str, record: dict[str, str]) -> list[StoredPart]:
        """The original as stored: one object (one step, a PUT), or tus parts in order."""
        if record.get("orig"):
            return [StoredPart(record["orig"], record["orig_hdr"], int(record["orig_size"]))]
        entries = await typed.lrange(self.redis, self.keys.upload_parts(media_id), 0, -1)
        stored = []
        for entry in entries:
            key, header, size = entry.split(" ")
            stored.append(StoredPart(key, header, int(size)))
        return stored
