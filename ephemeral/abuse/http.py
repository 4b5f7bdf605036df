"""Handler decorators: per-address limits on recipient routes, RateLimit headers on success."""

from __future__ import annotations

import functools

from aiohttp import web

from ephemeral.abuse.guard import USAGES
from ephemeral.abuse.policy import headers
from ephemeral.errors import ServiceError
from ephemeral.middleware import Handler
from ephemeral.web_keys import services


def reports_usage(handler: Handler) -> Handler:
    """The quotas a handler charged go out as RateLimit/RateLimit-Policy on its response."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        usages = request.get(USAGES)
        if usages and not response.prepared:
            response.headers.update(headers(usages))
        return response

    return wrapped


def counts_misses(handler: Handler) -> Handler:
    """Peek and redeem: every 404 counts against the client's address, and an address past
    the limit gets 429 before its token is even read."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        abuse = services(request).abuse
        address = abuse.address(request)
        await abuse.before_lookup(address)
        try:
            return await handler(request)
        except ServiceError as exc:
            if exc.status == 404:
                await abuse.missed(address)
            raise

    return wrapped


def per_address(handler: Handler) -> Handler:
    """The viewer's routes (/v/*): a request budget per client address."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        abuse = services(request).abuse
        await abuse.viewer_request(abuse.address(request))
        return await handler(request)

    return wrapped
