"""The arq jobs: normalise an upload, purge a media. Ids-only arguments; idempotent."""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ephemeral.config import Settings
from ephemeral.crypto import keys as kc
from ephemeral.crypto.ems1 import CorruptObject
from ephemeral.media.box import BoxLimits
from ephemeral.media.errors import MediaRejected
from ephemeral.media.photo import PhotoLimits, normalise_photo
from ephemeral.services import Services
from ephemeral.state import typed
from ephemeral.vault import new_object_key
from storage.base import StorageError

log = logging.getLogger("workers.jobs")
TRANSIENT = (StorageError, RedisConnectionError, RedisTimeoutError, OSError)


def services(ctx: dict[str, Any]) -> Services:
    svc: Services = ctx["services"]
    return svc


def photo_limits(settings: Settings) -> PhotoLimits:
    """The box hides what the service keeps on disk: keys, the data dir, the JWT key."""
    hidden = (settings.keyring_path, settings.data_dir, settings.jwt_key_path)
    box = BoxLimits(
        memory_bytes=settings.worker.box_memory_bytes,
        tmpfs_bytes=settings.worker.box_tmpfs_bytes,
        wall_seconds=settings.worker.job_timeout * 0.8,
        hidden=tuple(str(path.resolve()) for path in hidden),
    )
    return PhotoLimits(
        max_pixels=settings.limits.max_image_pixels,
        max_side=settings.limits.max_image_side,
        box=box,
    )


async def normalise(ctx: dict[str, Any], media_id: str) -> str:
    svc = services(ctx)
    try:
        return await _normalise(svc, media_id)
    except TRANSIENT as exc:
        if ctx.get("job_try", 1) >= svc.settings.worker.max_tries:
            await svc.lifecycle.fail(media_id, "processing-failed", "storage kept failing")
            return "failed"
        log.warning("normalise retry after %s", type(exc).__name__)
        raise Retry(defer=ctx.get("job_try", 1) * 2) from exc


async def _normalise(svc: Services, media_id: str) -> str:
    record = await typed.hgetall(svc.redis, svc.keys.media(media_id))
    if record.get("state") != "processing":
        return "skipped"  # done already, unsent, failed or purged: nothing to do
    kek = svc.keyring.get(int(record.get("epoch") or -1))
    if kek is None or not record.get("kek"):
        await svc.lifecycle.fail(media_id, "processing-failed", "the key epoch was retired")
        return "failed"
    dek = kc.unwrap(kek, kc.unb64(record["kek"]), kc.kek_context(media_id, int(record["epoch"])))
    try:
        original = await svc.vault.read_all(
            record["orig"], record["orig_hdr"], dek, int(record["orig_size"])
        )
    except CorruptObject:
        await svc.lifecycle.fail(media_id, "processing-failed", "the upload is unreadable")
        return "failed"
    try:
        output = await normalise_photo(original, photo_limits(svc.settings))
    except MediaRejected as exc:
        await svc.lifecycle.fail(media_id, exc.code, exc.detail)
        return "rejected"
    del original
    out_key = new_object_key(media_id)
    await svc.media.record_object(media_id, out_key)  # before writing: purge will find it

    async def one_chunk() -> Any:
        yield output.data

    sealed = await svc.vault.seal(out_key, dek, one_chunk())
    published = await svc.media.mark_ready(
        media_id,
        {
            "obj": sealed.key,
            "hdr": sealed.header,
            "size": sealed.size,
            "mime": output.mime,
            "kind": output.kind,
            "width": output.width,
            "height": output.height,
            "duration": "" if output.duration is None else str(output.duration),
        },
    )
    if not published:  # unsent while we worked: the output goes with the purge
        await svc.lifecycle.evaluate(media_id)
        return "refused"
    await svc.store.delete(record["orig"])
    await svc.media.release_object(media_id, record["orig"])
    return "ready"


async def purge(ctx: dict[str, Any], media_id: str) -> str:
    return await services(ctx).lifecycle.evaluate(media_id)
