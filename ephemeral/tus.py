"""tus 1.0 on the upload URL of a two-step create: core, expiration and termination.

Creation is the JSON `POST /v1/media` (it fixes `Upload-Length` as the `size` given there), so
the creation extension is not offered. The offset a server reports only ever moves by whole
64 KiB segments until the last byte (see ephemeral/transfer.py).
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime

from aiohttp import web

from ephemeral import upload
from ephemeral.errors import ServiceError
from ephemeral.services import Services
from ephemeral.state.uploads import Claim
from ephemeral.transfer import lock_ms, new_nonce
from ephemeral.upload_flow import UploadRef, head, receive, refusal, repo, resolve
from ephemeral.web_keys import services

VERSION = "1.0.0"
EXTENSIONS = "expiration,termination"
OFFSET_TYPE = "application/offset+octet-stream"
SETTLE_SECONDS = 3.0  # how long a HEAD waits for a transfer that is still being stored

TusHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


OFFSET_RE = re.compile(r"[0-9]{1,18}")


def _base_headers() -> dict[str, str]:
    return {"Tus-Resumable": VERSION, "Cache-Control": "no-store"}


def tus_route(handler: TusHandler) -> TusHandler:
    """Every tus answer, errors included, carries Tus-Resumable; a wrong version is a 412."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != VERSION:
                raise ServiceError(
                    412,
                    "unsupported-tus-version",
                    f"this server speaks tus {VERSION}",
                    headers={"Tus-Version": VERSION},
                )
            response = await handler(request)
        except ServiceError as exc:
            exc.headers.update(_base_headers())
            raise
        response.headers.update(_base_headers())
        return response

    return wrapped


def _expires(claim: Claim) -> dict[str, str]:
    if claim.offset >= claim.size or not claim.expires_ms:
        return {}
    when = datetime.fromtimestamp(claim.expires_ms / 1000, tz=UTC)
    return {"Upload-Expires": format_datetime(when, usegmt=True)}


@tus_route
async def options(request: web.Request) -> web.StreamResponse:
    limits = services(request).settings.limits
    largest = max(upload.kind_limit(limits, kind) for kind in upload.ACCEPTED_KINDS)
    return web.Response(
        status=204,
        headers={"Tus-Version": VERSION, "Tus-Extension": EXTENSIONS, "Tus-Max-Size": str(largest)},
    )


async def _settled(svc: Services, ref: UploadRef) -> Claim:
    """The offset once a transfer in progress (a dropped connection being stored) is done."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    claim = await head(svc, ref)
    while claim.busy and loop.time() < deadline:
        await asyncio.sleep(0.05)
        claim = await head(svc, ref)
    return claim


@tus_route
async def status(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    claim = await _settled(svc, await resolve(svc, request))
    return web.Response(
        status=200,
        headers={
            "Upload-Offset": str(claim.offset),
            "Upload-Length": str(claim.size),
            **_expires(claim),
        },
    )


def _offset(request: web.Request) -> int:
    text = request.headers.get("Upload-Offset", "")
    if not OFFSET_RE.fullmatch(text):  # ASCII digits only: str.isdigit() takes "²" too
        raise ServiceError(400, "bad-request", "Upload-Offset must be a non-negative integer")
    return int(text)


@tus_route
async def patch(request: web.Request) -> web.StreamResponse:
    """Bytes at the stored offset. Interrupted, it keeps the whole segments that arrived."""
    svc = services(request)
    if request.content_type != OFFSET_TYPE:
        raise ServiceError(415, "unsupported-media-type", f"PATCH needs {OFFSET_TYPE}")
    offset = _offset(request)
    ref = await resolve(svc, request)
    received = await receive(svc, request, ref, offset, resumable=True)
    headers = {"Upload-Offset": str(received.offset)}
    if isinstance(received.error, ServiceError):  # too slow: what arrived is kept, then the 408
        received.error.headers.update(headers)
        raise received.error
    claim = await head(svc, ref)
    return web.Response(status=204, headers={**headers, **_expires(claim)})


@tus_route
async def terminate(request: web.Request) -> web.StreamResponse:
    """Termination before the last byte unsends the media: tokens revoked, parts purged.
    After it, the upload has become a media of its owner, which only the owner can unsend."""
    svc = services(request)
    ref = await resolve(svc, request)
    uploads = repo(svc)
    nonce = new_nonce()
    claim = await uploads.claim(
        ref.media_id, ref.verifier, nonce, "delete", lock_ms(svc.settings.limits)
    )
    if claim.outcome != "ok":
        raise refusal(claim)
    try:
        if await svc.media.unsend(ref.media_id):
            await svc.lifecycle.evaluate(ref.media_id)  # purge now; the sweeper retries
    finally:
        await uploads.commit(ref.media_id, nonce, claim.offset, None)  # drops the lock
    return web.Response(status=204)
