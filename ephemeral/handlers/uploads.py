"""The two-step create: `POST /v1/media` with JSON meta, then `PUT {upload_url}` with the bytes."""

from __future__ import annotations

import os
from dataclasses import asdict

from aiohttp import web

from ephemeral import idempotency, upload
from ephemeral.auth import Sender
from ephemeral.crypto import keys as kc
from ephemeral.crypto.upload_keys import upload_context, upload_verifier, upload_wrap_key
from ephemeral.errors import ServiceError
from ephemeral.handlers.common import json_response, read_small_json
from ephemeral.handlers.tokens import wrap_caption, wrap_recipients
from ephemeral.idempotency import Outcome
from ephemeral.meta import Meta, parse_upload_size
from ephemeral.middleware import problem
from ephemeral.ownership import hides_times, owned_meta
from ephemeral.services import Services
from ephemeral.state.media import NewMedia, NewUpload
from ephemeral.state.records import iso
from ephemeral.state.views import MEDIA_PREFIX
from ephemeral.upload_flow import head, receive, resolve
from ephemeral.web_keys import services

UPLOAD_PATH = "/v1/uploads/"


async def create_awaiting(request: web.Request) -> web.Response:
    """Tokens now, bytes later: the DEK is made here and wrapped per recipient; the worker's
    copy is wrapped under the upload secret, so until the bytes arrive neither an operator
    with Redis and the KEK nor the backend that holds the tokens can decrypt anything."""
    svc = services(request)
    caller = svc.auth.caller(request)
    key = idempotency.parse_key(request.headers.get(idempotency.HEADER))
    limits = svc.settings.limits
    raw = await read_small_json(request, upload.FIELD_LIMIT)
    size, size_errors = parse_upload_size(raw, limits)
    try:
        # A backend names the sender in on_behalf_of; the sender's device gets only the URL.
        sender, meta = owned_meta(svc.auth.tenants, limits, caller, raw)
    except ServiceError as exc:  # every problem at once, the size's too
        if exc.errors is not None:
            exc.errors.extend(size_errors.items)
        raise
    size_errors.raise_if_any()

    async def produce() -> Outcome:
        # Quotas are charged only when a media is really made: a replay or a 409 costs none.
        await svc.abuse.before_upload(request, sender, meta.recipients)
        return await _create(svc, sender, meta, size)

    material = idempotency.fingerprint_material("json", {**asdict(meta), "size": size})
    hide = hides_times(svc.auth.tenants, caller)
    return await svc.idempotency.run((sender.tenant, sender.id), key, material, produce, hide)


async def _create(svc: Services, sender: Sender, meta: Meta, size: int) -> Outcome:
    limits = svc.settings.limits
    media_id = MEDIA_PREFIX + kc.random_id(16)
    dek = kc.new_dek()
    lookup, secret = kc.new_token()
    recipients, links = wrap_recipients(svc, meta, media_id, dek)
    held = kc.wrap(upload_wrap_key(secret, media_id), dek, upload_context(media_id))
    worker = svc.settings.worker
    created = await svc.media.create(
        NewMedia(
            id=media_id,
            tenant=sender.tenant,
            sender=sender.id,
            state="awaiting_upload",
            kind="",
            views=meta.views,
            expires_in=meta.expires_in,
            replay_window=meta.replay_window,
            caption=wrap_caption(meta, media_id, dek),
            capture=meta.capture,
            client_ref=meta.client_ref,
            recipient_auth=meta.recipient_auth,
            orig="",
            orig_hdr="",
            orig_size=0,
            kek="",
            epoch=0,
            recipients=recipients,
            upload=NewUpload(
                lookup=lookup,
                vf=upload_verifier(secret, lookup),
                wk=kc.b64(held),
                size=size,
                ttl_ms=limits.upload_ttl * 1000,
            ),
        ),
        processing_ms=worker.processing_deadline_ms,
        requeue_ms=worker.requeue_ms,
    )
    body = {
        "id": media_id,
        "state": "awaiting_upload",
        "kind": None,
        "views": meta.views,
        "client_ref": meta.client_ref or None,
        "created_at": iso(created.created_ms),
        "expires_at": iso(created.expires_ms),
        "recipients": links,
        "upload_url": svc.settings.base_url + UPLOAD_PATH + kc.format_token(lookup, secret),
        "upload_expires_at": iso(created.upload_expires_ms),
    }
    headers = {"Location": f"/v1/media/{media_id}", "Cache-Control": "no-store"}
    return Outcome(201, body, headers, media_id)


async def put(request: web.Request) -> web.Response:
    """The whole body, once: 202 and processing as for the one-step upload. Bad bytes get the
    one-step's 4xx and leave nothing stored; the URL stays usable until it has succeeded."""
    svc = services(request)
    ref = await resolve(svc, request)
    received = await receive(svc, request, ref, offset=0, resumable=False)
    return json_response(
        {"id": ref.media_id, "state": "processing", "kind": received.kind},
        status=202,
        headers={"Cache-Control": "no-store"},
    )


async def expect(request: web.Request) -> web.StreamResponse | None:
    """Expect: 100-continue on the upload URL: an unknown, used, expired or wrongly sized
    upload is refused before a phone spends its uplink on the body."""
    svc = services(request)
    try:
        claim = await head(svc, await resolve(svc, request))
        remaining = claim.size - claim.offset
        length = request.content_length
        if remaining <= 0 or (request.method == "PUT" and claim.offset > 0):
            raise ServiceError(409, "upload-used", "this upload URL has already been used")
        if request.method == "PUT" and length is not None and length != remaining:
            raise ServiceError(400, "bad-request", f"the body must be exactly {remaining} bytes")
        if length is not None and length > remaining:
            raise upload.too_large(remaining)
    except ServiceError as exc:
        if request.method == "PATCH":
            exc.headers.update({"Tus-Resumable": "1.0.0", "Cache-Control": "no-store"})
        return problem(exc, os.urandom(8).hex())
    if request.headers.get("Expect", "").lower() != "100-continue":
        return problem(ServiceError(417, "bad-request", "unknown Expect"), os.urandom(8).hex())
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the main response has not started yet
    return None
