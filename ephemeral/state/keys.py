"""Every Redis key the service uses, in one place, under one prefix.

Keys of one media share the hash tag {m:<id>} so each per-media script runs in one slot of a
Redis Cluster; view ids embed the media id so lease calls find that slot too.
"""

from __future__ import annotations

import zlib

LIVE_SHARDS = 16


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def tag(self, media_id: str) -> str:
        return f"{self.prefix}:{{m:{media_id}}}"

    def media(self, media_id: str) -> str:
        return f"{self.tag(media_id)}:media"

    def recipients(self, media_id: str) -> str:
        return f"{self.tag(media_id)}:rcpts"

    def timers(self, media_id: str) -> str:
        return f"{self.tag(media_id)}:timers"

    def outbox(self, media_id: str) -> str:
        return f"{self.tag(media_id)}:outbox"

    def objects(self, media_id: str) -> str:
        """Every blob ever written for the media; recorded before the write, so purge finds it."""
        return f"{self.tag(media_id)}:objects"

    def whole(self, media_id: str) -> list[str]:
        """The KEYS of every script that works on the media as a whole, in this order."""
        return [
            self.media(media_id),
            self.recipients(media_id),
            self.timers(media_id),
            self.outbox(media_id),
            self.objects(media_id),
        ]

    def recipient_prefix(self, media_id: str) -> str:
        return f"{self.tag(media_id)}:r:"

    def recipient(self, media_id: str, recipient: str) -> str:
        return self.recipient_prefix(media_id) + recipient

    def lease_prefix(self, media_id: str) -> str:
        return f"{self.tag(media_id)}:l:"

    def lease(self, media_id: str, view_id: str) -> str:
        return self.lease_prefix(media_id) + view_id

    def streams(self, media_id: str, view_id: str) -> str:
        return self.lease(media_id, view_id) + ":streams"

    # -- cross-media indexes: written as ordered, idempotent steps, never inside a script ----

    def lookup(self, lookup: str) -> str:
        return f"{self.prefix}:lookup:{lookup}"

    def owner_media(self, tenant: str, sender: str) -> str:
        return f"{self.prefix}:owner:{tenant}:{sender}:media"

    def live_shard(self, media_id: str) -> int:
        return zlib.crc32(media_id.encode()) % LIVE_SHARDS

    def live_due(self, shard: int) -> str:
        return f"{self.prefix}:{{live:{shard}}}:due"

    def live_versions(self, shard: int) -> str:
        return f"{self.prefix}:{{live:{shard}}}:ver"

    def relay_pending(self, shard: int) -> str:
        """Media whose outbox may hold events not yet relayed to the owner streams."""
        return f"{self.prefix}:{{live:{shard}}}:relay"

    def relay_lock(self, media_id: str) -> str:
        return f"{self.tag(media_id)}:relaying"

    def sender_events(self, tenant: str, sender: str) -> str:
        return f"{self.prefix}:events:{tenant}:s:{sender}"

    def tenant_events(self, tenant: str) -> str:
        return f"{self.prefix}:events:{tenant}:all"

    def idempotency(self, digest: str) -> str:
        """An Idempotency-Key's record, named by HMAC(pepper, tenant, sender, key): the raw key
        never appears in Redis."""
        return f"{self.prefix}:idem:{digest}"

    def event_ticket(self, digest: str) -> str:
        return f"{self.prefix}:ticket:{digest}"

    def sse_streams(self, tenant: str, sender: str) -> str:
        return f"{self.prefix}:sse:{tenant}:{sender}"

    def webhook_retries(self) -> str:
        return f"{self.prefix}:webhooks:retry"

    def webhook_dead(self) -> str:
        return f"{self.prefix}:webhooks:dead"

    def queue(self) -> str:
        return f"{self.prefix}:queue"

    # -- abuse controls (ephemeral/abuse): counters and quotas, each with a TTL ---------------

    def ratelimit_prefix(self) -> str:
        """The `limits` library's key prefix: its counters live under it."""
        return f"{self.prefix}:rl"

    def sender_tag(self, tenant: str, sender: str) -> str:
        """One hash tag per sender, so the quota script's keys share a cluster slot."""
        return f"{self.prefix}:{{s:{tenant}:{sender}}}"

    def sender_inflight(self, tenant: str, sender: str) -> str:
        """Media of the sender still processing: member media id, score admission ms."""
        return f"{self.sender_tag(tenant, sender)}:inflight"

    def sender_stored(self, tenant: str, sender: str) -> str:
        """Media of the sender whose bytes are stored: member media id, score purge deadline."""
        return f"{self.sender_tag(tenant, sender)}:stored"

    def sender_sizes(self, tenant: str, sender: str) -> str:
        """Bytes per stored media, and the running total in the field `_total`."""
        return f"{self.sender_tag(tenant, sender)}:sizes"

    def fanout(self, tenant: str, digest: str) -> str:
        """Distinct recipients of one content (an HMAC of its bytes): member id, score ms."""
        return f"{self.prefix}:fanout:{tenant}:{digest}"
