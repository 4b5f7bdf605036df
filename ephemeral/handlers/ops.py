"""Liveness, readiness and metrics for orchestrators; optionally on a listener of their own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from redis.exceptions import RedisError

from ephemeral import metrics
from ephemeral.errors import unavailable
from ephemeral.handlers.common import json_response
from ephemeral.middleware import errors_middleware
from ephemeral.services import Services
from ephemeral.web_keys import SERVICES, SETTINGS, services

log = logging.getLogger("ephemeral.ops")


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


BACKLOG_TIMEOUT = 1.0  # seconds; Prometheus' own scrape timeout is usually 10 s


async def scrape(request: web.Request) -> web.Response:
    svc = services(request)
    try:
        # Bounded: a stalled Redis must not take the counters down with it (no socket timeout).
        async with asyncio.timeout(BACKLOG_TIMEOUT):
            backlog: metrics.Backlog | None = await metrics.read_backlog(
                svc.redis, svc.keys, [t.id for t in svc.auth.tenants.all]
            )
    except (RedisError, OSError, TimeoutError) as exc:  # counters matter most in trouble
        log.warning("metrics without the backlog gauges: %s", type(exc).__name__)
        backlog = None
    body, content_type = metrics.render(backlog)
    return web.Response(body=body, headers={"Content-Type": content_type})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", healthz)
    router.add_get("/readyz", readyz)
    router.add_get("/metrics", scrape, allow_head=False)


@contextlib.asynccontextmanager
async def ops_listener(
    svc: Services, access_log: type[AbstractAccessLogger]
) -> AsyncIterator[None]:
    """The ops routes on ops.host:ops.port, on the services of a running API or worker."""
    settings = svc.settings
    app = web.Application(middlewares=[errors_middleware])
    app[SETTINGS] = settings
    app[SERVICES] = svc
    add_routes(app.router)
    runner = web.AppRunner(app, access_log_class=access_log)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.ops.host, settings.ops.port).start()
        yield
    finally:
        await runner.cleanup()
