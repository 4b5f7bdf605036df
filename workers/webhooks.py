"""The webhook dispatcher: the tenant stream, via a consumer group, to every endpoint, with retries.

At least once. A stream entry is acknowledged only after each endpoint took it or has its retry
scheduled in Redis; an entry whose dispatcher died is claimed by another after `claim_idle_ms`.
A retry is claimed by pushing its score past that same lease, so a dead dispatcher's claim lapses
and two live ones never send the same retry at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable
from typing import Any, cast

from redis.exceptions import ResponseError

from ephemeral.services import Services
from ephemeral.tenancy import Tenant
from workers.pace import pause
from workers.webhook_delivery import (
    Endpoint,
    Job,
    Outcome,
    Sender,
    claim_idle_ms,
    compact,
    dead_record,
    endpoints,
    event_fields,
    retry_delay,
    schedule_span,
    webhook_id,
)

log = logging.getLogger("workers.webhooks")
GROUP = "webhooks"
BATCH = 32  # stream entries (or due retries) handled at once, each to every endpoint
DEAD_MAX = 10_000  # dead-letter records kept, newest first
MAX_SCHEDULED = 100_000  # beyond this, a failure goes straight to the dead letters
CONSUMER_IDLE_MS = 3_600_000  # a consumer this idle with nothing pending is gone
PRUNE_SECONDS = 600.0

# Claim due retries by moving their score to the end of a lease (KEYS[1] the retry zset;
# ARGV now, lease end, count): whoever finishes a job must still hold that score.
CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
end
return due
"""
# Finish a claimed job (ARGV member, claimed score, next member or '', its score, key TTL ms):
# only if the claim still holds, so a lapsed claim cannot schedule a second copy.
FINISH = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
"""

Entries = list[tuple[str, dict[str, str] | None]]


def _now_ms() -> int:
    return int(time.time() * 1000)


class Dispatcher:
    def __init__(
        self, svc: Services, sender: Sender, targets: list[Endpoint], tenant: Tenant
    ) -> None:
        self.redis, self.keys, self.settings = svc.redis, svc.keys, tenant.webhooks
        self.tenant = tenant.id
        self.stream = svc.keys.tenant_events(self.tenant)
        self.retries_key = svc.keys.webhook_retries(self.tenant)
        self.dead_key = svc.keys.webhook_dead(self.tenant)
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.sender, self.targets = sender, targets
        self.by_key = {t.key: t for t in targets}
        self.claim_ms = claim_idle_ms(self.settings)
        self.retries_ttl_ms = int((schedule_span(self.settings) + 86_400) * 1000)
        self.dead_ttl_ms = svc.settings.receipts_ttl * 1000
        self._claim = svc.redis.register_script(CLAIM)
        self._finish = svc.redis.register_script(FINISH)

    # -- the stream ---------------------------------------------------------------------------

    async def ensure_group(self) -> None:
        try:
            # From the start of what the stream retains: enabling webhooks delivers the backlog.
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, block_ms: int) -> Entries:
        reply = await self.redis.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=BATCH, block=block_ms
        )
        streams = cast(list[tuple[str, Entries]] | None, reply) or []
        return [entry for _, entries in streams for entry in entries]

    async def reclaim(self) -> int:
        """Take over entries a dead dispatcher read but never acknowledged."""
        cursor, taken = "0-0", 0
        while True:
            reply = await self.redis.xautoclaim(
                self.stream, GROUP, self.consumer, self.claim_ms, cursor, count=BATCH
            )
            cursor, entries = cast(tuple[str, Entries], (reply[0], reply[1]))
            taken += len(entries)
            await self.handle_batch(entries)
            if cursor == "0-0":
                return taken

    async def handle_batch(self, entries: Entries) -> None:
        live = [(eid, fields) for eid, fields in entries if eid is not None and fields is not None]
        results = await asyncio.gather(
            *(self.handle(e, f) for e, f in live), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):  # left pending: reclaimed once its lease lapses
                log.warning("webhook entry not finished: %s", type(result).__name__)

    async def handle(self, entry_id: str, fields: dict[str, str]) -> None:
        event = fields.get("e", "")
        try:
            body = compact(event)
        except ValueError:
            log.error("webhook entry %s is not JSON; dropped", entry_id)
            await self.redis.xack(self.stream, GROUP, entry_id)
            return
        info = event_fields(event)

        async def first_try(target: Endpoint) -> None:
            wid = webhook_id(self.tenant, info["media_id"], info["seq"], target)
            outcome = await self.sender.send(target, wid, body)
            self.report(target, info, 1, outcome)
            if not outcome.ok:
                await self.schedule(Job(wid, target.key, 2, event), target, outcome)

        results = await asyncio.gather(*map(first_try, self.targets), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        await self.redis.xack(self.stream, GROUP, entry_id)

    async def schedule(self, job: Job, target: Endpoint, outcome: Outcome) -> None:
        """Record try 1's failure durably: the retry job, or a dead letter when none is left."""
        key = self.retries_key
        if job.attempt > self.settings.max_tries:
            await self.dead_letter(job, target.url, job.attempt - 1, outcome.detail)
            return
        if await cast(Awaitable[int], self.redis.zcard(key)) >= MAX_SCHEDULED:
            await self.dead_letter(job, target.url, job.attempt - 1, "retry queue full")
            return
        due = _now_ms() + int(retry_delay(self.settings, job.attempt - 1) * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {job.member(): due}, nx=True)  # a reclaimed entry adds no second job
            pipe.pexpire(key, self.retries_ttl_ms)
            await pipe.execute()

    # -- the retries --------------------------------------------------------------------------

    async def retry_due(self) -> int:
        now = _now_ms()
        lease = now + self.claim_ms
        key = self.retries_key
        members = cast(list[str], await self._claim(keys=[key], args=[now, lease, BATCH]))
        results = await asyncio.gather(
            *(self.retry(m, lease) for m in members), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Exception):  # the claim lapses and the job comes back
                log.warning("webhook retry not finished: %s", type(result).__name__)
        return len(members)

    async def retry(self, member: str, lease: int) -> None:
        job = Job.parse(member)
        if job is None:
            log.error("unreadable webhook retry job dropped")
            await self.finish(member, lease, None)
            return
        target = self.by_key.get(job.endpoint)
        if target is None:  # the endpoint left the config while the job waited
            await self.dead_letter(job, "", job.attempt - 1, "endpoint no longer configured")
            await self.finish(member, lease, None)
            return
        outcome = await self.sender.send(target, job.wid, compact(job.event))
        self.report(target, event_fields(job.event), job.attempt, outcome)
        if outcome.ok:
            await self.finish(member, lease, None)
        elif job.attempt >= self.settings.max_tries:
            # Dead letter first: a crash in between repeats the record rather than losing it.
            await self.dead_letter(job, target.url, job.attempt, outcome.detail)
            await self.finish(member, lease, None)
        else:
            due = _now_ms() + int(retry_delay(self.settings, job.attempt) * 1000)
            after = Job(job.wid, job.endpoint, job.attempt + 1, job.event)
            await self.finish(member, lease, (after.member(), due))

    async def finish(self, member: str, lease: int, after: tuple[str, int] | None) -> None:
        then, due = after or ("", 0)
        key = self.retries_key
        await self._finish(keys=[key], args=[member, lease, then, due, self.retries_ttl_ms])

    async def dead_letter(self, job: Job, url: str, attempts: int, last: str) -> None:
        key = self.dead_key
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, dead_record(job, url, attempts, last))
            pipe.ltrim(key, 0, DEAD_MAX - 1)
            pipe.pexpire(key, self.dead_ttl_ms)
            await pipe.execute()
        host = self.by_key[job.endpoint].host if job.endpoint in self.by_key else "?"
        etype = event_fields(job.event)["type"]
        log.error("webhook to %s gave up: %s after %d tries (%s)", host, etype, attempts, last)

    def report(self, target: Endpoint, info: dict[str, Any], attempt: int, out: Outcome) -> None:
        level = logging.DEBUG if out.ok else logging.WARNING
        log.log(
            level, "webhook %s to %s try %d: %s", info["type"], target.host, attempt, out.detail
        )

    # -- housekeeping -------------------------------------------------------------------------

    async def prune_consumers(self) -> None:
        """Consumer names are per process; forget the long-gone ones that hold nothing."""
        reply = await self.redis.xinfo_consumers(self.stream, GROUP)
        for consumer in cast(list[dict[str, Any]], reply):
            name = str(consumer.get("name"))
            idle = int(consumer.get("idle", 0))
            if name != self.consumer and not int(consumer.get("pending", 0)):
                if idle > CONSUMER_IDLE_MS:
                    await self.redis.xgroup_delconsumer(self.stream, GROUP, name)

    async def pump(self, stop: asyncio.Event) -> None:
        ready, last_claim, last_prune = False, -1e9, -1e9
        claim_every = max(0.5, self.claim_ms / 4000)
        while not stop.is_set():
            try:
                if not ready:
                    await self.ensure_group()
                    ready = True
                if time.monotonic() - last_claim >= claim_every:
                    await self.reclaim()
                    last_claim = time.monotonic()
                if time.monotonic() - last_prune >= PRUNE_SECONDS:
                    await self.prune_consumers()
                    last_prune = time.monotonic()
                await self.handle_batch(await self.read(1000))  # stop is seen within 1 s
            except Exception as exc:
                ready = ready and "NOGROUP" not in str(exc)  # the stream was deleted: re-create
                log.warning("webhook pass failed: %s", type(exc).__name__)
                await pause(stop, 1.0)

    async def retry_loop(self, stop: asyncio.Event) -> None:
        interval = min(1.0, max(0.05, self.settings.first_retry / 4))
        while not stop.is_set():
            try:
                if await self.retry_due() == BATCH:
                    continue  # more are due: no pause
            except Exception as exc:
                log.warning("webhook retry pass failed: %s", type(exc).__name__)
            await pause(stop, interval)


async def run_webhooks(svc: Services, stop: asyncio.Event) -> None:
    """Deliver every tenant's stream to that tenant's endpoints until `stop`: one dispatcher
    per tenant, each with its own secrets, consumer group and retry schedule."""
    runs = [_run_tenant(svc, tenant, stop) for tenant in svc.auth.tenants.all]
    await asyncio.gather(*runs)


async def _run_tenant(svc: Services, tenant: Tenant, stop: asyncio.Event) -> None:
    targets = endpoints(tenant.webhooks)  # raises on a non-https URL, whatever the config
    if not targets:
        return
    async with Sender(tenant.webhooks, connections=4 * BATCH) as sender:
        dispatcher = Dispatcher(svc, sender, targets, tenant)
        log.info(
            "webhooks of tenant %s: %d endpoint(s), consumer %s",
            tenant.id,
            len(targets),
            dispatcher.consumer,
        )
        await asyncio.gather(dispatcher.pump(stop), dispatcher.retry_loop(stop))
