"""Media records: create, read, page, unsend, revoke, and the live-set of deadlines."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, fields
from typing import Any

from redis.asyncio import Redis

from ephemeral.state import typed
from ephemeral.state.idempotency import tombstone
from ephemeral.state.keys import LIVE_SHARDS, Keys
from ephemeral.state.scripts import Scripts

RECIPIENT_PAGE_MAX = 100


@dataclass(frozen=True)
class NewRecipient:
    id: str
    vf: str  # verifier of the token secret
    wk: str  # the DEK wrapped under a key derived from the token secret (base64url)
    lookup: str


@dataclass(frozen=True)
class NewMedia:
    id: str
    tenant: str
    sender: str
    state: str
    kind: str
    views: int
    expires_in: int
    replay_window: int
    caption: str
    capture: str
    client_ref: str
    recipient_auth: str
    orig: str
    orig_hdr: str
    orig_size: int
    kek: str
    epoch: int
    recipients: list[NewRecipient]
    upload: NewUpload | None = None  # two-step create: the bytes come later, to an upload URL


@dataclass(frozen=True)
class NewUpload:
    lookup: str
    vf: str  # verifier of the upload secret
    wk: str  # the DEK wrapped under a key derived from the upload secret (base64url)
    size: int  # the byte size announced at create
    ttl_ms: int


@dataclass(frozen=True)
class Created:
    created_ms: int
    expires_ms: int
    upload_expires_ms: int | None = None


@dataclass(frozen=True)
class MediaRecord:
    id: str
    media: dict[str, str]
    recipients: list[tuple[str, dict[str, str]]]
    next_cursor: str | None

    @property
    def owner(self) -> tuple[str, str]:
        return self.media.get("tenant", ""), self.media.get("sender", "")


def whole_number(text: str | None, digits: int = 15) -> int | None:
    """A cursor's number, or None: ASCII digits only (str.isdigit() also takes "²", which int()
    refuses) and bounded, so a crafted cursor is a first page, never a 500."""
    if text and len(text) <= digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def cursor_offset(cursor: str | None) -> int:
    """The list offset a recipients cursor encodes; 0 for none or anything malformed."""
    return whole_number(decode_cursor(cursor) if cursor else None, 9) or 0


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


class MediaRepo:
    def __init__(
        self, redis: Redis, scripts: Scripts, keys: Keys, lease_max: int, receipts_ttl: int
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.keys = keys
        self.lease_max = lease_max
        self.receipts_ttl = receipts_ttl

    async def reserve_object(self, media_id: str, object_key: str, ttl_seconds: float) -> None:
        """Record a blob before writing it, and put the media on the live-set, so a crash
        mid-upload still gets the blob deleted by the sweeper."""
        objects = self.keys.objects(media_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(objects, object_key)
            pipe.pexpire(objects, int(ttl_seconds * 1000) + 3_600_000, gt=False)
            await pipe.execute()
        await self.schedule(media_id, int((time.time() + ttl_seconds) * 1000), 0)

    async def record_object(self, media_id: str, object_key: str) -> None:
        await typed.sadd(self.redis, self.keys.objects(media_id), object_key)

    async def release_object(self, media_id: str, object_key: str) -> None:
        await typed.srem(self.redis, self.keys.objects(media_id), object_key)

    async def create(self, new: NewMedia, processing_ms: int, requeue_ms: int) -> Created:
        k = self.keys
        # Shallow on purpose: asdict() would deep-copy every recipient only to be replaced here.
        spec: dict[str, Any] = {f.name: getattr(new, f.name) for f in fields(new)}
        spec["recipients"] = [
            {"id": r.id, "vf": r.vf, "wk": r.wk, "lk": r.lookup} for r in new.recipients
        ]
        spec.pop("upload")
        if new.upload is not None:  # the lookup stays out of the record: only its index has it
            spec["upload"] = {
                "vf": new.upload.vf,
                "wk": new.upload.wk,
                "size": new.upload.size,
                "ttl_ms": new.upload.ttl_ms,
            }
        spec.update(
            lease_max=self.lease_max,
            receipts_ttl=self.receipts_ttl,
            processing_ms=processing_ms,
            requeue_ms=requeue_ms,
        )
        result = await self.scripts.run(
            "create",
            [k.media(new.id), k.recipients(new.id), k.timers(new.id), k.objects(new.id)],
            [k.recipient_prefix(new.id), json.dumps(spec)],
        )
        if result[0] != "ok":
            raise RuntimeError(f"media id collision: {result[0]}")
        created_ms, expires_ms = int(result[1]), int(result[2])
        await self.schedule(new.id, result[3], result[4])
        # Cross-slot indexes, in order: lookups, the owner's list, then each recipient's list
        # (what an erasure visits). Until they exist the tokens are unusable and the media
        # unlisted; all expire with the receipts.
        keep_ms = (
            expires_ms
            + (new.replay_window + self.lease_max + self.receipts_ttl) * 1000
            - int(time.time() * 1000)
        )
        index_args = [new.id, created_ms, keep_ms]
        async with self.redis.pipeline(transaction=False) as pipe:
            for r in new.recipients:
                pipe.set(k.lookup(r.lookup), f"{new.id} {r.id}", px=keep_ms)
            if new.upload is not None:
                pipe.set(k.upload_lookup(new.upload.lookup), new.id, px=keep_ms)
            owner = k.owner_media(new.tenant, new.sender)
            await self.scripts.queue(pipe, "index_keep", [owner], index_args)
            for r in new.recipients:
                received = k.recipient_media(new.tenant, r.id)
                await self.scripts.queue(pipe, "index_keep", [received], index_args)
            await pipe.execute()
        upload_ms = int(result[5]) if len(result) > 5 and result[5] else None
        return Created(created_ms, expires_ms, upload_ms)

    async def schedule(self, media_id: str, due: str | int, version: str | int) -> None:
        shard = self.keys.live_shard(media_id)
        await self.scripts.run(
            "live_set",
            [
                self.keys.live_due(shard),
                self.keys.live_versions(shard),
                self.keys.relay_pending(shard),
            ],
            [media_id, str(due), str(version)],
        )

    async def notify(self, media_id: str) -> None:
        """A change with no new deadline (peek, preview, screenshot): only the relay must look."""
        shard = self.keys.live_shard(media_id)
        # A counter: the relay drops the mark only if nothing marked it again meanwhile.
        await self.redis.zincrby(self.keys.relay_pending(shard), 1, media_id)

    async def retry_later(self, media_id: str, at_ms: int) -> None:
        """Unversioned: any newer computation of the deadline may replace it."""
        await self.redis.zadd(self.keys.live_due(self.keys.live_shard(media_id)), {media_id: at_ms})

    async def unschedule(self, media_id: str) -> None:
        shard = self.keys.live_shard(media_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.live_due(shard), media_id)
            pipe.hdel(self.keys.live_versions(shard), media_id)
            pipe.zrem(self.keys.relay_pending(shard), media_id)  # a record that never was
            await pipe.execute()

    async def due(self, now_ms: int, limit: int) -> list[str]:
        found: list[str] = []
        for shard in range(LIVE_SHARDS):
            found += await self.redis.zrangebyscore(
                self.keys.live_due(shard), "-inf", now_ms, start=0, num=limit
            )
        return found

    async def get(
        self,
        media_id: str,
        cursor: str | None = None,
        with_recipients: bool = True,
        limit: int = RECIPIENT_PAGE_MAX,
    ) -> MediaRecord | None:
        media = await typed.hgetall(self.redis, self.keys.media(media_id))
        if not media:
            return None
        recipients: list[tuple[str, dict[str, str]]] = []
        next_cursor = None
        if with_recipients:
            start = cursor_offset(cursor)
            page = max(1, min(limit, RECIPIENT_PAGE_MAX))
            ids = await typed.lrange(
                self.redis, self.keys.recipients(media_id), start, start + page
            )
            if len(ids) > page:
                ids = ids[:page]
                next_cursor = encode_cursor(str(start + page))
            async with self.redis.pipeline(transaction=False) as pipe:
                for rid in ids:
                    pipe.hgetall(self.keys.recipient(media_id, rid))
                rows = await pipe.execute()
            recipients = list(zip(ids, rows, strict=True))
        return MediaRecord(media_id, media, recipients, next_cursor)

    async def list_owned(
        self, tenant: str, sender: str, limit: int, cursor: str | None
    ) -> tuple[list[str], str | None]:
        owner = self.keys.owner_media(tenant, sender)
        maximum: str = "+inf"
        if cursor:
            decoded = decode_cursor(cursor)
            if decoded and whole_number(decoded.lstrip("(")) is not None:
                maximum = decoded
        ids: list[str] = await self.redis.zrevrangebyscore(
            owner, maximum, "-inf", start=0, num=limit + 1, withscores=False
        )
        next_cursor = None
        if len(ids) > limit:
            ids = ids[:limit]
            last_score = await self.redis.zscore(owner, ids[-1])
            next_cursor = encode_cursor(f"({int(last_score or 0)}")
        return ids, next_cursor

    # -- per-media state changes (one script each) -----------------------------------------

    async def mark_ready(self, media_id: str, output: dict[str, Any]) -> bool:
        k = self.keys
        result = await self.scripts.run(
            "mark_ready",
            [k.media(media_id), k.timers(media_id), k.outbox(media_id)],
            [json.dumps(output)],
        )
        if result[0] != "ok":
            return False
        await self.schedule(media_id, result[1], result[2])
        return True

    async def unsend(self, media_id: str) -> bool:
        k = self.keys
        result = await self.scripts.run(
            "unsend",
            k.whole(media_id),
            [k.recipient_prefix(media_id), k.lease_prefix(media_id)],
        )
        if result[0] != "ok":
            return False
        if result[2] != "" or result[3] != "":
            await self.schedule(media_id, result[2], result[3])
        await tombstone(self.redis, self.scripts, self.keys, media_id)
        return result[1] == "1"

    async def revoke(self, media_id: str, recipient: str) -> bool | None:
        k = self.keys
        result = await self.scripts.run(
            "revoke",
            [
                k.media(media_id),
                k.recipient(media_id, recipient),
                k.timers(media_id),
                k.outbox(media_id),
            ],
            [recipient, k.lease_prefix(media_id)],
        )
        if result[0] != "ok":
            return None
        await self.schedule(media_id, result[2], result[3])
        return result[1] == "1"
