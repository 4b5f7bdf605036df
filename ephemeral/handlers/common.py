"""Small request helpers shared by the handlers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ephemeral.errors import ServiceError

JSON_TYPES = ("application/json", "application/json; charset=utf-8")


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


async def read_small_json(request: web.Request, limit: int) -> dict[str, Any]:
    """Exactly application/json (optionally ; charset=utf-8), a bounded body, a JSON object."""
    ctype = request.headers.get("Content-Type", "").strip().lower().replace(" ", "")
    if ctype not in ("application/json", "application/json;charset=utf-8"):
        raise ServiceError(415, "unsupported-media-type", "send Content-Type: application/json")
    if request.content_length is not None and request.content_length > limit:
        raise ServiceError(413, "payload-too-large", f"the body is limited to {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise ServiceError(413, "payload-too-large", f"the body is limited to {limit} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ServiceError(400, "bad-request", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ServiceError(400, "bad-request", "the body must be a JSON object")
    return data
