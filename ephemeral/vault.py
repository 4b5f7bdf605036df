"""Sealing streams into storage as EMS1 objects and opening byte ranges of them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from dataclasses import dataclass

from ephemeral.crypto import ems1
from ephemeral.crypto.keys import b64, random_id, unb64
from ephemeral.read_ahead import read_ahead
from storage.base import Store


@dataclass(frozen=True)
class SealedObject:
    key: str
    header: str  # base64url of the 32-byte EMS1 header (not secret; bound into every tag)
    size: int  # plaintext bytes
    stored: int  # ciphertext bytes


@dataclass(frozen=True)
class StoredPart:
    """One EMS1 object holding plaintext bytes [offset, offset + size) of a larger original."""

    key: str
    header: str
    size: int


def new_object_key(media_id: str) -> str:
    return f"{media_id}/{random_id(12)}"


class Vault:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def seal(
        self,
        object_key: str,
        dek: bytes,
        chunks: AsyncIterable[bytes],
        observe: Callable[[bytes], None] | None = None,
    ) -> SealedObject:
        """Encrypt as the bytes arrive; a fresh header (object id, nonce prefix) every time.
        `observe` sees the plaintext in the sealing thread (the upload's content hash)."""
        sealer = ems1.Sealer(dek)
        # The next run is read and sealed while the store writes this one.
        sealed = read_ahead(ems1.seal_chunks(sealer, chunks, observe))
        async with contextlib.aclosing(sealed) as stream:
            stored = await self.store.put(object_key, stream)
        return SealedObject(object_key, b64(sealer.header.pack()), sealer.plaintext_bytes, stored)

    async def open(
        self, object_key: str, header: str, dek: bytes, size: int, start: int, end: int
    ) -> AsyncGenerator[bytearray, None]:
        """Plaintext bytes [start, end); each segment's tag verifies before any of it is sent."""
        located = ems1.locate(start, end, size)
        opener = ems1.Opener(dek, unb64(header), size, located.first_segment)
        # Decrypted in the reading thread, the next chunk on its way while this one is sent;
        # aclosing: a viewer who disconnects frees the file or S3 connection at once.
        read = self.store.get(object_key, located.cipher_start, located.cipher_end, opener.update)
        async with contextlib.aclosing(read_ahead(read)) as opened:
            trimmed = ems1.open_range(opener, located.skip, end - start, opened)
            async with contextlib.aclosing(trimmed) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def open_parts(
        self, parts: list[StoredPart], dek: bytes, start: int, end: int
    ) -> AsyncGenerator[bytearray, None]:
        """Plaintext [start, end) of the concatenation of parts (a resumed upload), in order."""
        offset = 0
        for part in parts:
            low, high = max(start, offset), min(end, offset + part.size)
            if low < high:
                async with contextlib.aclosing(
                    self.open(part.key, part.header, dek, part.size, low - offset, high - offset)
                ) as chunks:
                    async for chunk in chunks:
                        yield chunk
            offset += part.size

    async def read_parts(self, parts: list[StoredPart], dek: bytes, length: int) -> bytes:
        """The first `length` plaintext bytes of the parts (a small original, or a head)."""
        total = sum(part.size for part in parts)
        chunks = [chunk async for chunk in self.open_parts(parts, dek, 0, min(total, length))]
        return b"".join(chunks)
