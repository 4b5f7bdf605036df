"""Recipients: peek (consumes nothing), redeem one view (exactly once), keepalive, close."""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from ephemeral import metrics
from ephemeral.abuse.http import counts_misses
from ephemeral.crypto import keys as kc
from ephemeral.durability import confirm
from ephemeral.errors import ServiceError, not_found, unavailable
from ephemeral.handlers.common import json_response, read_small_json
from ephemeral.handlers.lease import lease_cookie_name, read_lease
from ephemeral.ownership import recipient_subject
from ephemeral.services import Services
from ephemeral.state import typed
from ephemeral.state.records import iso
from ephemeral.state.views import VIEW_PREFIX, Redeemed, view_media_id
from ephemeral.web_keys import services

BODY_LIMIT = 1024
REDEEM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
GONE = {
    "already-viewed": "this link has already been viewed",
    "expired": "this link has expired",
    "revoked": "the sender unsent this media",
    "media-failed": "this media could not be processed",
}


class Opened:
    """A verified token: which media and recipient it opens, and its secret."""

    def __init__(self, media_id: str, recipient: str, secret: bytes, lookup: str) -> None:
        self.media_id = media_id
        self.recipient = recipient
        self.secret = secret
        self.verifier = kc.token_verifier(secret, lookup)


async def _open_token(svc: Services, body: dict[str, Any]) -> Opened:
    """Which recipient a token names. Its secret is checked by the peek or redeem script,
    first of all, in the same call that reads or changes anything else: unknown and wrong
    both get one 404."""
    token = body.get("token")
    parsed = kc.parse_token(token) if isinstance(token, str) else None
    if parsed is None:
        raise not_found("unknown or invalid link")
    lookup, secret = parsed
    found = await svc.views.resolve(lookup)
    if found is None:
        raise not_found("unknown or invalid link")
    return Opened(found[0], found[1], secret, lookup)


def _refusal(outcome: str, extra: dict[str, Any] | None = None) -> ServiceError:
    if outcome == "not-found":
        return not_found("unknown or invalid link")
    if outcome == "forbidden":
        return ServiceError(403, "forbidden", "this link belongs to another recipient")
    if outcome == "unauthorized":
        return ServiceError(
            401,
            "unauthorized",
            "this media must be opened in the app, signed in as its recipient",
            headers={"WWW-Authenticate": 'Bearer realm="ephemeral"'},
        )
    if outcome == "media-processing":
        return ServiceError(
            409, "media-processing", "the media is still processing", headers={"Retry-After": "2"}
        )
    if outcome in GONE:
        return ServiceError(410, outcome, GONE[outcome], extra=extra)
    return ServiceError(410, "expired", "this link can no longer be viewed")


@counts_misses
async def peek(request: web.Request) -> web.Response:
    svc = services(request)
    body = await read_small_json(request, BODY_LIMIT)
    opened = await _open_token(svc, body)
    subject = await recipient_subject(svc, request, opened.media_id)
    result = await svc.views.peek(opened.media_id, opened.recipient, opened.verifier, subject)
    if result[0] != "ok":
        raise _refusal(result[0])
    _, state, kind, views_left, duration, expires_in, recipient_auth, capture = result
    return json_response(
        {
            "state": state,
            "kind": kind or None,
            "views_left": int(views_left),
            "duration": float(duration) if duration else None,
            "expires_in": int(expires_in) if expires_in else None,
            "recipient_auth": recipient_auth,
            # Known before redeem, so a client that cannot honour `block` refuses unconsumed.
            "capture": capture,
        },
        headers={"Cache-Control": "no-store"},
    )


def _redeem_args(body: dict[str, Any]) -> tuple[str, str]:
    redeem_id = body.get("redeem_id", "")
    if redeem_id and (not isinstance(redeem_id, str) or not REDEEM_ID_RE.match(redeem_id)):
        raise ServiceError(
            422,
            "invalid-field",
            "redeem_id is 22-64 base64url characters",
            errors=[
                {
                    "pointer": "/redeem_id",
                    "code": "invalid-field",
                    "detail": "redeem_id is 22-64 base64url characters",
                }
            ],
        )
    device = body.get("device", "")
    if device and (not isinstance(device, str) or len(device) > 64):
        raise ServiceError(
            422,
            "invalid-field",
            "device is a label of at most 64 characters",
            errors=[
                {
                    "pointer": "/device",
                    "code": "invalid-field",
                    "detail": "device is at most 64 characters",
                }
            ],
        )
    return redeem_id or "", device or ""


@counts_misses
async def redeem(request: web.Request) -> web.Response:
    svc = services(request)
    body = await read_small_json(request, BODY_LIMIT)
    redeem_id, device = _redeem_args(body)
    opened = await _open_token(svc, body)
    subject = await recipient_subject(svc, request, opened.media_id)
    mid, rid = opened.media_id, opened.recipient
    view_id = VIEW_PREFIX + mid[2:] + kc.random_id(16)
    lease = kc.lease_secret(opened.secret, view_id)
    recipient_key = kc.recipient_wrap_key(opened.secret, mid, rid)
    lease_wrapped = kc.lease_wrapped_key(lease, view_id, recipient_key)
    result = await svc.views.redeem(
        mid,
        rid,
        opened.verifier,
        subject,
        view_id,
        kc.lease_verifier(lease, view_id),
        lease_wrapped,
        redeem_id,
        device,
    )
    if result.outcome == "ok":
        if not await confirm(svc.redis, svc.settings.redis.durability):
            raise unavailable("the redemption could not be confirmed durable; no lease given")
        metrics.observe_view(result.shown.get("kind", ""))
        keys = kc.LeaseKeys(rid, lease_wrapped, result.recipient_wrapped)
        return await _granted(request, svc, opened, result, lease, 201, keys)
    if result.outcome == "replayed":
        lease = kc.lease_secret(opened.secret, result.view_id)
        return await _granted(request, svc, opened, result, lease, 200)
    extra = {"opened_at": iso(result.opened_at)} if result.opened_at else None
    raise _refusal(result.outcome, extra)


async def _granted(
    request: web.Request,
    svc: Services,
    opened: Opened,
    result: Redeemed,
    lease: str,
    status: int,
    keys: kc.LeaseKeys | None = None,
) -> web.Response:
    mid, rid, view_id = opened.media_id, opened.recipient, result.view_id
    settings = svc.settings
    if status == 201:  # fresh: the script returned everything the viewer needs
        media, views_left, max_left = result.shown, result.views_left, result.lease_max_ms // 1000
    else:  # a retried redeem: read the live lease back
        lease_row = await svc.views.lease_state(mid, view_id)
        media = await svc.views.shown(mid)
        keys = svc.views.lease_keys(lease_row)
        row = await typed.hget(svc.redis, svc.keys.recipient(mid, rid), "vl")
        views_left = int(row or 0)
        max_left = max(0, int(lease_row.get("max_until", "0")) - int(time.time() * 1000)) // 1000
    caption = ""
    if media["caption"] and keys is not None and keys.present:  # a replay's lease may have ended
        dek = kc.lease_dek(lease, view_id, mid, keys)
        caption = kc.unwrap(dek, kc.unb64(media["caption"]), f"caption\x00{mid}").decode()
    response = json_response(
        {
            "view_id": view_id,
            "content_url": f"{settings.viewer_base_url}/v1/views/{view_id}/content",
            "lease": lease,
            "kind": media["kind"],
            "mime": media["mime"],
            "size": int(media["size"] or 0),
            "width": int(media["width"] or 0) or None,
            "height": int(media["height"] or 0) or None,
            "duration": float(media["duration"]) if media["duration"] else None,
            "caption": caption or None,
            "capture": media["capture"] or "notify",
            "views_left": views_left,
            "lease_idle": settings.lease.idle,
            "lease_expires_in": max_left,
        },
        status=status,
        headers={"Cache-Control": "no-store"},
    )
    response.set_cookie(
        lease_cookie_name(view_id),
        lease,
        path=f"/v1/views/{view_id}",
        secure=True,
        httponly=True,
        samesite="Strict",
        max_age=max_left,
    )
    return response


def _lease_target(request: web.Request) -> tuple[str, str, str]:
    view_id = request.match_info["view_id"]
    media_id = view_media_id(view_id)
    lease = read_lease(request, view_id)
    if media_id is None or lease is None:
        raise not_found("unknown view")
    return media_id, view_id, kc.lease_verifier(lease, view_id)


async def keepalive(request: web.Request) -> web.Response:
    svc = services(request)
    media_id, view_id, verifier = _lease_target(request)
    result = await svc.views.touch(media_id, view_id, verifier)
    if result[0] != "ok":
        raise ServiceError(410, "lease-ended", "the lease has ended")
    return json_response(
        {"lease_idle": int(result[1]) // 1000, "lease_expires_in": int(result[2]) // 1000},
        headers={"Cache-Control": "no-store"},
    )


NOTE_KINDS = {"screenshot", "recording"}


async def screenshot(request: web.Request) -> web.Response:
    """The viewer app saw a screenshot or a screen recording: tell the sender, once per kind."""
    svc = services(request)
    media_id, view_id, verifier = _lease_target(request)
    body = await read_small_json(request, BODY_LIMIT)
    kind = body.get("kind", "screenshot")
    if kind not in NOTE_KINDS:
        raise ServiceError(
            422,
            "invalid-field",
            "kind is screenshot or recording",
            errors=[{"pointer": "/kind", "code": "invalid-field", "detail": "unknown kind"}],
        )
    return await _noted(await svc.views.note(media_id, view_id, verifier, kind))


async def report(request: web.Request) -> web.Response:
    """The recipient reports abuse: a recipient.reported event for the messaging backend."""
    svc = services(request)
    media_id, view_id, verifier = _lease_target(request)
    reason = ""
    if request.can_read_body:
        body = await read_small_json(request, BODY_LIMIT)
        reason = body.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 500:
            raise ServiceError(
                422,
                "invalid-field",
                "reason is text of at most 500 characters",
                errors=[{"pointer": "/reason", "code": "invalid-field", "detail": "too long"}],
            )
    return await _noted(await svc.views.note(media_id, view_id, verifier, "report", reason))


async def _noted(outcome: str) -> web.Response:
    if outcome == "not-found":
        raise not_found("unknown view")
    if outcome == "too-late":
        raise ServiceError(410, "lease-ended", "the lease ended more than 10 minutes ago")
    # A repeat is accepted and changes nothing: clients may retry freely.
    return json_response(
        {"accepted": outcome == "ok"}, status=202, headers={"Cache-Control": "no-store"}
    )


async def close(request: web.Request) -> web.Response:
    svc = services(request)
    media_id, view_id, verifier = _lease_target(request)
    purge_due = await svc.views.end(media_id, view_id, verifier)
    if purge_due:
        await svc.jobs.purge(media_id)
    response = web.Response(status=204)
    response.del_cookie(lease_cookie_name(view_id), path=f"/v1/views/{view_id}")
    return response
