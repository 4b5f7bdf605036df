"""The sender's side of a media: status per member, listing, unsend, revoke one member."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from ephemeral.auth import Caller
from ephemeral.errors import ServiceError, not_found
from ephemeral.handlers.common import json_response
from ephemeral.ownership import hides_times, may_act_on
from ephemeral.services import Services
from ephemeral.state.media import (
    RECIPIENT_PAGE_MAX,
    MediaRecord,
    cursor_offset,
    encode_cursor,
)
from ephemeral.state.records import STATUSES, render_media, render_recipient
from ephemeral.web_keys import services


async def _owned(
    svc: Services,
    caller: Caller,
    media_id: str,
    cursor: str | None = None,
    recipients: bool = True,
    limit: int = RECIPIENT_PAGE_MAX,
) -> MediaRecord:
    """A media that is not the caller's is a 404, never a 403: existence is not disclosed."""
    record = await svc.media.get(media_id, cursor=cursor, with_recipients=recipients, limit=limit)
    if record is None or not may_act_on(caller, record.owner):
        raise not_found("no such media")
    return record


def _etag(record: MediaRecord, variant: str) -> str:
    tag = hashlib.sha256(f"{record.media.get('ver', '0')}|{variant}".encode()).hexdigest()[:20]
    return f'"{tag}"'


def _conditional(request: web.Request, body: dict[str, Any], etag: str) -> web.Response:
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    return json_response(body, headers=headers)


async def status(request: web.Request) -> web.Response:
    svc = services(request)
    caller = svc.auth.caller(request)
    with_list = request.query.get("recipients") != "none"
    record = await _owned(svc, caller, request.match_info["media_id"], recipients=with_list)
    body = render_media(record.id, record.media)
    hide = hides_times(svc.auth.tenants, caller)
    if with_list:
        body["recipients"] = [render_recipient(rid, r, hide) for rid, r in record.recipients]
        body["recipients_next_cursor"] = record.next_cursor
    # Times hidden or shown are two representations of one version: two ETags.
    return _conditional(request, body, _etag(record, f"{request.query_string}|{hide}"))


def _limit(request: web.Request, default: int) -> int:
    try:
        limit = int(request.query.get("limit", str(default)))
    except ValueError:
        limit = 0
    if not 1 <= limit <= RECIPIENT_PAGE_MAX:
        detail = f"limit is 1..{RECIPIENT_PAGE_MAX}"
        raise ServiceError(
            422,
            "invalid-field",
            detail,
            errors=[{"pointer": "/limit", "code": "invalid-field", "detail": detail}],
        )
    return limit


async def recipients(request: web.Request) -> web.Response:
    """A page of up to `limit` members; with `status`, the scan goes on until the page is full,
    and the cursor points just past the last member returned (offsets in the member list)."""
    svc = services(request)
    caller = svc.auth.caller(request)
    wanted = request.query.get("status")
    if wanted is not None and wanted not in STATUSES:
        raise ServiceError(
            422,
            "invalid-field",
            "unknown status filter",
            errors=[{"pointer": "/status", "code": "invalid-field", "detail": "unknown status"}],
        )
    limit = _limit(request, RECIPIENT_PAGE_MAX)
    hide = hides_times(svc.auth.tenants, caller)
    start = cursor_offset(request.query.get("cursor"))
    media_id = request.match_info["media_id"]
    first: MediaRecord | None = None
    rows: list[dict[str, Any]] = []
    next_start: int | None = start
    while next_start is not None and len(rows) < limit:
        size = limit if wanted is None else RECIPIENT_PAGE_MAX
        page = await _owned(svc, caller, media_id, encode_cursor(str(next_start)), limit=size)
        first = first or page
        taken = 0
        for rid, r in page.recipients:
            taken += 1
            row = render_recipient(rid, r, hide)
            if wanted is None or row["status"] == wanted:
                rows.append(row)
                if len(rows) == limit:
                    break
        more = page.next_cursor is not None or taken < len(page.recipients)
        next_start = next_start + taken if more else None
    assert first is not None  # the loop runs at least once
    cursor = encode_cursor(str(next_start)) if next_start is not None else None
    body = {"recipients": rows, "next_cursor": cursor}
    return _conditional(request, body, _etag(first, f"{request.query_string}|{hide}"))


async def list_media(request: web.Request) -> web.Response:
    svc = services(request)
    sender = svc.auth.sender(request)
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise ServiceError(
            422,
            "invalid-field",
            "limit must be 1..100",
            errors=[{"pointer": "/limit", "code": "invalid-field", "detail": "limit is 1..100"}],
        )
    ids, cursor = await svc.media.list_owned(
        sender.tenant, sender.id, limit, request.query.get("cursor")
    )
    items = []
    for media_id in ids:
        record = await svc.media.get(media_id, with_recipients=False)
        if record is not None:
            items.append(render_media(media_id, record.media))
    return json_response({"media": items, "next_cursor": cursor})


async def unsend(request: web.Request) -> web.Response:
    svc = services(request)
    caller = svc.auth.caller(request)
    record = await _owned(svc, caller, request.match_info["media_id"], recipients=False)
    if await svc.media.unsend(record.id):
        await svc.lifecycle.evaluate(record.id)  # purge now; the sweeper retries on failure
    return web.Response(status=204)


async def revoke(request: web.Request) -> web.Response:
    svc = services(request)
    caller = svc.auth.caller(request)
    record = await _owned(svc, caller, request.match_info["media_id"], recipients=False)
    purge_due = await svc.media.revoke(record.id, request.match_info["recipient_id"])
    if purge_due is None:
        raise not_found("no such recipient")
    if purge_due:
        await svc.jobs.purge(record.id)
    return web.Response(status=204)
