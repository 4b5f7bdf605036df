"""Erasure of a person (`DELETE /v1/subjects/{id}`): what they sent and what they received.

Media they sent are unsent, purged (blobs confirmed gone) and then every key of them deleted,
receipts included. In media they received, their entry is removed (the member disappears from
the list and the counts). Events naming them are withdrawn from the outboxes, the owner event
streams and the webhook retries; their own stream, SSE slots and tickets are deleted.

Every step is idempotent and the two indexes that drive the work (the person's sent list and
received list) are deleted last, so an erasure cut short by a crash or a storage outage is
finished by repeating the request: the backend retries until it gets 204.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from ephemeral.errors import unavailable
from ephemeral.services import Services
from ephemeral.state import typed

LOCK_MS = 10_000  # the relay's lock lifetime (workers/relay.py)
BATCH = 1000
PARALLEL = 16  # media erased at once


def _names(event: str, subject: str) -> bool:
    # As json.dumps wrote it into the entry (non-ASCII and quotes escaped), so the cheap test
    # does not skip an entry that names someone like "auth0|josé".
    if json.dumps(subject)[1:-1] not in event:
        return False  # most entries: no JSON parse needed
    try:
        data: dict[str, Any] = json.loads(event).get("data") or {}
    except (ValueError, AttributeError):
        return False
    return subject in (data.get("sender"), data.get("recipient"))


class Erasure:
    def __init__(self, svc: Services, tenant: str, subject: str) -> None:
        self.svc, self.tenant, self.subject = svc, tenant, subject
        self.redis, self.keys = svc.redis, svc.keys
        self.senders: set[str] = set()  # whose event streams may name the subject

    async def run(self) -> None:
        sent = self.keys.owner_media(self.tenant, self.subject)
        received = self.keys.recipient_media(self.tenant, self.subject)
        sent_ids = await self.redis.zrange(sent, 0, -1)
        received_ids = await self.redis.zrange(received, 0, -1)
        await self.each(sent_ids, self.erase_sent)
        await self.each(received_ids, self.erase_received)
        await self.scrub_streams()
        await self.scrub_retries()
        await self.scrub_dead_letters(set(sent_ids))
        await self.drop_leftovers()
        # Last, so a repeat finds the work again; and only what was done: a media created for
        # the person while this ran stays indexed for the next erasure to find.
        for index, done in ((sent, sent_ids), (received, received_ids)):
            if done:
                await self.redis.zrem(index, *done)

    async def each(self, media_ids: list[str], step: Callable[[str], Awaitable[None]]) -> None:
        """Media are independent: a few at a time, so a person with thousands of media is
        erased in a fraction of the round trips' sum. The first failure is raised after the
        others finished (a repeat does the rest)."""
        gate = asyncio.Semaphore(PARALLEL)

        async def one(media_id: str) -> None:
            async with gate:
                await step(media_id)

        results = await asyncio.gather(*map(one, media_ids), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    @asynccontextmanager
    async def relay_held(self, media_id: str) -> AsyncIterator[None]:
        """Hold the relay off the media, so no copy of an entry we remove is in flight."""
        key = self.keys.relay_lock(media_id)
        deadline = time.monotonic() + LOCK_MS / 1000 + 1
        while not await self.redis.set(key, "erasure", nx=True, px=LOCK_MS):
            if time.monotonic() > deadline:
                raise unavailable("the event relay holds a lock; repeat the erasure")
            await asyncio.sleep(0.02)
        try:
            yield
        finally:
            await self.redis.delete(key)

    async def drop_lookups(self, media_id: str, recipients: Iterable[str]) -> None:
        """Lookup keys live outside the media's slot: deleted before the entries naming them."""
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for rid in recipients:
                pipe.hget(k.recipient(media_id, rid), "lk")
            lookups = [lk for lk in await pipe.execute() if lk]
        if lookups:
            await self.delete_each([k.lookup(lk) for lk in lookups])

    async def erase_sent(self, media_id: str) -> None:
        svc, k = self.svc, self.keys
        record = await svc.media.get(media_id, with_recipients=False)
        if record is not None and record.owner != (self.tenant, self.subject):
            return  # not theirs (cannot happen through the index; never touch it)
        if record is not None:
            await svc.media.unsend(media_id)
            if not await svc.lifecycle.purge(media_id):
                raise unavailable("storage did not confirm a delete; repeat the erasure")
        else:
            await svc.lifecycle.evaluate(media_id)  # an orphaned blob from a crashed upload
        await self.drop_idempotency_record(media_id)
        recipients = await typed.lrange(self.redis, k.recipients(media_id), 0, -1)
        await self.drop_lookups(media_id, recipients)
        async with self.redis.pipeline(transaction=False) as pipe:
            for rid in recipients:  # their received lists must not point at it any more
                pipe.zrem(k.recipient_media(self.tenant, rid), media_id)
            await pipe.execute()
        async with self.relay_held(media_id):
            result = await svc.scripts.run(
                "erase_media",
                k.whole(media_id),
                [k.recipient_prefix(media_id), k.lease_prefix(media_id)],
            )
        if result[0] != "ok":
            raise unavailable("a blob of the media is not deleted yet; repeat the erasure")
        # A two-step upload's part list and lock (object names only; one slot, one command).
        await self.redis.delete(k.upload_parts(media_id), k.upload_lock(media_id))
        await svc.media.unschedule(media_id)

    async def drop_idempotency_record(self, media_id: str) -> None:
        """The Idempotency-Key record that created the media (a tombstone by now): an ordered
        step before the media hash that links to it goes. A retry after that creates anew."""
        record = await typed.hget(self.redis, self.keys.media(media_id), "idem")
        if record and await typed.hget(self.redis, record, "media") == media_id:
            await self.redis.delete(record)

    async def erase_received(self, media_id: str) -> None:
        svc, k = self.svc, self.keys
        tenant, sender = await typed.hmget(self.redis, k.media(media_id), ["tenant", "sender"])
        if tenant is not None and tenant != self.tenant:
            return
        if sender:
            self.senders.add(sender)
        await self.drop_lookups(media_id, [self.subject])
        keys = [
            k.media(media_id),
            k.recipients(media_id),
            k.timers(media_id),
            k.outbox(media_id),
            k.recipient(media_id, self.subject),
        ]
        async with self.relay_held(media_id):
            result = await svc.scripts.run(
                "erase_recipient", keys, [self.subject, k.lease_prefix(media_id)]
            )
        if result[0] == "ok" and result[3] != "":
            await svc.media.schedule(media_id, result[2], result[3])
            if result[1] == "1":  # they were the last member who could still view it
                await svc.lifecycle.evaluate(media_id)

    async def scrub_stream(self, stream: str) -> None:
        start = "-"
        while True:
            entries = await self.redis.xrange(stream, start, "+", count=BATCH)
            if not entries:
                return
            doomed = [eid for eid, fields in entries if _names(fields.get("e", ""), self.subject)]
            if doomed:
                await self.redis.xdel(stream, *doomed)
            start = f"({entries[-1][0]}"

    async def scrub_streams(self) -> None:
        """The tenant stream (SSE for backends, webhooks) and the streams of the senders whose
        media they received; their own stream goes whole."""
        k = self.keys
        await self.scrub_stream(k.tenant_events(self.tenant))
        for sender in sorted(self.senders - {self.subject}):
            await self.scrub_stream(k.sender_events(self.tenant, sender))
        await self.redis.delete(k.sender_events(self.tenant, self.subject))

    async def scrub_retries(self) -> None:
        key = self.keys.webhook_retries(self.tenant)
        doomed: list[str] = []
        async for member, _ in self.redis.zscan_iter(key, count=BATCH):
            try:
                event = json.loads(member).get("event", "")
            except (ValueError, AttributeError):
                continue
            if _names(event, self.subject):
                doomed.append(member)
        if doomed:
            await self.redis.zrem(key, *doomed)

    async def scrub_dead_letters(self, media_ids: set[str]) -> None:
        """Dead letters name no person, but they name the media: those of theirs go too."""
        if not media_ids:
            return
        key = self.keys.webhook_dead(self.tenant)
        async with self.redis.pipeline(transaction=False) as pipe:
            for row in await typed.lrange(self.redis, key, 0, -1):
                try:
                    media_id = json.loads(row).get("media_id")
                except (ValueError, AttributeError):
                    continue
                if media_id in media_ids:
                    pipe.lrem(key, 0, row)
            await pipe.execute()

    async def drop_leftovers(self) -> None:
        k, who = self.keys, (self.tenant, self.subject)
        tickets = k.sender_tickets(*who)
        digests = await typed.smembers(self.redis, tickets)
        await self.svc.abuse.forget(*who)  # rate windows; quota levels are deleted below
        await self.delete_each(
            [
                *(k.event_ticket(d) for d in digests),
                tickets,
                k.sse_streams(*who),
                k.sender_inflight(*who),
                k.sender_stored(*who),
                k.sender_sizes(*who),
            ]
        )

    async def delete_each(self, keys: list[str]) -> None:
        """One DEL per key: these keys live in different Redis Cluster slots."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in keys:
                pipe.delete(name)
            await pipe.execute()


async def erase_subject(svc: Services, tenant: str, subject: str) -> None:
    await Erasure(svc, tenant, subject).run()
