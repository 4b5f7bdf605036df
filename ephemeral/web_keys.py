"""Typed application keys: how handlers reach the service graph without globals."""

from __future__ import annotations

from aiohttp import web

from ephemeral.config import Settings
from ephemeral.services import Services

SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
