"""tus 1.0 on the upload URL: a dropped connection resumes, with tuspy, to the same bytes."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from tusclient.exceptions import TusUploadFailed
from tusclient.uploader.uploader import Uploader

from ephemeral.config import Settings
from ephemeral.crypto import ems1
from ephemeral.crypto import keys as kc
from ephemeral.crypto.ems1 import SEGMENT
from ephemeral.services import open_services
from ephemeral.state import typed
from ephemeral.state.uploads import UploadRepo
from tests.api.helpers import problem
from tests.api.test_lifecycle import stored_blobs
from tests.fixtures.clips import make_clip
from tests.fixtures.core import auth, jpeg_bytes, wait_state
from tests.fixtures.processes import api_processes
from tests.uploads.helpers import create_two_step, media_record, upload_path
from tests.uploads.proxy import cutting_proxy

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="module")
def lossless_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few MiB of real video (lossless H.264): dozens of 64 KiB segments to cut between."""
    path = tmp_path_factory.mktemp("tus") / "clip.mp4"
    return make_clip(path, 2, size="640x480", extra=("-qp", "0"))


def tus_upload(url: str, path: Path, chunk_size: int | None = None) -> int:
    """tuspy against a known upload URL (no tus creation): HEAD for the offset, then PATCH."""
    options: dict[str, Any] = {"chunk_size": chunk_size} if chunk_size else {}
    with path.open("rb") as stream:
        uploader = Uploader(file_stream=stream, url=url, **options)
        uploader.upload()
        offset: int = uploader.offset
        return offset


async def original_as_stored(settings: Settings, media_id: str) -> tuple[bytes, list[Any]]:
    """The service's own code decrypts the stored parts, as the worker will read them."""
    async with open_services(settings) as svc:
        record = await typed.hgetall(svc.redis, svc.keys.media(media_id))
        parts = await UploadRepo(svc.redis, svc.scripts, svc.keys, svc.media).parts(
            media_id, record
        )
        epoch = int(record["epoch"])
        kek = svc.keyring.get(epoch)
        assert kek is not None
        dek = kc.unwrap(kek, kc.unb64(record["kek"]), kc.kek_context(media_id, epoch))
        data = await svc.vault.read_parts(parts, dek, int(record["orig_size"]))
        return data, parts


@pytest.mark.parametrize("cut_at", [0.40, 0.99])
async def test_resume_after_a_dropped_connection(
    make_client: Any, settings: Settings, redis: Redis, lossless_clip: Path, cut_at: float
) -> None:
    data = lossless_clip.read_bytes()
    assert len(data) > 16 * SEGMENT
    client = await make_client(settings, worker=False)  # the original is checked before processing
    created = await create_two_step(client, settings, len(data))
    server = f"http://127.0.0.1:{client.server.port}"
    cut_after = int(len(data) * cut_at)  # the request's headers count too: a little less body

    async with cutting_proxy(client.server.port, cut_after) as proxy:
        url = f"http://127.0.0.1:{proxy.port}{upload_path(created)}"
        with pytest.raises(TusUploadFailed):
            await asyncio.to_thread(tus_upload, url, lossless_clip)
        assert proxy.cut.is_set()
        head = await client.head(upload_path(created), headers=TUS)
        offset = int(head.headers["Upload-Offset"])
        assert 0 < offset <= cut_after and offset % SEGMENT == 0  # whole segments only
        # Lost: the partial segment, and what aiohttp had buffered but not handed over yet.
        assert cut_after - offset < 4 * SEGMENT
        assert (await media_record(redis, settings, created["id"]))["state"] == "awaiting_upload"
        assert await asyncio.to_thread(tus_upload, url, lossless_clip) == len(data)

    stored, parts = await original_as_stored(settings, created["id"])
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
    assert [p.size for p in parts] == [offset, len(data) - offset]
    headers = [ems1.Header.parse(kc.unb64(p.header)) for p in parts]
    assert len({h.nonce_prefix for h in headers}) == len({h.object_id for h in headers}) == 2

    async with client.session.put(
        f"{server}{upload_path(created)}", data=io.BytesIO(data)
    ) as again:
        await problem(again, 409, "upload-used")
    worker = await make_client(settings)  # a second process with a worker picks the job up
    body = await wait_state(worker, settings, created["id"], {"ready"}, timeout=60)
    assert body["kind"] == "video" and body["duration"] == pytest.approx(2.0, abs=0.2)


async def test_chunks_that_do_not_end_on_a_segment(
    make_client: Any, settings: Settings, lossless_clip: Path
) -> None:
    """The server keeps whole segments of every PATCH and tuspy follows its Upload-Offset."""
    data = lossless_clip.read_bytes()
    client = await make_client(settings, worker=False)
    created = await create_two_step(client, settings, len(data))
    url = f"http://127.0.0.1:{client.server.port}{upload_path(created)}"
    assert await asyncio.to_thread(tus_upload, url, lossless_clip, 300_000) == len(data)
    stored, parts = await original_as_stored(settings, created["id"])
    assert stored == data and len(parts) >= 4
    assert all(p.size % SEGMENT == 0 for p in parts[:-1])


async def test_protocol_headers_and_refusals(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    photo = jpeg_bytes()
    created = await create_two_step(client, settings, len(photo))
    path = upload_path(created)
    options = await client.options(path)
    assert options.status == 204 and options.headers["Tus-Version"] == "1.0.0"
    assert options.headers["Tus-Extension"] == "expiration,termination"
    assert int(options.headers["Tus-Max-Size"]) == settings.limits.max_video_bytes
    head = await client.head(path, headers=TUS)
    assert head.status == 200 and head.headers["Tus-Resumable"] == "1.0.0"
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == str(len(photo))
    assert head.headers["Upload-Expires"].endswith(" GMT")
    assert head.headers["Cache-Control"] == "no-store"

    wrong = await client.head(path, headers={"Tus-Resumable": "0.2.2"})
    assert wrong.status == 412 and wrong.headers["Tus-Version"] == "1.0.0"
    patch = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    bad_type = await client.patch(path, data=photo, headers={**patch, "Content-Type": "image/jpeg"})
    await problem(bad_type, 415, "unsupported-media-type")
    assert bad_type.headers["Tus-Resumable"] == "1.0.0"
    offset = await client.patch(path, data=photo, headers={**patch, "Upload-Offset": "5"})
    await problem(offset, 409, "upload-offset-mismatch")
    assert offset.headers["Upload-Offset"] == "0"
    junk = await client.patch(path, data=b"\x00" * len(photo), headers=patch)
    await problem(junk, 415, "unsupported-media-type")
    long = await client.patch(path, data=photo + b"x", headers=patch)
    await problem(long, 413, "payload-too-large")

    done = await client.patch(path, data=photo, headers=patch)
    assert done.status == 204 and done.headers["Upload-Offset"] == str(len(photo))
    assert "Upload-Expires" not in done.headers
    after = await client.head(path, headers=TUS)
    assert after.headers["Upload-Offset"] == str(len(photo))
    await problem(await client.put(path, data=photo), 409, "upload-used")
    await problem(await client.delete(path, headers=TUS), 409, "upload-used")
    await wait_state(client, settings, created["id"], {"ready"})


async def test_termination_unsends_and_purges_the_parts(
    client: TestClient[Any, Any], settings: Settings, redis: Redis, lossless_clip: Path
) -> None:
    data = lossless_clip.read_bytes()
    created = await create_two_step(client, settings, len(data))
    path = upload_path(created)
    headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    first = await client.patch(path, data=io.BytesIO(data[: 3 * SEGMENT + 10]), headers=headers)
    assert first.status == 204 and first.headers["Upload-Offset"] == str(3 * SEGMENT)
    assert len(stored_blobs(settings)) == 1

    gone = await client.delete(path, headers=TUS)
    assert gone.status == 204 and gone.headers["Tus-Resumable"] == "1.0.0"
    body = await wait_state(client, settings, created["id"], {"revoked"}, purged=True)
    assert body["counts"]["revoked"] == 1
    assert stored_blobs(settings) == []
    assert "uwk" not in await media_record(redis, settings, created["id"])
    assert (await client.head(path, headers=TUS)).status == 410  # a HEAD answer has no body


async def test_a_partial_upload_expires_and_its_parts_are_purged(
    make_client: Any, settings: Settings, redis: Redis, lossless_clip: Path
) -> None:
    settings = dataclasses.replace(
        settings, limits=dataclasses.replace(settings.limits, upload_ttl=2)
    )
    client = await make_client(settings)
    data = lossless_clip.read_bytes()
    created = await create_two_step(client, settings, len(data))
    path = upload_path(created)
    headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    first = await client.patch(path, data=io.BytesIO(data[: 2 * SEGMENT]), headers=headers)
    assert first.status == 204 and len(stored_blobs(settings)) == 1
    await problem(await client.put(path, data=io.BytesIO(data)), 409, "upload-used")

    body = await wait_state(client, settings, created["id"], {"failed"}, purged=True)
    assert body["error"]["code"] == "upload-expired"
    assert stored_blobs(settings) == []
    assert (await client.head(path, headers=TUS)).status == 410
    more = {**headers, "Upload-Offset": str(2 * SEGMENT)}
    await problem(
        await client.patch(path, data=io.BytesIO(data[2 * SEGMENT :]), headers=more),
        410,
        "upload-expired",
    )


async def test_one_writer_at_a_time(
    client: TestClient[Any, Any], settings: Settings, lossless_clip: Path
) -> None:
    """A second PATCH while the first is still sending is refused; the first completes."""
    data = lossless_clip.read_bytes()
    created = await create_two_step(client, settings, len(data))
    path = upload_path(created)
    headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    started, refused = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield data[:SEGMENT]
        started.set()
        await refused.wait()  # still mid-body while the second PATCH is answered
        yield data[SEGMENT:]

    async def second() -> Any:
        await started.wait()
        await asyncio.sleep(0.2)
        response = await client.patch(path, data=io.BytesIO(data), headers=headers)
        refused.set()
        return response

    length = {"Content-Length": str(len(data))}
    first, other = await asyncio.gather(
        client.patch(path, data=slow_body(), headers={**headers, **length}), second()
    )
    await problem(other, 409, "upload-in-progress")
    assert other.headers["Retry-After"] == "1" and other.headers["Tus-Resumable"] == "1.0.0"
    assert first.status == 204 and first.headers["Upload-Offset"] == str(len(data))


async def test_resume_against_a_serve_process(settings: Settings, lossless_clip: Path) -> None:
    """The same, against `python -m ephemeral serve` (the production server settings)."""
    data = lossless_clip.read_bytes()
    with api_processes(settings, 1) as (base,):
        port = int(base.rsplit(":", 1)[1])
        async with ClientSession() as session:
            meta = {"recipients": ["bob"], "size": len(data)}
            async with session.post(f"{base}/v1/media", json=meta, headers=auth(settings)) as r:
                assert r.status == 201
                created = await r.json()
            async with cutting_proxy(port, int(len(data) * 0.4)) as proxy:
                url = f"http://127.0.0.1:{proxy.port}{upload_path(created)}"
                with pytest.raises(TusUploadFailed):
                    await asyncio.to_thread(tus_upload, url, lossless_clip)
                async with session.head(base + upload_path(created), headers=TUS) as head:
                    offset = int(head.headers["Upload-Offset"])
                assert 0 < offset and offset % SEGMENT == 0
                assert await asyncio.to_thread(tus_upload, url, lossless_clip) == len(data)
    stored, parts = await original_as_stored(settings, created["id"])
    assert stored == data and [p.size for p in parts] == [offset, len(data) - offset]
