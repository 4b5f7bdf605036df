"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from aiohttp import web

from ephemeral.errors import unavailable
from ephemeral.handlers.common import json_response
from ephemeral.web_keys import services


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    svc = services(request)
    try:
        await svc.redis.ping()
        await svc.store.health()
    except Exception:
        raise unavailable("redis or storage is not ready") from None
    return json_response({"status": "ready"})
