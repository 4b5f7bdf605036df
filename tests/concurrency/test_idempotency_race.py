"""One Idempotency-Key, many simultaneous creates on two API processes: exactly one media."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections import Counter
from typing import Any

import aiohttp
import pytest

from ephemeral.config import Settings
from tests.fixtures.core import auth, jpeg_bytes
from tests.fixtures.processes import api_processes

pytestmark = pytest.mark.slow


async def create(
    session: aiohttp.ClientSession, url: str, settings: Settings, key: str, data: bytes
) -> tuple[int, dict[str, Any], bool]:
    form = aiohttp.FormData()
    form.add_field(
        "meta", json.dumps({"recipients": ["bob", "carol"]}), content_type="application/json"
    )
    form.add_field("file", io.BytesIO(data), filename="p.jpg", content_type="image/jpeg")
    headers = {**auth(settings), "Idempotency-Key": key}
    async with session.post(f"{url}/v1/media", data=form, headers=headers) as response:
        body = await response.json(content_type=None)
        return response.status, body, response.headers.get("Idempotent-Replayed") == "true"


async def test_simultaneous_creates_on_two_processes_make_one_media(settings: Settings) -> None:
    data = jpeg_bytes((1600, 1200))
    with api_processes(settings, 2) as urls:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            for _ in range(3):
                key = str(uuid.uuid4())
                results = await asyncio.gather(
                    *(create(session, urls[i % 2], settings, key, data) for i in range(24))
                )
                statuses = Counter(status for status, _, _ in results)
                assert set(statuses) <= {202, 409}, statuses
                first = [body for status, body, replay in results if status == 202 and not replay]
                assert len(first) == 1, statuses
                for status, body, _ in results:
                    if status == 202:
                        assert body == first[0]  # replays carry the same tokens
                    else:
                        assert body["code"] == "idempotency-key-in-flight"
                for url in urls:  # once done, either process replays it
                    status, body, replayed = await create(session, url, settings, key, data)
                    assert status == 202 and replayed and body == first[0]
            listing = await (
                await session.get(f"{urls[0]}/v1/media", headers=auth(settings))
            ).json()
            assert len(listing["media"]) == 3
