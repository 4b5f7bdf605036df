"""The two-step upload's script calls stay in the media's Redis Cluster slot."""

from __future__ import annotations

from typing import Any

import pytest
from redis.crc import key_slot

from ephemeral.config import Settings
from ephemeral.state.scripts import Scripts
from tests.fixtures.core import jpeg_bytes, wait_state
from tests.uploads.helpers import create_two_step, upload_path


async def test_upload_scripts_hash_to_one_slot(
    make_client: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, list[str]]] = []
    original = Scripts.run

    async def recording(self: Scripts, name: str, keys: list[str], args: list[Any]) -> list[str]:
        calls.append((name, list(keys)))
        return await original(self, name, keys, args)

    monkeypatch.setattr(Scripts, "run", recording)
    client = await make_client(settings)
    photo = jpeg_bytes()
    created = await create_two_step(client, settings, len(photo))
    assert (await client.head(upload_path(created), headers={"Tus-Resumable": "1.0.0"})).ok
    assert (await client.put(upload_path(created), data=photo)).status == 202
    await wait_state(client, settings, created["id"], {"ready"})
    seen = {name for name, _ in calls}
    assert {"create", "upload_claim", "upload_commit", "mark_ready"} <= seen
    for name, keys in calls:
        assert len({key_slot(k.encode()) for k in keys}) == 1, (name, keys)
