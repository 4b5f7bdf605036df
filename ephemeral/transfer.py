"""One request body of a two-step upload (a PUT, or a tus PATCH) into one stored EMS1 part.

A PUT is all or nothing. A PATCH keeps what arrived, cut to whole 64 KiB segments: the offset
only ever advances by whole segments (the last part excepted), a partial tail is discarded and
sent again, and every part is its own EMS1 object with a fresh object id and nonce prefix, so
no (key, nonce) pair is ever reused and nothing is ever appended to a stored object.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ephemeral import upload
from ephemeral.config import LimitSettings
from ephemeral.crypto.ems1 import SEGMENT
from ephemeral.errors import ServiceError
from ephemeral.media.sniff import SNIFF_BYTES, sniff
from ephemeral.services import Services
from ephemeral.vault import StoredPart, new_object_key

log = logging.getLogger("ephemeral.transfer")
Refresh = Callable[[], Coroutine[Any, Any, None]]


def interrupted(exc: BaseException) -> bool:
    """The client went away or stalled: what arrived before may be kept (tus only)."""
    if isinstance(exc, ServiceError):
        return exc.status == 408
    return isinstance(exc, ConnectionError | asyncio.IncompleteReadError)


def lock_ms(limits: LimitSettings) -> int:
    """The upload lock outlives a stalled read: a crashed server frees it within a minute."""
    return int(max(60.0, 2 * limits.upload_rate_window) * 1000)


@dataclass
class Body:
    """The request body as it arrives, with the upload deadline, minimum rate and byte cap."""

    request: web.Request
    guard: upload.RateGuard
    remaining: int  # bytes the upload still needs: more is a 413
    refresh: Refresh  # keeps the upload lock alive during a long transfer
    received: int = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + lock_ms(self.guard.limits) / 4000
        while True:
            try:
                async with asyncio.timeout(self.guard.timeout()):
                    chunk = await self.request.content.readany()
            except TimeoutError:
                raise ServiceError(408, "request-timeout", "the upload stalled") from None
            if not chunk:
                return
            self.guard.account(len(chunk))
            self.received += len(chunk)
            if self.received > self.remaining:
                raise ServiceError(
                    413, "payload-too-large", "the body is longer than the size given at create"
                )
            if loop.time() >= next_refresh:
                await self.refresh()
                next_refresh = loop.time() + lock_ms(self.guard.limits) / 4000
            yield chunk


async def read_head(chunks: AsyncIterator[bytes]) -> bytes:
    """Enough bytes to decide the type from the magic bytes (less only if the body ends)."""
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    return bytes(head)


def check_kind(head: bytes, declared_size: int, limits: LimitSettings) -> str:
    """The same 415 and 413 as the one-step create, before any byte is stored."""
    found = sniff(head)
    if found is None:
        raise ServiceError(
            415, "unsupported-media-type", "the file is not a supported photo, video or voice note"
        )
    if found.kind not in upload.ACCEPTED_KINDS:
        raise ServiceError(
            415, "unsupported-media-type", f"{found.kind} uploads are not enabled here"
        )
    limit = upload.kind_limit(limits, found.kind)
    if declared_size > limit:
        raise upload.too_large(limit)
    return found.kind


@dataclass
class Written:
    part: StoredPart | None  # None: nothing kept (the object is already deleted)
    error: BaseException | None  # the interruption that ended a PATCH early, if any


class PartWriter:
    """Seal one body into one object; `resumable` keeps whole segments of an interrupted body."""

    def __init__(self, svc: Services, media_id: str, dek: bytes, resumable: bool) -> None:
        self.svc = svc
        self.media_id = media_id
        self.dek = dek
        self.resumable = resumable
        self.object_key = new_object_key(media_id)
        self.error: BaseException | None = None

    async def write(self, head: bytes, rest: AsyncIterator[bytes], completes_at: int) -> Written:
        """`completes_at`: the body length that would complete the upload (keeps its tail)."""
        source = self._aligned(head, rest, completes_at) if self.resumable else _chain(head, rest)
        try:
            sealed = await self.svc.vault.seal(self.object_key, self.dek, source)
        except BaseException:
            await asyncio.shield(self.discard())
            raise
        if sealed.size == 0:
            await asyncio.shield(self.discard())
            return Written(None, self.error)
        return Written(StoredPart(sealed.key, sealed.header, sealed.size), self.error)

    async def _aligned(
        self, head: bytes, rest: AsyncIterator[bytes], completes_at: int
    ) -> AsyncIterator[bytes]:
        pending = bytearray(head)
        received = len(head)
        try:
            async for chunk in rest:
                pending += chunk
                received += len(chunk)
                whole = len(pending) - len(pending) % SEGMENT
                if whole:
                    yield bytes(pending[:whole])
                    del pending[:whole]
        except Exception as exc:
            if not interrupted(exc):
                raise
            self.error = exc
        if received == completes_at and self.error is None:
            yield bytes(pending)  # the last part may end anywhere
            return
        whole = len(pending) - len(pending) % SEGMENT
        if whole:
            yield bytes(pending[:whole])  # the partial tail is dropped: the client re-sends it

    async def discard(self) -> None:
        """Nothing of this body is kept: the blob and its reservation go."""
        try:
            await self.svc.store.delete(self.object_key)
            await self.svc.media.release_object(self.media_id, self.object_key)
        except Exception as exc:  # the reservation stays: purge deletes the blob later
            log.warning("discarding a part failed: %s", type(exc).__name__)


async def _chain(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if head:
        yield head
    async for chunk in rest:
        yield chunk


def new_nonce() -> str:
    return os.urandom(16).hex()
