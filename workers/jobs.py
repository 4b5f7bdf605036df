"""The arq jobs: normalise an upload, purge a media. Ids-only arguments; idempotent."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from arq import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ephemeral.config import Settings
from ephemeral.crypto import keys as kc
from ephemeral.crypto.ems1 import CorruptObject
from ephemeral.media.av import AvLimits, normalise_av
from ephemeral.media.box import BoxLimits
from ephemeral.media.errors import MediaRejected
from ephemeral.media.photo import PhotoLimits, normalise_photo
from ephemeral.media.sniff import SNIFF_BYTES, sniff
from ephemeral.services import Services
from ephemeral.state import typed
from ephemeral.state.uploads import UploadRepo
from ephemeral.vault import SealedObject, StoredPart, new_object_key
from storage.base import StorageError
from workers.timing import timed_processing

log = logging.getLogger("workers.jobs")
TRANSIENT = (StorageError, RedisConnectionError, RedisTimeoutError, OSError)
TRANSCODES = "transcodes"  # ctx key: the semaphore bounding concurrent ffmpeg jobs


def services(ctx: dict[str, Any]) -> Services:
    svc: Services = ctx["services"]
    return svc


def _boxed(box: BoxLimits, settings: Settings) -> BoxLimits:
    """Each pipeline's own resource limits, inside the job's time, with the service's files
    (keys, the data dir, the JWT key) out of the parser's sight."""
    hidden = (settings.keyring_path, settings.data_dir, settings.jwt_key_path)
    return dataclasses.replace(
        box,
        wall_seconds=min(box.wall_seconds, settings.worker.job_timeout * 0.8),
        hidden=tuple(str(path.resolve()) for path in hidden),
    )


def photo_limits(settings: Settings) -> PhotoLimits:
    return PhotoLimits(
        max_pixels=settings.limits.max_image_pixels,
        max_side=settings.limits.max_image_side,
        box=_boxed(PhotoLimits().box, settings),
    )


def av_limits(settings: Settings) -> AvLimits:
    limits = settings.limits
    return AvLimits(
        max_duration=limits.max_duration,
        max_width=limits.max_video_width,
        max_height=limits.max_video_height,
        allow_remux=limits.allow_remux,
        box=_boxed(AvLimits().box, settings),
    )


async def normalise(ctx: dict[str, Any], media_id: str) -> str:
    async with timed_processing(services(ctx), media_id) as job:
        job.outcome = await _normalise_or_retry(ctx, media_id)
        return job.outcome


async def _normalise_or_retry(ctx: dict[str, Any], media_id: str) -> str:
    svc = services(ctx)
    try:
        return await _normalise(svc, media_id, ctx.get(TRANSCODES))
    except TRANSIENT as exc:
        if ctx.get("job_try", 1) >= svc.settings.worker.max_tries:
            await svc.lifecycle.fail(media_id, "processing-failed", "storage kept failing")
            return "failed"
        log.warning("normalise retry after %s", type(exc).__name__)
        raise Retry(defer=ctx.get("job_try", 1) * 2) from exc


async def _normalise(svc: Services, media_id: str, gate: asyncio.Semaphore | None) -> str:
    record = await typed.hgetall(svc.redis, svc.keys.media(media_id))
    if record.get("state") == "ready":  # a rerun after a crash between publish and cleanup
        await _drop_stale_objects(svc, media_id, record["obj"])
        return "skipped"
    if record.get("state") != "processing":
        return "skipped"  # unsent, failed or purged: nothing to do
    kek = svc.keyring.get(int(record.get("epoch") or -1))
    if kek is None or not record.get("kek"):
        await svc.lifecycle.fail(media_id, "processing-failed", "the key epoch was retired")
        return "failed"
    dek = kc.unwrap(kek, kc.unb64(record["kek"]), kc.kek_context(media_id, int(record["epoch"])))
    uploads = UploadRepo(svc.redis, svc.scripts, svc.keys, svc.media)
    parts = await uploads.parts(media_id, record)  # one object, or resumed parts
    out_key = new_object_key(media_id)
    await svc.media.record_object(media_id, out_key)  # before writing: purge will find it
    try:
        if record.get("kind") == "image":
            output = await _photo(svc, record, parts, dek, out_key)
        else:
            async with gate or asyncio.Semaphore(1):
                output = await _av(svc, record, parts, dek, out_key)
    except MediaRejected as exc:
        await svc.lifecycle.fail(media_id, exc.code, exc.detail)
        return "rejected"
    except CorruptObject:
        await svc.lifecycle.fail(media_id, "processing-failed", "the upload is unreadable")
        return "failed"
    if not await svc.media.mark_ready(media_id, output):
        # Unsent or purged while we worked. A purge that began meanwhile may have listed (and
        # released) our output before it was written: it is ours to delete.
        await svc.store.delete(out_key)
        await svc.media.release_object(media_id, out_key)
        await svc.lifecycle.evaluate(media_id)
        return "refused"
    await _drop_stale_objects(svc, media_id, output["obj"])
    return "ready"


async def _drop_stale_objects(svc: Services, media_id: str, keep: str) -> None:
    """The original, and whatever an attempt killed before us recorded: only the output stays."""
    recorded = await typed.smembers(svc.redis, svc.keys.objects(media_id))
    for stale in sorted(recorded - {keep}):
        await svc.store.delete(stale)
        await svc.media.release_object(media_id, stale)


def _published(sealed: SealedObject, **fields: Any) -> dict[str, Any]:
    return {"obj": sealed.key, "hdr": sealed.header, "size": sealed.size, **fields}


async def _photo(
    svc: Services, record: dict[str, str], parts: list[StoredPart], dek: bytes, out_key: str
) -> dict[str, Any]:
    original = await svc.vault.read_parts(parts, dek, int(record["orig_size"]))
    output = await normalise_photo(original, photo_limits(svc.settings))
    del original

    async def one_chunk() -> AsyncIterator[bytes]:
        yield output.data

    sealed = await svc.vault.seal(out_key, dek, one_chunk())
    return _published(
        sealed,
        mime=output.mime,
        kind=output.kind,
        width=output.width,
        height=output.height,
        duration="",
    )


async def _av(
    svc: Services, record: dict[str, str], parts: list[StoredPart], dek: bytes, out_key: str
) -> dict[str, Any]:
    """Decrypted input streams into the box and the output streams back into the vault: the
    worker never holds a whole video in memory or on disk."""
    size = int(record["orig_size"])
    head = await svc.vault.read_parts(parts, dek, SNIFF_BYTES)
    sniffed = sniff(head)
    if sniffed is None:
        raise MediaRejected("invalid-media", "the upload is not a supported media file")
    # aclosing: a box that stops reading early frees the file or S3 body (and the chunk read
    # ahead) at once, not when the generator is collected.
    async with (
        contextlib.aclosing(svc.vault.open_parts(parts, dek, 0, size)) as source,
        normalise_av(source, sniffed, av_limits(svc.settings)) as out,
    ):
        sealed = await svc.vault.seal(out_key, dek, out.chunks)
        info = out.info
    return _published(
        sealed,
        mime=info.mime,
        kind=info.kind,
        width=info.width or 0,
        height=info.height or 0,
        duration=f"{info.duration:.3f}",
    )


async def purge(ctx: dict[str, Any], media_id: str) -> str:
    return await services(ctx).lifecycle.evaluate(media_id)
