"""A resumed upload on S3: every part is an object of its own (never an append), all ciphertext."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
from tusclient.exceptions import TusUploadFailed

from ephemeral.config import Settings
from tests.fixtures.core import wait_state
from tests.fixtures.s3 import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY
from tests.uploads.helpers import create_two_step, upload_path
from tests.uploads.proxy import cutting_proxy
from tests.uploads.test_tus import lossless_clip, original_as_stored, tus_upload

__all__ = ["lossless_clip"]  # the module fixture, shared with test_tus


async def test_resumed_upload_on_s3(
    make_client: Any,
    settings: Settings,
    s3_bucket: tuple[str, str],
    s3_client: Any,
    lossless_clip: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
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
    data = lossless_clip.read_bytes()
    client = await make_client(settings, worker=False)
    created = await create_two_step(client, settings, len(data))
    async with cutting_proxy(client.server.port, int(len(data) * 0.4)) as proxy:
        url = f"http://127.0.0.1:{proxy.port}{upload_path(created)}"
        with pytest.raises(TusUploadFailed):
            await asyncio.to_thread(tus_upload, url, lossless_clip)
        assert await asyncio.to_thread(tus_upload, url, lossless_clip) == len(data)

    listed = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    assert len(listed) == 2
    for item in listed:
        body = s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        assert body.startswith(b"EMS1") and body[32:96] not in data
    stored, parts = await original_as_stored(settings, created["id"])
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
    assert sorted(p.key for p in parts) == sorted(
        item["Key"].removeprefix(settings.storage.s3_prefix) for item in listed
    )

    worker = await make_client(settings)
    await wait_state(worker, settings, created["id"], {"ready"}, timeout=60)
    deadline = asyncio.get_running_loop().time() + 10
    while s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) != 1:  # the parts go
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)

    token = upload_path(created).rsplit("/", 1)[1]
    lines = "\n".join(record.getMessage() for record in caplog.records)
    assert "/v1/uploads/{upload_token}" in lines
    assert token.split(".")[0] not in lines and token.split(".")[1] not in lines
