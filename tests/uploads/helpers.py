"""Helpers for the two-step create: the JSON create, the upload URL's path, stored state."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.state import typed
from ephemeral.state.keys import Keys
from tests.fixtures.core import auth


async def create_two_step(
    client: TestClient[Any, Any], settings: Settings, size: int, **meta: Any
) -> dict[str, Any]:
    meta.setdefault("recipients", ["bob"])
    response = await client.post("/v1/media", json={**meta, "size": size}, headers=auth(settings))
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def upload_path(created: dict[str, Any]) -> str:
    """The upload URL names the configured public URL; tests talk to their own server."""
    path: str = urlsplit(created["upload_url"]).path
    return path


async def media_record(redis: Redis, settings: Settings, media_id: str) -> dict[str, str]:
    return await typed.hgetall(redis, Keys(settings.redis.prefix).media(media_id))


async def stored_objects(redis: Redis, settings: Settings, media_id: str) -> set[str]:
    return await typed.smembers(redis, Keys(settings.redis.prefix).objects(media_id))
