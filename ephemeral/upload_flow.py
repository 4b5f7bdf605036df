"""The upload URL of a two-step create: resolve it, claim it, store one body, commit it.

Shared by the plain `PUT` and the tus `PATCH`; the handlers only add their protocol.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web
from redis.exceptions import RedisError

from ephemeral import upload
from ephemeral.crypto import keys as kc
from ephemeral.crypto.upload_keys import upload_context, upload_verifier, upload_wrap_key
from ephemeral.errors import ServiceError, not_found
from ephemeral.media.sniff import SNIFF_BYTES
from ephemeral.services import Services
from ephemeral.state.uploads import Claim, UploadRepo
from ephemeral.transfer import (
    Body,
    PartWriter,
    check_kind,
    interrupted,
    lock_ms,
    new_nonce,
    read_head,
)
from ephemeral.vault import StoredPart

log = logging.getLogger("ephemeral.uploads")


def repo(svc: Services) -> UploadRepo:
    """Built on demand from the shared graph: cheap, and Services stays as it is."""
    return UploadRepo(svc.redis, svc.scripts, svc.keys, svc.media)


@dataclass(frozen=True)
class UploadRef:
    media_id: str
    secret: bytes
    verifier: str


@dataclass(frozen=True)
class Received:
    offset: int  # the stored offset after this body
    complete: bool
    kind: str
    error: BaseException | None  # a PATCH cut short: what was whole is kept, then this


async def resolve(svc: Services, request: web.Request) -> UploadRef:
    """An unknown lookup and a wrong secret get one 404, before any state is read."""
    parsed = kc.parse_token(request.match_info["upload_token"])
    if parsed is None:
        raise not_found("unknown upload URL")
    lookup, secret = parsed
    media_id = await repo(svc).resolve(lookup)
    if media_id is None:
        raise not_found("unknown upload URL")
    return UploadRef(media_id, secret, upload_verifier(secret, lookup))


def refusal(claim: Claim) -> ServiceError:
    """Why an upload URL cannot take bytes (or be asked about) now."""
    if claim.outcome == "not-found":
        return not_found("unknown upload URL")
    if claim.outcome == "used":
        return ServiceError(409, "upload-used", "this upload URL has already been used")
    if claim.outcome in ("busy", "ok"):
        return ServiceError(
            409,
            "upload-in-progress",
            "another request is writing to this upload",
            headers={"Retry-After": "1"},
        )
    if claim.outcome == "offset":
        return ServiceError(
            409,
            "upload-offset-mismatch",
            f"Upload-Offset must be {claim.offset}",
            headers={"Upload-Offset": str(claim.offset)},
        )
    if claim.outcome == "expired" or claim.error == "upload-expired":
        return ServiceError(410, "upload-expired", "the upload URL has expired")
    if claim.state == "failed":
        return ServiceError(410, "media-failed", "this media has failed")
    return ServiceError(410, "revoked", "this media was unsent")


async def head(svc: Services, ref: UploadRef) -> Claim:
    claim = await repo(svc).claim(ref.media_id, ref.verifier, new_nonce(), "head", 0)
    if claim.outcome != "ok":
        raise refusal(claim)
    return claim


_transfers: set[asyncio.Task[Received]] = set()  # strong references while they finish


async def receive(
    svc: Services, request: web.Request, ref: UploadRef, offset: int, resumable: bool
) -> Received:
    """Store one body as one part: all of it (PUT) or its whole segments (PATCH).

    The transfer runs in a task of its own: where a dropped connection cancels the handler
    (aiohttp's handler_cancellation), the transfer still sees the connection end, and stores
    (PATCH) or discards (PUT) what arrived, and releases the upload's lock.
    """
    task = asyncio.ensure_future(_receive(svc, request, ref, offset, resumable))
    _transfers.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)


def _finished(task: asyncio.Task[Received]) -> None:
    _transfers.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a client that left gets no answer, and needs none


async def _receive(
    svc: Services, request: web.Request, ref: UploadRef, offset: int, resumable: bool
) -> Received:
    limits = svc.settings.limits
    uploads = repo(svc)
    nonce = new_nonce()
    writer = PartWriter(svc, ref.media_id, b"", resumable)
    mode = "patch" if resumable else "put"
    hold = lock_ms(limits)
    claim = await uploads.claim(
        ref.media_id, ref.verifier, nonce, mode, hold, offset, writer.object_key
    )
    if claim.outcome != "ok":
        await writer.discard()
        raise refusal(claim)
    remaining = claim.size - claim.offset

    async def refresh() -> None:
        kept = await uploads.commit(
            ref.media_id, nonce, claim.offset, None, release=False, lock_ms=hold
        )
        if kept.outcome not in ("ok",):
            raise refusal(await uploads.claim(ref.media_id, ref.verifier, nonce, "head", 0))

    kind = ""
    try:
        length = request.content_length
        if not resumable and length is not None and length != remaining:
            raise ServiceError(400, "bad-request", f"the body must be exactly {remaining} bytes")
        if length is not None and length > remaining:
            raise upload.too_large(remaining)
        writer.dek = kc.unwrap(
            upload_wrap_key(ref.secret, ref.media_id),
            kc.unb64(claim.wrapped),
            upload_context(ref.media_id),
        )
        chunks = Body(request, upload.RateGuard(limits), remaining, refresh).chunks()
        head_bytes = b""
        if claim.offset == 0:
            head_bytes = await read_head(chunks)
            if len(head_bytes) >= min(SNIFF_BYTES, claim.size):
                kind = check_kind(head_bytes, claim.size, limits)
            elif resumable:
                head_bytes = b""  # too little to tell the kind, and less than a segment
        written = await writer.write(head_bytes, chunks, remaining)
        part = written.part
        if not resumable and (part is None or part.size != remaining):
            await asyncio.shield(writer.discard())
            raise ServiceError(400, "bad-request", f"the body must be exactly {remaining} bytes")
    except BaseException as exc:
        await asyncio.shield(_release(uploads, ref.media_id, nonce, claim.offset, writer))
        if interrupted(exc) and not isinstance(exc, ServiceError):
            raise ServiceError(400, "bad-request", "the upload was interrupted") from None
        raise
    return await _commit(svc, uploads, ref, nonce, claim, writer, part, kind, written.error)


async def _release(
    uploads: UploadRepo, media_id: str, nonce: str, start: int, writer: PartWriter
) -> None:
    try:
        await uploads.commit(media_id, nonce, start, None)
    except RedisError as exc:  # the lock's TTL frees it
        log.warning("releasing an upload lock failed: %s", type(exc).__name__)
    await writer.discard()


async def _commit(
    svc: Services,
    uploads: UploadRepo,
    ref: UploadRef,
    nonce: str,
    claim: Claim,
    writer: PartWriter,
    stored: StoredPart | None,
    kind: str,
    error: BaseException | None,
) -> Received:
    completes = stored is not None and claim.offset + stored.size == claim.size
    kek, epoch = "", 0
    if completes:  # the worker's copy moves from the upload secret to the epoch KEK
        epoch, epoch_key = svc.keyring.current()
        kek = kc.b64(kc.wrap(epoch_key, writer.dek, kc.kek_context(ref.media_id, epoch)))
    worker = svc.settings.worker
    try:
        done = await uploads.commit(
            ref.media_id,
            nonce,
            claim.offset,
            stored,
            kind=kind,
            kek=kek,
            epoch=epoch,
            processing_ms=worker.processing_deadline_ms,
            requeue_ms=worker.requeue_ms,
        )
    except BaseException:
        await asyncio.shield(writer.discard())
        raise
    if done.outcome in ("lost", "refused"):
        await asyncio.shield(writer.discard())
        raise refusal(await uploads.claim(ref.media_id, ref.verifier, nonce, "head", 0))
    if done.outcome == "complete":
        try:
            await svc.jobs.normalise(ref.media_id)
        except RedisError as exc:  # the 'job' timer brings the sweeper back to enqueue it
            log.warning("enqueue failed, the sweeper will retry: %s", type(exc).__name__)
        return Received(claim.size, True, kind, error)
    return Received(done.offset, False, kind, error)
