"""Webhooks per tenant: each tenant's events go to its own endpoints, signed with its secrets,
with its own retry schedule."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from ephemeral.config import Settings
from ephemeral.state.keys import Keys
from tests.api.tenant_helpers import A1, B1, create, key, two_tenants
from tests.events.test_webhooks import eventually
from tests.fixtures.core import AppClient
from tests.fixtures.https import SECRETS, Receiver, hook_settings

SECRET_B = "whsec_c2Vjb25kLXRlbmFudC1zZWNyZXQtMDEyMzQ1"


async def test_each_tenant_gets_its_own_events_signed_with_its_own_secret(
    make_client: AppClient, settings: Settings, redis: Redis, receiver: Receiver, ca_file: Path
) -> None:
    settings = two_tenants(settings)
    a, b = settings.tenants
    settings = dataclasses.replace(
        settings,
        # Delivery settings (CA, retries) stay deployment-wide; endpoints are per tenant.
        webhooks=dataclasses.replace(hook_settings(receiver, ca_file), urls="", secrets=""),
        tenants=(
            dataclasses.replace(a, webhook_urls=(receiver.url("/a"),), webhook_secrets=SECRETS),
            dataclasses.replace(b, webhook_urls=(receiver.url("/b"),), webhook_secrets=(SECRET_B,)),
        ),
    )
    receiver.answer(500, "/b")  # tenant B's endpoint is down at first
    client = await make_client(settings)  # its worker relays, and dispatches per tenant
    k = Keys(settings.redis.prefix)
    in_a = await create(client, key(A1), {"recipients": ["bob"], "on_behalf_of": "alice"})
    in_b = await create(client, key(B1), {"recipients": ["bob"], "on_behalf_of": "alice"})
    await receiver.wait_for(lambda: len(receiver.delivered("/a")) >= 1, timeout=30)
    await eventually(lambda: redis.zcard(k.webhook_retries("b")), 1)
    assert await redis.zcard(k.webhook_retries("a")) == 0
    receiver.answer(200, "/b")
    await receiver.wait_for(lambda: len(receiver.delivered("/b")) >= 1)
    await eventually(lambda: redis.zcard(k.webhook_retries("b")), 0)
    for path, media, secrets, other in (
        ("/a", in_a, SECRETS, (SECRET_B,)),
        ("/b", in_b, (SECRET_B,), SECRETS),
    ):
        for hit in receiver.delivered(path):
            bodies = [Webhook(secret).verify(hit.body, hit.headers) for secret in secrets]
            body: dict[str, Any] = json.loads(hit.body)
            assert all(b == body for b in bodies)
            assert body["data"]["media_id"] == media["id"]
            assert body["data"]["tenant"] == path[1:]
            for secret in other:
                with pytest.raises(WebhookVerificationError):
                    Webhook(secret).verify(hit.body, hit.headers)
