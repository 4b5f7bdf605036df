"""Every script call stays in one Redis Cluster slot, including keys built from its ARGV."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from redis.crc import key_slot

from ephemeral.config import Settings
from ephemeral.state.scripts import NAMES, Scripts
from ephemeral.tenancy import new_service_key, service_key_hash
from ephemeral.web_keys import SERVICES
from tests.api.helpers import lease_auth, redeemed
from tests.api.test_idempotency import create as idempotent_create
from tests.api.test_views import ready_media
from tests.fixtures.core import auth
from workers.relay import full_scan


async def test_every_script_call_hashes_to_one_slot(
    make_client: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, list[str], list[Any]]] = []
    original = Scripts.run

    async def recording(self: Scripts, name: str, keys: list[str], args: list[Any]) -> list[str]:
        calls.append((name, list(keys), list(args)))
        return await original(self, name, keys, args)

    monkeypatch.setattr(Scripts, "run", recording)
    queue = Scripts.queue

    async def queued(self: Scripts, pipe: Any, name: str, keys: list[str], args: list[Any]) -> None:
        calls.append((name, list(keys), list(args)))  # a call in a pipeline: its own slot too
        await queue(self, pipe, name, keys, args)

    monkeypatch.setattr(Scripts, "queue", queued)
    service_key = new_service_key()  # the default tenant's backend, for the erasure
    auth_settings = dataclasses.replace(
        settings.auth, service_key_hashes=service_key_hash(service_key)
    )
    settings = dataclasses.replace(settings, auth=auth_settings)
    client = await make_client(settings)
    media_id, tokens = await ready_media(
        client, settings, recipients=["bob", "carol", "dan"], views=2
    )
    # The relay's backstop scan runs at worker start and then once a minute: it saw this media
    # only when the upload won a race with the first scan. Run it once more, on purpose.
    await full_scan(client.app[SERVICES])
    await client.post("/v1/views/peek", json={"token": tokens["bob"]})
    view = await redeemed(client, tokens["bob"])
    await client.get(f"/v1/views/{view['view_id']}/content", headers=lease_auth(view))
    await client.post(f"/v1/views/{view['view_id']}/keepalive", headers=lease_auth(view))
    shot = await client.post(
        f"/v1/views/{view['view_id']}/screenshot",
        json={"kind": "screenshot"},
        headers=lease_auth(view),
    )
    assert shot.status == 202
    await client.app[SERVICES].views.mark_previewed(tokens["carol"].split(".")[0])
    await client.delete(f"/v1/views/{view['view_id']}", headers=lease_auth(view))
    await client.delete(f"/v1/media/{media_id}/recipients/carol", headers=auth(settings))
    await client.delete(f"/v1/media/{media_id}", headers=auth(settings))
    # Idempotency-Key: claim, link, complete, a release (a refused upload) and a tombstone.
    key = "k" * 22
    created = await idempotent_create(client, settings, key, {"recipients": ["bob"]})
    refused = await idempotent_create(
        client, settings, "r" * 22, {"recipients": ["bob"]}, b"x" * 99
    )
    assert created.status == 202 and refused.status == 415
    await client.delete(f"/v1/media/{(await created.json())['id']}", headers=auth(settings))
    backend = {"Authorization": f"Bearer {service_key}"}
    for person in ("bob", "alice"):  # a recipient's receipts, then a sender's media
        assert (await client.delete(f"/v1/subjects/{person}", headers=backend)).status == 204

    await asyncio.sleep(0.5)  # the relay runs in the worker: its calls count too
    seen = {name for name, _, _ in calls}
    uploads = {"upload_claim", "upload_commit"}  # tests/uploads/test_upload_slots.py
    assert seen >= set(NAMES) - {"mark_failed"} - uploads, set(NAMES) - seen
    for name, keys, args in calls:
        slots = {key_slot(k.encode()) for k in keys}
        derived = [a for a in args if isinstance(a, str) and "{m:" in a]
        slots |= {key_slot((a + "x").encode()) for a in derived}
        assert len(slots) == 1, (name, keys, derived)
