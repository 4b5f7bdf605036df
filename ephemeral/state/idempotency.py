"""Idempotency records in Redis: claim, complete, release, link to the media, tombstone.

A record is one hash under keys.idempotency(<HMAC>), written only by single-key scripts:
`inflight` (fingerprint, the claimer's nonce) → `done` (fingerprint, status, media id and the
response encrypted by the caller) → `tomb` (the ciphertext dropped at unsend or purge). Its
TTL runs from the claim. The media hash names its record (`idem`), so unsend and purge, which
know only the media, can reduce it to a tombstone without the raw Idempotency-Key.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from ephemeral.state import typed
from ephemeral.state.keys import Keys
from ephemeral.state.scripts import Scripts


@dataclass(frozen=True)
class Held:
    """What a claim found instead of a free key."""

    state: str  # inflight | done | tomb
    fingerprint: str
    status: int
    ciphertext: str
    media_id: str


class IdempotencyRecords:
    def __init__(self, redis: Redis, scripts: Scripts, keys: Keys) -> None:
        self.redis = redis
        self.scripts = scripts
        self.keys = keys

    async def claim(
        self, record: str, fingerprint: str, nonce: str, inflight_ms: int
    ) -> Held | None:
        """None: the key is ours now (in flight until completed or released)."""
        found = await self.scripts.run("idem_claim", [record], [fingerprint, nonce, inflight_ms])
        if found[0] == "claimed":
            return None
        status = int(found[2]) if found[2].isdigit() else 0
        return Held(found[0], found[1], status, found[3], found[4])

    async def link(self, record: str, media_id: str) -> None:
        await self.scripts.run("idem_link", [self.keys.media(media_id)], [record])

    async def complete(
        self, record: str, nonce: str, status: int, ciphertext: str, media_id: str, ttl_ms: int
    ) -> bool:
        result = await self.scripts.run(
            "idem_complete", [record], [nonce, status, ciphertext, media_id, ttl_ms]
        )
        return str(result[0]) == "1"

    async def release(self, record: str, nonce: str) -> None:
        await self.scripts.run("idem_release", [record], [nonce])


async def tombstone(redis: Redis, scripts: Scripts, keys: Keys, media_id: str) -> None:
    """Drop the stored response (and its tokens) of the record that created this media.

    An ordered, idempotent step across slots: read the media's link, then change the record if
    it still names this media. Called at unsend and at the start of every purge.
    """
    record = await typed.hget(redis, keys.media(media_id), "idem")
    if record:
        await scripts.run("idem_tombstone", [record], [media_id])
