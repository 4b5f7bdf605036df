"""The one app factory: every resource opened and closed in cleanup_ctx, reached by AppKey."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack

from aiohttp import web

from ephemeral.config import Settings
from ephemeral.handlers import events
from ephemeral.middleware import errors_middleware
from ephemeral.routes import setup_routes
from ephemeral.services import Services, open_services
from ephemeral.web_keys import SERVICES, SETTINGS, SHUTTING_DOWN

Background = Callable[[Services], AbstractAsyncContextManager[None]]


def create_app(
    settings: Settings, *, embedded: bool = False, background: Sequence[Background] = ()
) -> web.Application:
    """`background` runs alongside the API (the CLI passes the in-process worker)."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    app[SHUTTING_DOWN] = asyncio.Event()
    app.on_shutdown.append(events.end_streams)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with open_services(settings, embedded=embedded) as svc, AsyncExitStack() as stack:
            app[SERVICES] = svc
            for start in background:
                await stack.enter_async_context(start(svc))
            yield

    app.cleanup_ctx.append(resources)
    setup_routes(app)
    return app
