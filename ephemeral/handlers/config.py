"""GET /v1/config: every limit and default of this deployment, public and cacheable by ETag."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from ephemeral import upload
from ephemeral.abuse.policy import policies
from ephemeral.config import Settings
from ephemeral.events import RETENTION_MS
from ephemeral.idempotency import KEY_RE
from ephemeral.media import sniff
from ephemeral.web_keys import SETTINGS

MAX_AGE = 60


def accepted_formats() -> dict[str, list[str]]:
    """The input types the sniffer recognises, per kind (decided from the bytes, never names)."""
    found: dict[str, set[str]] = {kind: set() for kind in upload.ACCEPTED_KINDS}
    for value in vars(sniff).values():
        if isinstance(value, sniff.Sniffed) and value.kind in found:
            found[value.kind].add(value.mime)
    found["audio"].add("audio/webm")  # Opus in WebM sniffs as Matroska; the probe tells audio
    return {kind: sorted(mimes) for kind, mimes in found.items()}


def rate_limit_policies(settings: Settings) -> dict[str, Any]:
    """The rate-limit policies in force, under the names their RateLimit-Policy headers use."""
    return policies(settings)


def describe(settings: Settings) -> dict[str, Any]:
    """No secret, URL of a backend or key material: only what a client may plan around."""
    lim, lease, worker, events, hooks = (
        settings.limits,
        settings.lease,
        settings.worker,
        settings.events,
        settings.webhooks,
    )
    return {
        "api_version": "v1",
        "kinds": upload.ACCEPTED_KINDS,
        "accepted_formats": accepted_formats(),
        "limits": {
            "max_upload_bytes": {
                kind: upload.kind_limit(lim, kind) for kind in upload.ACCEPTED_KINDS
            },
            "max_image_pixels": lim.max_image_pixels,
            "max_video_frame": {"width": lim.max_video_width, "height": lim.max_video_height},
            "max_duration": {"video": lim.max_duration, "audio": lim.max_duration},
            "max_recipients": lim.max_recipients,
            "caption_max": lim.caption_max,
            "client_ref_max": lim.client_ref_max,
            "upload_deadline": lim.upload_deadline,
            "upload_min_rate": lim.upload_min_rate,
            "upload_rate_window": lim.upload_rate_window,
            "multipart_max_parts": upload.MAX_PARTS,
            "multipart_field_max": upload.FIELD_LIMIT,
        },
        "output": {
            "image_max_side": lim.max_image_side,
            "allow_remux": lim.allow_remux,
        },
        "defaults": {
            "views": {"default": 1, "max": lim.max_views},
            "expires_in": {
                "default": lim.expires_default,
                "min": lim.expires_min,
                "max": lim.expires_max,
            },
            "replay_window": {
                "default": lim.replay_window,
                "min": lim.expires_min,
                "max": lim.expires_max,
            },
            "recipient_auth": ["link", "account"],
            "capture": ["notify", "block"],
        },
        "processing": {"job_timeout": worker.job_timeout, "max_tries": worker.max_tries},
        "lease": {
            "idle": lease.idle,
            "max_floor": lease.max_floor,
            "max_duration_factor": lease.max_duration_factor,
            "max": settings.lease_max_bound,
            "byte_budget_factor": lease.byte_budget_factor,
            "max_streams": lease.max_streams,
        },
        "receipts_ttl": settings.receipts_ttl,
        "idempotency": {"ttl": settings.idempotency.ttl, "key_pattern": KEY_RE.pattern},
        "events": {
            "sse_max_streams": events.sse_max_streams,
            "sse_heartbeat": events.sse_heartbeat,
            "retention": RETENTION_MS // 1000,
            "ticket_ttl": events.ticket_ttl,
        },
        "webhooks": {
            "max_tries": hooks.max_tries,
            "timeout": hooks.timeout,
            "first_retry": hooks.first_retry,
            "backoff_factor": hooks.backoff_factor,
        },
        "rate_limits": rate_limit_policies(settings),
    }


async def config(request: web.Request) -> web.Response:
    body = json.dumps(describe(request.app[SETTINGS]), sort_keys=True)
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={MAX_AGE}"}
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    return web.Response(text=body, content_type="application/json", headers=headers)
