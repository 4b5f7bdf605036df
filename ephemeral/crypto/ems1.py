"""EMS1: AES-256-GCM in 64 KiB segments, so any byte range decrypts (and authenticates) alone."""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterable, AsyncIterator, Iterator
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
    """

    def __init__(self, key: bytes, header: Header | None = None) -> None:
        self.header = header or Header.new()
        self._aad = self.header.pack()
        self._aead = AESGCM(key)
        self._buffer = bytearray()
        self._index = 0
        self.plaintext_bytes = 0

    def start(self) -> bytes:
        return self._aad

    def update(self, data: bytes) -> bytes:
        self.plaintext_bytes += len(data)
        buffer = self._buffer
        buffer += data  # one copy into a reused buffer; fresh large allocations page-fault
        sealed, pos = [], 0
        with memoryview(buffer) as view:
            # Strictly more than a segment: the last one waits, it may be the final segment.
            while len(buffer) - pos > SEGMENT:
                sealed.append(self._seal(view[pos : pos + SEGMENT], last=False))
                pos += SEGMENT
        del buffer[:pos]  # O(1): CPython moves the start of a bytearray
        return b"".join(sealed)

    def finish(self) -> bytes:
        sealed = self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()
        return sealed

    def _seal(self, segment: bytes | memoryview, last: bool) -> bytes:
        nonce = _nonce(self.header.nonce_prefix, self._index, last)
        self._index += 1
        return self._aead.encrypt(nonce, segment, self._aad)


async def seal_chunks(sealer: Sealer, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Encrypt an async stream of plaintext chunks into an EMS1 byte stream."""
    yield sealer.start()
    async for chunk in chunks:
        sealed = sealer.update(chunk)
        if sealed:
            yield sealed
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
    """Decrypts consecutive sealed segments of one object, verifying each tag before output."""

    def __init__(self, key: bytes, header_bytes: bytes, size: int, first_segment: int) -> None:
        self._header = Header.parse(header_bytes)
        self._aad = header_bytes[:HEADER_LEN]
        self._aead = AESGCM(key)
        self._last_index = segment_count(size) - 1
        self._index = first_segment
        self._buffer = bytearray()

    def update(self, data: bytes) -> Iterator[bytes]:
        if not self._buffer:  # the usual case: whole segments, no copy at all
            view, pos = memoryview(data), 0
            while len(data) - pos >= SEALED_SEGMENT:
                yield self._open(view[pos : pos + SEALED_SEGMENT])
                pos += SEALED_SEGMENT
            self._buffer += view[pos:]
            return
        buffer = self._buffer
        buffer += data
        opened, pos = [], 0
        with memoryview(buffer) as view:
            while len(buffer) - pos >= SEALED_SEGMENT:
                opened.append(self._open(view[pos : pos + SEALED_SEGMENT]))
                pos += SEALED_SEGMENT
        del buffer[:pos]
        yield from opened

    def finish(self) -> Iterator[bytes]:
        if self._buffer:
            yield self._open(bytes(self._buffer))
            self._buffer.clear()

    def _open(self, sealed: bytes | memoryview) -> bytes:
        last = self._index == self._last_index
        nonce = _nonce(self._header.nonce_prefix, self._index, last)
        self._index += 1
        try:
            return self._aead.decrypt(nonce, sealed, self._aad)
        except InvalidTag as exc:
            raise CorruptObject("segment failed authentication") from exc


async def open_range(
    key: bytes,
    header_bytes: bytes,
    size: int,
    start: int,
    end: int,
    read: AsyncIterator[bytes],
    first_segment: int,
    skip: int,
) -> AsyncIterator[bytes]:
    """Decrypt a located ciphertext run (from `read`) and emit exactly plaintext [start, end)."""
    opener = Opener(key, header_bytes, size, first_segment)
    remaining = end - start

    def trim(plain: bytes) -> bytes:
        nonlocal skip, remaining
        if skip:
            plain = plain[skip:]
            skip = 0
        if len(plain) > remaining:  # slicing copies: only when the range ends inside
            plain = plain[:remaining]
        remaining -= len(plain)
        return plain

    async for chunk in read:
        out = b"".join(trim(plain) for plain in opener.update(chunk))
        if out:
            yield out
        if remaining <= 0:
            return
    out = b"".join(trim(plain) for plain in opener.finish())
    if out:
        yield out
    if remaining > 0:
        raise CorruptObject("object shorter than its recorded size")


def open_bytes(key: bytes, sealed: bytes) -> bytes:
    """Decrypt a whole EMS1 object held in memory (small objects and tests)."""
    size = plaintext_size(len(sealed))
    opener = Opener(key, sealed[:HEADER_LEN], size, 0)
    out = b"".join(opener.update(sealed[HEADER_LEN:]))
    return out + b"".join(opener.finish())
