"""The same core flow on S3-compatible storage (a moto server over HTTP)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from ephemeral.config import Settings
from tests.api.helpers import lease_auth, redeemed
from tests.api.test_views import ready_media
from tests.fixtures.core import wait_state
from tests.fixtures.s3 import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY


async def test_photo_flow_on_s3_purges_the_object(
    make_client: Any, settings: Settings, s3_bucket: tuple[str, str], s3_client: Any
) -> None:
    endpoint, bucket = s3_bucket
    storage = dataclasses.replace(
        settings.storage,
        backend="s3",
        s3_bucket=bucket,
        s3_endpoint_url=endpoint,
        s3_region=S3_REGION,
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
    )
    settings = dataclasses.replace(settings, storage=storage)
    client = await make_client(settings)
    media_id, tokens = await ready_media(client, settings, recipients=["bob", "carol"])
    deadline = time.monotonic() + 10
    # The job deletes the original right after it publishes the normalised output.
    while len(listed := s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])) != 1:
        assert time.monotonic() < deadline, listed
        await asyncio.sleep(0.05)
    stored = s3_client.get_object(Bucket=bucket, Key=listed[0]["Key"])["Body"].read()
    assert stored.startswith(b"EMS1")
    for rid in ("bob", "carol"):
        view = await redeemed(client, tokens[rid])
        content = await client.get(f"/v1/views/{view['view_id']}/content", headers=lease_auth(view))
        assert (await content.read())[:2] == b"\xff\xd8"
        await client.delete(f"/v1/views/{view['view_id']}", headers=lease_auth(view))
    await wait_state(client, settings, media_id, {"purged"}, purged=True)
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
