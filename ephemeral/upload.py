"""Reading a one-step multipart upload: part order, field limits, byte caps and a minimum rate."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, MultipartReader
from aiohttp.http_exceptions import HttpProcessingError

from ephemeral.config import LimitSettings
from ephemeral.errors import ServiceError
from ephemeral.media.sniff import SNIFF_BYTES, Sniffed, sniff

FIELD_LIMIT = 64 * 1024
MAX_PARTS = 4
CHUNK = 256 * 1024
ACCEPTED_KINDS = ("image", "video", "audio")


def too_large(limit: int) -> ServiceError:
    return ServiceError(413, "payload-too-large", f"the file is limited to {limit} bytes")


def kind_limit(limits: LimitSettings, kind: str) -> int:
    return {
        "image": limits.max_image_bytes,
        "video": limits.max_video_bytes,
        "audio": limits.max_audio_bytes,
    }[kind]


def max_body(limits: LimitSettings) -> int:
    """The largest body any accepted kind allows, with room for the meta and the framing."""
    largest = max(kind_limit(limits, kind) for kind in ACCEPTED_KINDS)
    return largest + MAX_PARTS * FIELD_LIMIT + 16 * 1024


class RateGuard:
    """An upload must finish by its deadline and keep a minimum average rate over a window."""

    def __init__(self, limits: LimitSettings) -> None:
        self.limits = limits
        self.started = time.monotonic()
        self.window_start = self.started
        self.window_bytes = 0

    def timeout(self) -> float:
        left = self.limits.upload_deadline - (time.monotonic() - self.started)
        if left <= 0:
            raise ServiceError(408, "request-timeout", "the upload did not finish in time")
        return min(left, self.limits.upload_rate_window)

    def account(self, nbytes: int) -> None:
        now = time.monotonic()
        self.window_bytes += nbytes
        elapsed = now - self.window_start
        if elapsed >= self.limits.upload_rate_window:
            if self.window_bytes / elapsed < self.limits.upload_min_rate:
                raise ServiceError(408, "request-timeout", "the upload is too slow")
            self.window_start, self.window_bytes = now, 0


async def read_chunk(part: BodyPartReader, guard: RateGuard, size: int = CHUNK) -> bytes:
    try:
        async with asyncio.timeout(guard.timeout()):
            chunk = await part.read_chunk(size)
    except TimeoutError:
        raise ServiceError(408, "request-timeout", "the upload stalled") from None
    guard.account(len(chunk))
    return chunk


async def read_field(part: BodyPartReader, guard: RateGuard) -> bytes:
    data = bytearray()
    while chunk := await read_chunk(part, guard):
        data += chunk
        if len(data) > FIELD_LIMIT:
            raise ServiceError(
                400, "bad-request", f"a form field is limited to {FIELD_LIMIT} bytes"
            )
    return bytes(data)


async def next_part(reader: MultipartReader) -> BodyPartReader | None:
    try:
        part = await reader.next()
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError):
        # HttpProcessingError: a part header aiohttp refuses (control characters, bad bytes)
        raise ServiceError(400, "bad-request", "malformed multipart body") from None
    if part is None:
        return None
    if not isinstance(part, BodyPartReader):
        raise ServiceError(400, "bad-request", "nested multipart is not accepted")
    return part


async def read_meta(reader: MultipartReader, guard: RateGuard) -> Any:
    part = await next_part(reader)
    if part is None or part.name != "meta":
        raise ServiceError(400, "bad-request", "the first part must be 'meta' (JSON)")
    raw = await read_field(part, guard)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ServiceError(400, "bad-request", "the meta part is not valid JSON") from None


async def find_file(reader: MultipartReader, guard: RateGuard) -> BodyPartReader:
    """Skip (bounded) extra fields after meta; the file part must come last."""
    for _ in range(MAX_PARTS - 1):
        part = await next_part(reader)
        if part is None:
            break
        if part.name == "file":
            return part
        if part.name == "meta":
            raise ServiceError(400, "bad-request", "meta may appear only once")
        await read_field(part, guard)
    raise ServiceError(400, "bad-request", "a 'file' part is required, as the last part")


@dataclass
class IncomingFile:
    sniffed: Sniffed
    head: bytes
    part: BodyPartReader
    limit: int
    guard: RateGuard
    received: int = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes as they arrive, never more than the kind's cap."""
        self.received = len(self.head)
        yield self.head
        while chunk := await read_chunk(self.part, self.guard):
            self.received += len(chunk)
            if self.received > self.limit:
                raise too_large(self.limit)
            yield chunk


async def open_file(part: BodyPartReader, limits: LimitSettings, guard: RateGuard) -> IncomingFile:
    """Read just enough to decide the type from the magic bytes, before anything is stored."""
    head = bytearray()
    while len(head) < SNIFF_BYTES:
        chunk = await read_chunk(part, guard, SNIFF_BYTES)
        if not chunk:
            break
        head += chunk
    sniffed = sniff(bytes(head))
    if sniffed is None:
        raise ServiceError(
            415, "unsupported-media-type", "the file is not a supported photo, video or voice note"
        )
    if sniffed.kind not in ACCEPTED_KINDS:
        raise ServiceError(
            415, "unsupported-media-type", f"{sniffed.kind} uploads are not enabled here"
        )
    limit = kind_limit(limits, sniffed.kind)
    if len(head) > limit:
        raise too_large(limit)
    return IncomingFile(sniffed, bytes(head), part, limit, guard)


async def expect_end(reader: MultipartReader) -> None:
    if await next_part(reader) is not None:
        raise ServiceError(400, "bad-request", "the file part must be the last part")
