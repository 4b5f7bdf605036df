"""client_ref is echoed everywhere: create, status, list, SSE events, the webhook envelope."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.state.keys import Keys
from tests.api.helpers import status
from tests.events.test_sse import sse_events
from tests.fixtures.core import auth, upload, wait_state

REF = "msg-77"


async def test_client_ref_is_echoed_everywhere(
    client: TestClient[Any, Any], settings: Settings, redis: Redis
) -> None:
    created = await upload(client, settings, {"recipients": ["bob"], "client_ref": REF})
    media_id, token = created["id"], created["recipients"][0]["token"]
    assert created["client_ref"] == REF
    await wait_state(client, settings, media_id, {"ready"})
    assert (await status(client, settings, media_id))["client_ref"] == REF
    listing = await (await client.get("/v1/media", headers=auth(settings))).json()
    assert [m["client_ref"] for m in listing["media"]] == [REF]

    response = await client.get(f"/v1/events?media_id={media_id}", headers=auth(settings))
    events = sse_events(response)
    async with asyncio.timeout(15):
        snapshot = await anext(events)
        assert snapshot["event"] == "snapshot"
        assert json.loads(snapshot["data"])["client_ref"] == REF
        assert (await client.post("/v1/views/peek", json={"token": token})).status == 200
        async for event in events:
            if event.get("event") == "recipient.delivered":
                assert json.loads(event["data"])["data"]["client_ref"] == REF
                break
    response.close()

    # Webhooks are fed from the tenant stream: the same envelope, with the client_ref.
    stream = Keys(settings.redis.prefix).tenant_events(settings.tenant)
    deadline = time.monotonic() + 15
    while True:
        envelopes = [json.loads(fields["e"]) for _, fields in await redis.xrange(stream)]
        kinds = {e["type"] for e in envelopes}
        if "recipient.delivered" in kinds or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert {"media.ready", "recipient.delivered"} <= kinds
    assert {e["data"]["client_ref"] for e in envelopes} == {REF}
