"""Live status for senders: Server-Sent Events from the owner's event stream, and tickets."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp_sse import sse_response

from ephemeral.auth import Backend, Caller, Sender, unauthorized
from ephemeral.crypto.keys import b64
from ephemeral.errors import ServiceError, not_found
from ephemeral.handlers.common import json_response
from ephemeral.ownership import hides_times, may_act_on
from ephemeral.services import Services
from ephemeral.state.records import render_media, render_recipient
from ephemeral.web_keys import SHUTTING_DOWN, services

BATCH = 100


def _ticket_key(svc: Services, ticket: str) -> str:
    return svc.keys.event_ticket(hashlib.sha256(ticket.encode()).hexdigest())


T = TypeVar("T")


async def ticket(request: web.Request) -> web.Response:
    """EventSource cannot send headers: a single-use, short-lived ticket stands in for the JWT."""
    svc = services(request)
    sender = svc.auth.sender(request)
    value = b64(os.urandom(32))
    ttl = svc.settings.events.ticket_ttl
    owner = {"tenant": sender.tenant, "sender": sender.id, "exp": sender.expires_at}
    digest = hashlib.sha256(value.encode()).hexdigest()
    index = svc.keys.sender_tickets(sender.tenant, sender.id)  # so an erasure finds them
    # Two slots (Redis Cluster): ordered steps, not one transaction. The index first, so an
    # erasure always finds a ticket that exists.
    async with svc.redis.pipeline(transaction=False) as pipe:
        pipe.sadd(index, digest)
        pipe.expire(index, ttl)
        pipe.set(_ticket_key(svc, value), json.dumps(owner), ex=ttl)
        await pipe.execute()
    return json_response(
        {"ticket": value, "expires_in": ttl}, status=201, headers={"Cache-Control": "no-store"}
    )


async def _caller(request: web.Request, svc: Services) -> Caller:
    value = request.query.get("ticket")
    if value is None:
        return svc.auth.caller(request)  # a service key reads its tenant's stream
    raw = await svc.redis.getdel(_ticket_key(svc, value))  # single use
    if not raw:
        raise unauthorized("unknown, used or expired ticket")
    owner: dict[str, Any] = json.loads(raw)
    return Sender(owner["tenant"], owner["sender"], int(owner["exp"]))


def _slots_key(svc: Services, caller: Caller) -> str:
    if isinstance(caller, Backend):
        return svc.keys.sse_backend_streams(caller.tenant)
    return svc.keys.sse_streams(caller.tenant, caller.id)


async def _claim_slot(svc: Services, caller: Caller, slot: str) -> None:
    key = _slots_key(svc, caller)
    now = time.time()
    ttl = svc.settings.events.sse_heartbeat * 3
    async with svc.redis.pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zadd(key, {slot: now + ttl})
        pipe.zcard(key)
        pipe.expire(key, int(ttl) + 60)
        *_, count, _ = await pipe.execute()
    if count > svc.settings.events.sse_max_streams:
        await svc.redis.zrem(key, slot)
        raise ServiceError(
            429,
            "rate-limited",
            "too many event streams open for this sender",
            headers={"Retry-After": "5"},
        )


async def _snapshot(svc: Services, caller: Caller, media_id: str) -> dict[str, Any]:
    record = await svc.media.get(media_id)
    if record is None or not may_act_on(caller, record.owner):
        raise not_found("no such media")
    body = render_media(record.id, record.media)
    hide = hides_times(svc.auth.tenants, caller)
    body["recipients"] = [render_recipient(rid, r, hide) for rid, r in record.recipients]
    return body


async def stream(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    sender = await _caller(request, svc)
    media_id = request.query.get("media_id")
    if isinstance(sender, Backend):
        key = svc.keys.tenant_events(sender.tenant)
    else:
        key = svc.keys.sender_events(sender.tenant, sender.id)
    last = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if not last:
        newest = await svc.redis.xrevrange(key, count=1)
        last = newest[0][0] if newest else "0-0"
    # After the stream position: an event landing in between is then sent (again) rather than
    # lost between the snapshot and the stream.
    snapshot = await _snapshot(svc, sender, media_id) if media_id else None
    slot = b64(os.urandom(9))
    await _claim_slot(svc, sender, slot)
    settings = svc.settings.events
    stopping = request.app[SHUTTING_DOWN]
    try:
        # aiohttp-sse sends Cache-Control: no-cache itself; events carry no token or content.
        async with sse_response(request, ping_interval=settings.sse_heartbeat) as sse:
            if snapshot is not None:
                await sse.send(json.dumps(snapshot), event="snapshot")
            while sse.is_connected():
                left = sender.expires_at - time.time()
                if left <= 0:
                    break  # the credential has expired: the client reconnects with a fresh one
                block = int(min(left, settings.sse_heartbeat) * 1000) or 1
                batches = await _read_unless(
                    stopping, svc.redis.xread({key: last}, count=BATCH, block=block)
                )
                if batches is None:
                    break  # shutting down: end the stream cleanly; the client resumes elsewhere
                await svc.redis.zadd(
                    _slots_key(svc, sender), {slot: time.time() + settings.sse_heartbeat * 3}
                )
                for _, entries in batches:
                    for entry_id, fields in entries:
                        last = entry_id
                        event = json.loads(fields["e"])
                        if media_id and event["data"]["media_id"] != media_id:
                            continue
                        try:
                            await sse.send(fields["e"], id=entry_id, event=event["type"])
                        except ConnectionResetError:
                            return sse  # the watcher left while we wrote: an end, not a 500
            return sse
    finally:
        await svc.redis.zrem(_slots_key(svc, sender), slot)


async def end_streams(app: web.Application) -> None:
    """On shutdown: end the event streams now rather than after their next heartbeat (20 s);
    clients reconnect elsewhere with Last-Event-ID and lose nothing."""
    app[SHUTTING_DOWN].set()


async def _read_unless(stopping: asyncio.Event, read: Awaitable[T]) -> T | None:
    """`read`'s result, or None as soon as `stopping` is set (the read is then cancelled)."""
    reading, waiting = asyncio.ensure_future(read), asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({reading, waiting}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        reading.cancel()
        raise
    finally:
        waiting.cancel()
    if reading.done():
        return reading.result()
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reading  # redis-py drops the connection of a cancelled command
    return None
