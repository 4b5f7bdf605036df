"""Helpers shared by the storage tests: payloads, feeders and readers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

from storage import Store

PART = 5 << 20  # S3's minimum part size, so multipart paths run with small objects
CHUNK = 64 << 10


class Boom(Exception):
    """Raised by a feeder mid-stream; put must let it through unchanged."""


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(size * 31 + seed).randbytes(size)


async def feed(data: bytes, step: int = 100_003) -> AsyncIterator[bytes]:
    """Yield `data` in odd-sized chunks, as a network body would arrive."""
    for pos in range(0, len(data), step):
        yield data[pos : pos + step]


async def failing_feed(data: bytes) -> AsyncIterator[bytes]:
    async for chunk in feed(data):
        yield chunk
    raise Boom("client went away")


async def stalled_feed(data: bytes, sent: asyncio.Event) -> AsyncIterator[bytes]:
    """Yield `data`, then hang until cancelled."""
    async for chunk in feed(data):
        yield chunk
    sent.set()
    await asyncio.Event().wait()
    yield b""  # pragma: no cover


async def read(store: Store, key: str, start: int = 0, end: int | None = None) -> bytes:
    chunks = [chunk async for chunk in store.get(key, start, end)]
    assert all(0 < len(chunk) <= store.chunk_size for chunk in chunks)
    return b"".join(chunks)
