"""EMS1: AES-256-GCM in 64 KiB segments, so any byte range decrypts (and authenticates) alone."""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"EMS1"
VERSION = 1
ALG_AES256GCM = 1
SEGMENT_LOG2 = 16
SEGMENT = 1 << SEGMENT_LOG2
TAG = 16
HEADER_LEN = 32
SEALED_SEGMENT = SEGMENT + TAG
# Storage reads in whole sealed segments (about 1 MiB) never leave a partial one to re-buffer.
READ_CHUNK = 16 * SEALED_SEGMENT
# Uploads are sealed in runs of about this much plaintext, one thread hop each.
BATCH = 16 * SEGMENT


class CorruptObject(Exception):
    """The ciphertext failed authentication: truncated, reordered, swapped or tampered."""


@dataclass(frozen=True)
class Header:
    nonce_prefix: bytes  # 7 random bytes, fresh for every object ever written
    object_id: bytes  # 16 bytes

    @classmethod
    def new(cls) -> Header:
        return cls(os.urandom(7), os.urandom(16))

    def pack(self) -> bytes:
        return (
            MAGIC
            + bytes([VERSION, ALG_AES256GCM, SEGMENT_LOG2, 0])
            + self.nonce_prefix
            + b"\x00"
            + self.object_id
        )

    @classmethod
    def parse(cls, data: bytes) -> Header:
        if len(data) < HEADER_LEN or data[:4] != MAGIC:
            raise CorruptObject("not an EMS1 object")
        if data[4:8] != bytes([VERSION, ALG_AES256GCM, SEGMENT_LOG2, 0]) or data[15] != 0:
            raise CorruptObject("unsupported EMS1 version or parameters")
        return cls(bytes(data[8:15]), bytes(data[16:32]))


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", index) + (b"\x01" if last else b"\x00")


def segment_count(plaintext_size: int) -> int:
    return max(1, -(-plaintext_size // SEGMENT))


def sealed_size(plaintext_size: int) -> int:
    return HEADER_LEN + plaintext_size + TAG * segment_count(plaintext_size)


def plaintext_size(sealed: int) -> int:
    body = sealed - HEADER_LEN
    if body < TAG:
        raise CorruptObject("object too short")
    segments = -(-body // SEALED_SEGMENT)
    return body - TAG * segments


class Sealer:
    """Incremental encryption: feed plaintext, get whole sealed segments back.

    A segment is only sealed once more data follows it (or at finish), because the last
    segment carries the last-flag in its nonce: truncation then fails authentication.
    Segments are encrypted straight into one output buffer per call, and the work releases
    the GIL, so callers run it in a thread beside the socket reads.
    """

    def __init__(self, key: bytes, header: Header | None = None) -> None:
        self.header = header or Header.new()
        self._aad = self.header.pack()
        self._aead = AESGCM(key)
        self._carry = b""  # at most one segment of plaintext, waiting for what follows it
        self._index = 0
        self.plaintext_bytes = 0

    def start(self) -> bytes:
        return self._aad

    def update(self, data: bytes | bytearray) -> bytearray:
        self.plaintext_bytes += len(data)
        return self._seal_through(memoryview(data), last=False)

    def finish(self) -> bytearray:
        return self._seal_through(memoryview(b""), last=True)

    def _seal_through(self, data: memoryview, last: bool) -> bytearray:
        carry = self._carry
        pending = len(carry) + len(data)
        if last:  # everything, as at least one segment: an empty object has one empty segment
            count = max(1, -(-pending // SEGMENT))
        else:  # strictly more than a segment: the last one waits, it may be the final segment
            count = max(0, (pending - 1) // SEGMENT)
        sealed_bytes = min(pending, count * SEGMENT)
        out = bytearray(sealed_bytes + TAG * count)
        with memoryview(out) as target:
            pos = 0  # into data
            for n in range(count):
                if n == 0 and carry:  # the one segment that straddles two calls: 64 KiB copied
                    pos = min(len(data), SEGMENT - len(carry))
                    segment: bytes | memoryview = carry + data[:pos]
                else:
                    segment, pos = data[pos : pos + SEGMENT], pos + SEGMENT
                at = n * SEALED_SEGMENT
                self._seal_into(
                    segment, n == count - 1 and last, target[at : at + len(segment) + TAG]
                )
            if count == 0:
                self._carry = carry + data
            else:
                self._carry = bytes(data[pos:]) if not last else b""
        return out

    def _seal_into(self, segment: bytes | memoryview, last: bool, target: memoryview) -> None:
        nonce = _nonce(self.header.nonce_prefix, self._index, last)
        self._index += 1
        self._aead.encrypt_into(nonce, segment, self._aad, target)


async def seal_chunks(
    sealer: Sealer,
    chunks: AsyncIterable[bytes],
    observe: Callable[[bytes], None] | None = None,
) -> AsyncIterator[bytes | bytearray]:
    """Encrypt an async stream of plaintext chunks into an EMS1 byte stream.

    Chunks are gathered into runs of about BATCH bytes, each sealed (and first shown to
    `observe`, e.g. a content hash) in one thread hop: the event loop only collects bytes."""
    loop = asyncio.get_running_loop()

    def seal(run: list[bytes]) -> bytearray:
        data = run[0] if len(run) == 1 else b"".join(run)
        if observe is not None:
            observe(data)
        return sealer.update(data)

    yield sealer.start()
    run: list[bytes] = []
    size = 0
    async for chunk in chunks:
        run.append(chunk)
        size += len(chunk)
        if size >= BATCH:
            yield await loop.run_in_executor(None, seal, run)
            run, size = [], 0
    if run:
        yield await loop.run_in_executor(None, seal, run)
    yield sealer.finish()


def seal_bytes(key: bytes, data: bytes, header: Header | None = None) -> bytes:
    sealer = Sealer(key, header)
    return sealer.start() + sealer.update(data) + sealer.finish()


@dataclass(frozen=True)
class SealedRange:
    """Which ciphertext bytes hold plaintext [start, end), and how to trim the decrypted run."""

    first_segment: int
    cipher_start: int
    cipher_end: int
    skip: int  # plaintext bytes to drop from the first decrypted segment
    length: int  # plaintext bytes to emit in all


def locate(start: int, end: int, size: int) -> SealedRange:
    """Map a plaintext range of an object of plaintext `size` onto its sealed segments."""
    if not 0 <= start <= end <= size:
        raise ValueError("range outside the object")
    first = start // SEGMENT
    last = max(first, (end - 1) // SEGMENT) if end > start else first
    total = segment_count(size)
    last = min(last, total - 1)
    cipher_start = HEADER_LEN + first * SEALED_SEGMENT
    cipher_end = min(HEADER_LEN + (last + 1) * SEALED_SEGMENT, sealed_size(size))
    return SealedRange(first, cipher_start, cipher_end, start - first * SEGMENT, end - start)


class Opener:
    """Decrypts consecutive sealed segments of one object, verifying each tag before output.

    Each call decrypts straight into one fresh buffer (no per-segment bytes, no join), and
    the work releases the GIL, so callers run it in a thread beside the socket writes."""

    def __init__(self, key: bytes, header_bytes: bytes, size: int, first_segment: int) -> None:
        self._header = Header.parse(header_bytes)
        self._aad = header_bytes[:HEADER_LEN]
        self._aead = AESGCM(key)
        self._last_index = segment_count(size) - 1
        self._index = first_segment
        self._carry = b""  # a partial sealed segment waiting for the rest of its bytes

    def update(self, data: bytes) -> bytearray:
        """The plaintext of every whole sealed segment so far; a partial one waits."""
        if self._carry:  # storage reads come in whole segments, so this is rare
            data, self._carry = self._carry + data, b""
        whole = len(data) // SEALED_SEGMENT * SEALED_SEGMENT
        self._carry = bytes(data[whole:])
        return self._open_all(memoryview(data)[:whole])

    def finish(self) -> bytearray:
        """The short last segment, if the object ends in one."""
        carry, self._carry = self._carry, b""
        return self._open_all(memoryview(carry)) if carry else bytearray()

    def _open_all(self, sealed: memoryview) -> bytearray:
        count = -(-len(sealed) // SEALED_SEGMENT)
        if count and len(sealed) - (count - 1) * SEALED_SEGMENT < TAG:
            raise CorruptObject("object truncated inside a tag")
        out = bytearray(len(sealed) - TAG * count)
        with memoryview(out) as target:
            for n in range(count):
                segment = sealed[n * SEALED_SEGMENT : (n + 1) * SEALED_SEGMENT]
                self._open_into(segment, target[n * SEGMENT : n * SEGMENT + len(segment) - TAG])
        return out

    def _open_into(self, sealed: memoryview, target: memoryview) -> None:
        last = self._index == self._last_index
        nonce = _nonce(self._header.nonce_prefix, self._index, last)
        self._index += 1
        try:
            self._aead.decrypt_into(nonce, sealed, self._aad, target)
        except InvalidTag as exc:
            raise CorruptObject("segment failed authentication") from exc


async def open_range(
    opener: Opener, skip: int, length: int, opened: AsyncIterator[bytes | bytearray]
) -> AsyncGenerator[bytearray, None]:
    """Emit exactly `length` plaintext bytes after the first `skip` of a located run.

    `opened` carries the run's Opener.update outputs in order: whoever reads the ciphertext
    decrypts it in the same thread (Store.get's transform), so this only trims."""
    remaining = length

    def trim(plain: bytes | bytearray) -> bytearray:
        nonlocal skip, remaining
        if not isinstance(plain, bytearray):  # raw bytes: a store that skipped the transform
            raise TypeError("open_range takes Opener.update's output, never stored bytes")
        if skip and plain:  # the first segment's output; a short read may have none yet
            del plain[:skip]  # O(1): CPython moves the start of a bytearray
            skip = 0
        if len(plain) > remaining:
            del plain[remaining:]
        remaining -= len(plain)
        return plain

    async for plain in opened:
        out = trim(plain)
        if out:
            yield out
        if remaining <= 0:
            return
    out = trim(opener.finish())
    if out:
        yield out
    if remaining > 0:
        raise CorruptObject("object shorter than its recorded size")


def open_bytes(key: bytes, sealed: bytes) -> bytes:
    """Decrypt a whole EMS1 object held in memory (small objects and tests)."""
    size = plaintext_size(len(sealed))
    opener = Opener(key, sealed[:HEADER_LEN], size, 0)
    return bytes(opener.update(sealed[HEADER_LEN:]) + opener.finish())
