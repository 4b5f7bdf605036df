"""Per-sender levels: media still processing (in-flight jobs) and bytes stored until purge.

Both are sets of media ids in Redis, changed only by quota_admit/quota_release. Nothing has to
remember to take an entry out: when a sender is at a cap, the entries are checked against the
media records (state `processing` counts as in flight; `purged`, `revoked`, `failed` or no
record at all give the bytes back) and the lapsed ones are released. A crash, a discarded
upload or a purge by the sweeper therefore cannot leak quota, and the hot path stays one script.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from ephemeral.abuse.scripts import AbuseScripts
from ephemeral.state.keys import Keys

GONE_STATES = {"purged", "revoked", "failed"}
# A fresh entry may be admitted a moment before its media record is written: an entry without
# a record is taken for a discarded upload only after this long.
RECORD_GRACE_MS = 120_000
PRUNE_BATCH = 200


@dataclass(frozen=True)
class Verdict:
    outcome: str  # ok | inflight | stored
    level: int  # jobs in flight, or bytes stored
    oldest_ms: int  # age of the oldest job in flight (inflight refusals)


@dataclass(frozen=True)
class Caps:
    inflight: int
    span_ms: int  # how long an in-flight entry can be right: the processing deadline
    stored_bytes: int


class Quota:
    def __init__(self, redis: Redis, scripts: AbuseScripts, keys: Keys, caps: Caps) -> None:
        self.redis = redis
        self.scripts = scripts
        self.keys = keys
        self.caps = caps

    def _keys(self, tenant: str, sender: str) -> list[str]:
        return [
            self.keys.sender_inflight(tenant, sender),
            self.keys.sender_stored(tenant, sender),
            self.keys.sender_sizes(tenant, sender),
        ]

    async def _run(
        self, tenant: str, sender: str, media_id: str, size: int, purge_in_ms: int, mode: str
    ) -> Verdict:
        c = self.caps
        result = await self.scripts.run(
            "quota_admit",
            self._keys(tenant, sender),
            [media_id, c.inflight, c.span_ms, size, c.stored_bytes, purge_in_ms, mode],
        )
        return Verdict(result[0], int(result[1]), int(result[2]))

    @property
    def enabled(self) -> bool:
        return self.caps.inflight > 0 or self.caps.stored_bytes > 0

    async def check(self, tenant: str, sender: str) -> Verdict:
        """Could this sender start an upload now? Prunes once before saying no."""
        if not self.enabled:
            return Verdict("ok", 0, 0)
        verdict = await self._run(tenant, sender, "", 0, 0, "check")
        if verdict.outcome != "ok" and await self._prune(tenant, sender, verdict.outcome):
            verdict = await self._run(tenant, sender, "", 0, 0, "check")
        return verdict

    async def admit(
        self, tenant: str, sender: str, media_id: str, size: int, purge_in_ms: int
    ) -> Verdict:
        """Count the media as in flight and its bytes as stored, or refuse with the reason."""
        if not self.enabled:
            return Verdict("ok", 0, 0)
        verdict = await self._run(tenant, sender, media_id, size, purge_in_ms, "admit")
        if verdict.outcome != "ok" and await self._prune(tenant, sender, verdict.outcome):
            verdict = await self._run(tenant, sender, media_id, size, purge_in_ms, "admit")
        return verdict

    async def release(self, tenant: str, sender: str, media_id: str) -> None:
        """The media will never exist (refused after admission): give everything back."""
        await self.scripts.run("quota_release", self._keys(tenant, sender), [media_id, "gone"])

    async def _prune(self, tenant: str, sender: str, which: str) -> bool:
        """Release entries whose media no longer counts; True if any was released."""
        inflight_key, stored_key, _ = self._keys(tenant, sender)
        seconds, micros = await self.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        admitted = dict(await self.redis.zrange(inflight_key, 0, -1, withscores=True))
        recent = {m for m, at in admitted.items() if now_ms - at < RECORD_GRACE_MS}
        if which == "inflight":
            members = list(admitted)
        else:
            members = await self.redis.zrange(stored_key, 0, -1)
        releases: list[str] = []
        for start in range(0, len(members), PRUNE_BATCH):
            batch = members[start : start + PRUNE_BATCH]
            async with self.redis.pipeline(transaction=False) as pipe:
                for media_id in batch:
                    pipe.hget(self.keys.media(media_id), "state")
                states = await pipe.execute()
            for media_id, state in zip(batch, states, strict=True):
                what = _lapsed(media_id, state, recent, which)
                if what:
                    releases += [media_id, what]
        if releases:
            await self.scripts.run("quota_release", self._keys(tenant, sender), releases)
        return bool(releases)


def _lapsed(media_id: str, state: str | None, recent: set[str], which: str) -> str:
    """`gone`, `done` or "" (still counts) for one entry, from its media record's state."""
    if state is None:
        return "" if media_id in recent else "gone"
    if state in GONE_STATES:
        return "gone"
    if which == "inflight" and state != "processing":
        return "done"
    return ""
