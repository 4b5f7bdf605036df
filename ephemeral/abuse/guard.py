"""The abuse controls as the handlers see them: a few awaitable checks, each raising a 429.

Counters over time windows use the `limits` library on our Redis (redis-py's asyncio client,
under our key prefix): a moving window where the count must be exact (uploads per minute,
redeem misses), a sliding-window counter where two keys beat a list of thousands (recipients
per day, viewer requests). Levels that rise and fall (jobs in flight, bytes stored) and the
distinct-recipient count of one content are not windows of hits, so they are small Lua
scripts of our own (quota.py, content.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from redis.asyncio import Redis

from ephemeral.abuse.address import client_address, parse_trusted
from ephemeral.abuse.content import Fingerprint, recipient_tag
from ephemeral.abuse.memory import MemoryAlarm
from ephemeral.abuse.policy import Policies, Policy, Usage, rate_limited, seconds
from ephemeral.abuse.quota import Caps, Quota, Verdict
from ephemeral.abuse.scripts import AbuseScripts
from ephemeral.auth import Sender
from ephemeral.config import Settings
from ephemeral.errors import ServiceError
from ephemeral.meta import Meta
from ephemeral.state.keys import Keys

USAGES = web.RequestKey("ratelimit_usages", list)  # what create's response reports
SHED_RETRY = 30  # seconds: memory pressure passes as purges and the sweeper free keys
INFLIGHT_RETRY = 5  # seconds: about one photo job
STORED_RETRY = 60  # seconds: bytes come back whenever recipients open or links expire


@dataclass(frozen=True)
class Limit:
    """One policy on one `limits` strategy."""

    policy: Policy
    item: RateLimitItem
    limiter: RateLimiter

    async def usage(self, *ids: str) -> Usage:
        stats = await self.limiter.get_window_stats(self.item, *ids)
        return Usage(self.policy, stats.remaining, seconds(stats.reset_time - time.time()))

    async def hit(self, *ids: str, detail: str, cost: int = 1) -> None:
        if not await self.limiter.hit(self.item, *ids, cost=cost):
            raise rate_limited(await self.usage(*ids), detail)

    async def check(self, *ids: str, detail: str) -> None:
        """Refuse once the window is full, without counting this request."""
        if not await self.limiter.test(self.item, *ids):
            raise rate_limited(await self.usage(*ids), detail)


class Abuse:
    def __init__(self, redis: Redis, keys: Keys, settings: Settings, pepper: bytes) -> None:
        r = settings.ratelimit
        self.settings = settings
        self.keys = keys
        self.pepper = pepper
        self.policies = Policies.of(r)
        self.trusted = parse_trusted(r.trusted_proxies)
        self.memory = MemoryAlarm(redis, r)
        self.scripts = AbuseScripts(redis)
        caps = Caps(r.inflight_jobs, settings.worker.processing_deadline_ms, r.stored_bytes)
        self.quota = Quota(redis, self.scripts, keys, caps)
        # One connection pool for the whole service: `limits` borrows ours.
        options: dict[str, Any] = {"connection_pool": redis.connection_pool}
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=keys.ratelimit_prefix(),
            **options,
        )
        moving, sliding = MovingWindowRateLimiter(storage), SlidingWindowCounterRateLimiter(storage)
        p = self.policies
        self.uploads = _limit(p.uploads, RateLimitItemPerMinute, moving)
        self.recipients = _limit(p.recipients, RateLimitItemPerDay, sliding)
        self.misses = _limit(p.redeem_misses, RateLimitItemPerMinute, moving)
        self.viewer = _limit(p.viewer, RateLimitItemPerMinute, sliding)

    # -- senders ---------------------------------------------------------------------------

    async def before_body(self, sender: Sender) -> None:
        """Expect: 100-continue: refuse a sender already at a limit before the body is sent.
        Counts nothing; the create itself checks (and charges) again."""
        if await self.memory.raised():
            raise _shed()
        self._refuse(await self.quota.check(sender.tenant, sender.id))
        if self.uploads:
            detail = f"at most {self.uploads.policy.quota} uploads a minute"
            await self.uploads.check(sender.tenant, sender.id, detail=detail)

    async def before_upload(
        self, request: web.Request, sender: Sender, recipients: Sequence[str]
    ) -> None:
        """Before any file byte is read: shed under memory pressure, then the sender's quotas."""
        if await self.memory.raised():
            raise _shed()
        self._refuse(await self.quota.check(sender.tenant, sender.id))
        ids = (sender.tenant, sender.id)
        if self.uploads:  # one after the other: a refused upload charges no recipients
            await self.uploads.hit(
                *ids, detail=f"at most {self.uploads.policy.quota} uploads a minute"
            )
        if self.recipients:
            detail = f"at most {self.recipients.policy.quota} recipients a day"
            await self.recipients.hit(*ids, detail=detail, cost=len(recipients))
        # What is left, for the response's RateLimit field: reads, side by side.
        charged = [limit for limit in (self.uploads, self.recipients) if limit]
        request[USAGES] = list(await asyncio.gather(*(limit.usage(*ids) for limit in charged)))

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(self.pepper)

    async def admit(
        self, sender: Sender, media_id: str, meta: Meta, content: Fingerprint, size: int
    ) -> None:
        """After the bytes are sealed and before the record: in-flight, stored and fan-out.

        A refusal raises, and create discards the upload: nothing is left behind."""
        purge_in = meta.expires_in + meta.replay_window + self.settings.lease_max_bound
        verdict = await self.quota.admit(sender.tenant, sender.id, media_id, size, purge_in * 1000)
        self._refuse(verdict)
        try:
            await self._fanout(sender.tenant, content.hexdigest(), meta.recipients)
        except ServiceError:  # anything else is left to the prune (no record: released)
            await self.quota.release(sender.tenant, sender.id, media_id)
            raise

    async def _fanout(self, tenant: str, digest: str, recipients: Sequence[str]) -> None:
        policy = self.policies.fanout
        if policy.quota <= 0:
            return
        tags = [recipient_tag(self.pepper, rid) for rid in recipients]
        window_ms = (policy.window or 0) * 1000
        outcome, count, wait_ms = await self.scripts.run(
            "fanout", [self.keys.fanout(tenant, digest)], [window_ms, policy.quota, *tags]
        )
        if outcome != "ok":
            usage = Usage(policy, max(0, policy.quota - int(count)), seconds(int(wait_ms) / 1000))
            detail = (
                f"the same content may reach at most {policy.quota} distinct recipients "
                f"in {policy.window} seconds"
            )
            raise rate_limited(usage, detail)

    def _refuse(self, verdict: Verdict) -> None:
        p = self.policies
        if verdict.outcome == "inflight":
            usage = Usage(p.inflight, 0, INFLIGHT_RETRY)
            raise rate_limited(usage, f"at most {p.inflight.quota} uploads processing at once")
        if verdict.outcome == "stored":
            usage = Usage(p.stored, max(0, p.stored.quota - verdict.level), STORED_RETRY)
            raise rate_limited(usage, f"at most {p.stored.quota} bytes waiting to be viewed")

    # -- client addresses ------------------------------------------------------------------

    def address(self, request: web.BaseRequest) -> str:
        return client_address(request, self.trusted)

    async def before_lookup(self, address: str) -> None:
        """Peek and redeem: an address that missed too often waits, whatever its token."""
        if self.misses:
            detail = f"more than {self.misses.policy.quota} unknown links a minute from here"
            await self.misses.check(address, detail=detail)

    async def missed(self, address: str) -> None:
        """A 404 from peek or redeem; counted per address, never per lookup (no lock-outs)."""
        if self.misses:
            await self.misses.limiter.hit(self.misses.item, address)

    async def viewer_request(self, address: str) -> None:
        if self.viewer:
            detail = f"at most {self.viewer.policy.quota} viewer requests a minute"
            await self.viewer.hit(address, detail=detail)


def _shed() -> ServiceError:
    return ServiceError(
        503,
        "unavailable",
        "uploads are paused while the service is short of memory; views still work",
        headers={"Retry-After": str(SHED_RETRY)},
    )


def _limit(policy: Policy, per: type[RateLimitItem], limiter: RateLimiter) -> Limit | None:
    if policy.quota <= 0:
        return None
    return Limit(policy, per(policy.quota, namespace=policy.name), limiter)
