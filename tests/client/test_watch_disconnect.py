"""A watcher that stops reading is a normal end of its event stream, not a server error.

(A manual run once caught the server writing an event just as the SDK's connection closed:
`ClientConnectionResetError` came out of the handler as a 500. That race is not reproduced
here on purpose; this checks the calm path around it, where events keep coming after the
watcher left, and that the service logs no error for it.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ephemeral.client import Client, RecipientClient
from ephemeral.config import Settings
from tests.api.test_views import ready_media
from tests.fixtures.core import sender_token


async def test_a_watcher_leaving_mid_stream_is_not_a_500(
    make_client: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(settings)
    server = str(client.make_url("")).rstrip("/")
    media_id, tokens = await ready_media(client, settings, recipients=["bob", "carol", "dave"])
    async with Client(server, sender_token(settings)) as sender:
        stream = sender.watch(media_id)
        first = await anext(stream)
        await stream.aclose()  # the SDK's connection closes here, as when a loop breaks
    async with RecipientClient(server) as recipient:
        # Events the server now writes to nobody: the first goes into the half-closed socket
        # (and draws a reset), the next ones find the transport closing.
        for token in tokens.values():
            await recipient.peek(token)
            await asyncio.sleep(1.5)
    async with Client(server, sender_token(settings)) as sender:
        status = await sender.status(media_id)
    assert first.type == "snapshot" and status.counts["delivered"] == 3
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
