"""POST /v1/media: the one-step create, streamed from the wire into encrypted storage."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from aiohttp import MultipartReader, web
from redis.exceptions import RedisError

from ephemeral import idempotency, metrics, upload
from ephemeral.abuse.http import reports_usage
from ephemeral.auth import Caller, Sender
from ephemeral.crypto import keys as kc
from ephemeral.errors import ServiceError
from ephemeral.handlers import uploads
from ephemeral.handlers.tokens import wrap_caption, wrap_recipients
from ephemeral.idempotency import Outcome
from ephemeral.meta import Meta
from ephemeral.middleware import problem
from ephemeral.ownership import hides_times, owned_meta
from ephemeral.services import Services
from ephemeral.state.media import NewMedia
from ephemeral.state.records import iso
from ephemeral.state.views import MEDIA_PREFIX
from ephemeral.vault import SealedObject, new_object_key
from ephemeral.web_keys import services

log = logging.getLogger("ephemeral.create")


def _precheck(request: web.Request, svc: Services) -> Caller:
    caller = svc.auth.caller(request)
    idempotency.parse_key(request.headers.get(idempotency.HEADER))  # a bad key: 422 up front
    ctype = request.content_type
    if ctype == "application/json":
        return caller  # the two-step create: its body is a small JSON meta
    if ctype != "multipart/form-data":
        raise ServiceError(
            415,
            "unsupported-media-type",
            "send multipart/form-data with a meta and a file part, or JSON meta (two-step)",
        )
    length = request.content_length
    if length is not None and length > upload.max_body(svc.settings.limits):
        raise upload.too_large(upload.max_body(svc.settings.limits))
    return caller


async def expect(request: web.Request) -> web.StreamResponse | None:
    """Expect: 100-continue is answered with the error when the headers already fail."""
    svc = services(request)
    try:
        caller = _precheck(request, svc)
        if isinstance(caller, Sender):  # a backend's sender is named in the body, not here
            await svc.abuse.before_body(caller)
    except ServiceError as exc:
        return problem(exc, os.urandom(8).hex())
    except RedisError:  # the create checks again and answers 503 if Redis is really down
        pass
    if request.headers.get("Expect", "").lower() != "100-continue":
        return problem(ServiceError(417, "bad-request", "unknown Expect"), os.urandom(8).hex())
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the main response has not started yet
    return None


@reports_usage
async def create(request: web.Request) -> web.Response:
    if request.content_type == "application/json":  # two-step: meta now, the bytes later
        return await uploads.create_awaiting(request)
    svc = services(request)
    caller = _precheck(request, svc)
    key = idempotency.parse_key(request.headers.get(idempotency.HEADER))
    limits = svc.settings.limits
    guard = upload.RateGuard(limits)
    try:
        reader = await request.multipart()
    except (KeyError, ValueError):  # no boundary parameter, or one over 70 characters
        raise ServiceError(400, "bad-request", "multipart/form-data needs a boundary") from None
    raw_meta = await upload.read_meta(reader, guard)
    sender, meta = owned_meta(svc.auth.tenants, limits, caller, raw_meta)

    async def produce() -> Outcome:
        # Quotas are charged only when a media is really made: a replay or a 409 costs none.
        await svc.abuse.before_upload(request, sender, meta.recipients)
        return await _upload(svc, sender, meta, reader, guard)

    # The key is claimed after the meta is read and before a byte of the file: a retry while
    # this upload streams gets 409, and the fingerprint covers the meta only (not the file).
    material = idempotency.fingerprint_material("multipart", meta)
    hide = hides_times(svc.auth.tenants, caller)
    return await svc.idempotency.run((sender.tenant, sender.id), key, material, produce, hide)


async def _upload(
    svc: Services,
    sender: Sender,
    meta: Meta,
    reader: MultipartReader,
    guard: upload.RateGuard,
) -> Outcome:
    limits = svc.settings.limits
    part = await upload.find_file(reader, guard)
    incoming = await upload.open_file(part, limits, guard)

    media_id = MEDIA_PREFIX + kc.random_id(16)
    dek = kc.new_dek()
    object_key = new_object_key(media_id)
    await svc.media.reserve_object(media_id, object_key, limits.upload_deadline + 60)
    try:
        content = svc.abuse.fingerprint()
        sealed = await svc.vault.seal(object_key, dek, incoming.chunks(), content.update)
        await upload.expect_end(reader)
        await svc.abuse.admit(sender, media_id, meta, content, sealed.size)
        body = await _record(svc, sender, meta, media_id, dek, incoming.sniffed.kind, sealed)
    except BaseException:
        await asyncio.shield(_discard(svc, media_id, object_key))
        raise
    metrics.observe_upload(incoming.sniffed.kind, incoming.received)
    try:
        await svc.jobs.normalise(media_id)
    except RedisError as exc:  # the record exists: the sweeper enqueues it again, idempotently
        log.warning("enqueue failed, the sweeper will retry: %s", type(exc).__name__)
    headers = {"Location": f"/v1/media/{media_id}", "Cache-Control": "no-store"}
    return Outcome(202, body, headers, media_id)


async def _discard(svc: Services, media_id: str, object_key: str) -> None:
    """Bad input leaves nothing behind: the blob, its reservation and the live-set entry."""
    try:
        await svc.store.delete(object_key)
        await svc.media.release_object(media_id, object_key)
        await svc.media.unschedule(media_id)
    except Exception as exc:  # the sweeper finishes the job from the reservation
        log.warning("discarding an upload failed: %s", type(exc).__name__)


async def _record(
    svc: Services,
    sender: Sender,
    meta: Meta,
    media_id: str,
    dek: bytes,
    kind: str,
    sealed: SealedObject,
) -> dict[str, Any]:
    """Wrap the DEK per recipient and for the worker, then create the record and indexes."""
    epoch, kek = svc.keyring.current()
    recipients, links = wrap_recipients(svc, meta, media_id, dek)
    caption = wrap_caption(meta, media_id, dek)
    worker = svc.settings.worker
    created = await svc.media.create(
        NewMedia(
            id=media_id,
            tenant=sender.tenant,
            sender=sender.id,
            state="processing",
            kind=kind,
            views=meta.views,
            expires_in=meta.expires_in,
            replay_window=meta.replay_window,
            caption=caption,
            capture=meta.capture,
            client_ref=meta.client_ref,
            recipient_auth=meta.recipient_auth,
            orig=sealed.key,
            orig_hdr=sealed.header,
            orig_size=sealed.size,
            kek=kc.b64(kc.wrap(kek, dek, kc.kek_context(media_id, epoch))),
            epoch=epoch,
            recipients=recipients,
        ),
        processing_ms=worker.processing_deadline_ms,
        requeue_ms=worker.requeue_ms,
    )
    return {
        "id": media_id,
        "state": "processing",
        "kind": kind,
        "views": meta.views,
        "client_ref": meta.client_ref or None,
        "created_at": iso(created.created_ms),
        "expires_at": iso(created.expires_ms),
        "recipients": links,
    }
