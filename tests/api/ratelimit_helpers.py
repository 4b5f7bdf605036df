"""Helpers for the abuse-control tests: settings with one limit set low, raw uploads."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from aiohttp.test_utils import TestClient

from ephemeral.config import Settings
from ephemeral.crypto import keys as kc
from tests.fixtures.core import auth, jpeg_bytes, multipart


def limited(settings: Settings, **limits: Any) -> Settings:
    return dataclasses.replace(
        settings, ratelimit=dataclasses.replace(settings.ratelimit, **limits)
    )


async def post_upload(
    client: TestClient[Any, Any],
    settings: Settings,
    recipients: list[str],
    data: bytes | None = None,
    sub: str = "alice",
) -> Any:
    return await client.post(
        "/v1/media",
        data=multipart({"recipients": recipients}, data if data is not None else jpeg_bytes()),
        headers=auth(settings, sub),
    )


def stranger_token() -> str:
    """A well-formed token that no media has: its redeem is a 404, a miss."""
    return kc.format_token(kc.b64(os.urandom(16)), os.urandom(32))


async def media_ids(
    client: TestClient[Any, Any], settings: Settings, sub: str = "alice"
) -> set[str]:
    response = await client.get("/v1/media?limit=100", headers=auth(settings, sub))
    assert response.status == 200, await response.text()
    body = await response.json()
    return {item["id"] for item in body["media"]}
