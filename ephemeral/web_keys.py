"""Typed application keys: how handlers reach the service graph without globals."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ephemeral.config import Settings
from ephemeral.services import Services

SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
# Set at shutdown: an event stream waits in XREAD for up to a heartbeat, so it watches this too.
SHUTTING_DOWN = web.AppKey("shutting_down", asyncio.Event)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
