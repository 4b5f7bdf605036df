"""GET /v1/views/{view_id}/content: decrypt on the fly, single ranges, cut when the lease ends."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

from aiohttp import web

from ephemeral import metrics
from ephemeral.crypto import keys as kc
from ephemeral.errors import ServiceError, not_found
from ephemeral.handlers.lease import read_lease
from ephemeral.middleware import RECIPIENT_HEADERS
from ephemeral.services import Services
from ephemeral.state.views import LeaseGrant, view_media_id
from ephemeral.web_keys import services

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One byte range as [start, end); None serves the whole object. Multi-range is ignored."""
    if not header:
        return None
    match = RANGE_RE.match(header.strip())
    if not match:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = int(last)
        if length == 0:
            raise_unsatisfiable(size)
        return max(0, size - length), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size or (last != "" and int(last) < start):
        raise_unsatisfiable(size)
    return start, end


def raise_unsatisfiable(size: int) -> None:
    raise ServiceError(
        416,
        "range-not-satisfiable",
        "the range is outside the content",
        headers={"Content-Range": f"bytes */{size}"},
    )


def _refusal(grant: LeaseGrant) -> ServiceError:
    if grant.outcome == "busy":
        return ServiceError(
            429,
            "rate-limited",
            "too many concurrent streams on this lease",
            headers={"Retry-After": "1"},
        )
    if grant.outcome == "not-found":
        return not_found("unknown view")
    return ServiceError(410, "lease-ended", "the lease has ended")


async def content(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    view_id = request.match_info["view_id"]
    media_id = view_media_id(view_id)
    lease = read_lease(request, view_id)
    if media_id is None or lease is None:
        raise not_found("unknown view")
    verifier = kc.lease_verifier(lease, view_id)
    stream = Stream(kc.random_id(9))
    grant = await svc.views.open_stream(media_id, view_id, verifier, stream.id)
    if grant.outcome != "ok":
        raise _refusal(grant)
    try:
        return await _serve(request, svc, media_id, view_id, lease, verifier, stream, grant)
    finally:
        metrics.observe_content(grant.mime, stream.sent)
        delta = stream.unreported()
        await asyncio.shield(svc.views.touch(media_id, view_id, verifier, stream.id, delta, True))


class Stream:
    """One content response on a lease; bytes sent are charged to the lease's byte budget."""

    def __init__(self, stream_id: str) -> None:
        self.id = stream_id
        self.sent = 0
        self.reported = 0

    def unreported(self) -> int:
        delta, self.reported = self.sent - self.reported, self.sent
        return delta


async def _serve(
    request: web.Request,
    svc: Services,
    media_id: str,
    view_id: str,
    lease: str,
    verifier: str,
    stream: Stream,
    grant: LeaseGrant,
) -> web.StreamResponse:
    size, etag = grant.size, f'"{kc.unb64(grant.header)[16:32].hex()}"'
    wanted = parse_range(request.headers.get("Range"), size)
    if_range = request.headers.get("If-Range")
    if wanted is not None and if_range is not None and if_range.strip() != etag:
        wanted = None  # the representation changed: send it whole
    start, end = wanted if wanted is not None else (0, size)
    response = web.StreamResponse(status=206 if wanted is not None else 200)
    response.headers.update(RECIPIENT_HEADERS)
    response.headers.update(
        {
            "Content-Type": grant.mime,
            "Accept-Ranges": "bytes",
            "ETag": etag,
            "Cache-Control": "no-store",
            "Cross-Origin-Resource-Policy": "same-origin",
        }
    )
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response.content_length = end - start
    if request.method == "HEAD" or start == end:
        await response.prepare(request)
        return response

    dek = kc.lease_dek(lease, view_id, media_id, grant.keys)
    plaintext = svc.vault.open(grant.object_key, grant.header, dek, size, start, end)
    async with contextlib.aclosing(plaintext) as chunks:
        first = await anext(chunks)  # a corrupt or missing object fails before any header
        await response.prepare(request)
        watchdog = asyncio.create_task(_watch(svc, media_id, view_id, verifier, stream, request))
        try:
            await _write_all(response, stream, first, chunks)
        except ConnectionResetError:
            pass  # the viewer left (a seek aborts its Range request) or the lease was cut
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
    return response


async def _write_all(
    response: web.StreamResponse, stream: Stream, first: bytearray, rest: AsyncIterator[bytearray]
) -> None:
    await response.write(first)
    stream.sent += len(first)
    async for chunk in rest:
        await response.write(chunk)
        stream.sent += len(chunk)
    await response.write_eof()


async def _watch(
    svc: Services,
    media_id: str,
    view_id: str,
    verifier: str,
    stream: Stream,
    request: web.Request,
) -> None:
    """Re-check the lease every interval: unsend, revoke or the lease's end cut the stream."""
    interval = svc.settings.lease.recheck_interval
    while True:
        await asyncio.sleep(interval)
        delta = stream.unreported()
        result = await svc.views.touch(media_id, view_id, verifier, stream.id, delta)
        if result[0] != "ok":
            if request.transport is not None:
                request.transport.close()
            return
