"""EMS1: a pinned test vector, an independent re-derivation from the spec, and tamper checks."""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from ephemeral.crypto import ems1

KEY = bytes(range(32))
HEADER = ems1.Header(
    bytes.fromhex("01020304050607"), bytes.fromhex("00112233445566778899aabbccddeeff")
)
PLAINTEXT = b"view once, then gone"
# The vector: header (32 bytes) then one last segment = ciphertext || tag.
VECTOR = bytes.fromhex(
    "454d533101011000010203040506070000112233445566778899aabbccddeeff"
    "0ea03173ea9231bcedcb183bc241f457aec9220b5971b81d8a41ef7fec90a20ca184c0e6"
)


def spec_seal(key: bytes, header: ems1.Header, data: bytes) -> bytes:
    """Straight from ARCHITECTURE.md, sharing no code with the implementation."""
    head = header.pack()
    assert head[:4] == b"EMS1" and head[4:8] == bytes([1, 1, 16, 0]) and len(head) == 32
    segments = [data[i : i + 65536] for i in range(0, len(data), 65536)] or [b""]
    out = head
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        nonce = header.nonce_prefix + struct.pack(">I", index) + (b"\x01" if last else b"\x00")
        out += AESGCM(key).encrypt(nonce, segment, head)
    return out


def test_pinned_vector() -> None:
    assert ems1.seal_bytes(KEY, PLAINTEXT, HEADER) == VECTOR
    assert ems1.open_bytes(KEY, VECTOR) == PLAINTEXT


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536, 200_000])
def test_matches_the_spec_at_segment_edges(size: int) -> None:
    data = os.urandom(size)
    sealed = ems1.seal_bytes(KEY, data, HEADER)
    assert sealed == spec_seal(KEY, HEADER, data)
    assert len(sealed) == ems1.sealed_size(size)
    assert ems1.plaintext_size(len(sealed)) == size
    assert ems1.open_bytes(KEY, sealed) == data


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 300_000),
    cuts=st.lists(st.integers(0, 300_000), max_size=8),
)
async def test_streamed_sealing_matches_the_spec_however_cut(size: int, cuts: list[int]) -> None:
    """Chunks of any size, in runs sealed in threads, give the spec's bytes; the observer sees
    every plaintext byte once, in order."""
    data = os.urandom(size)
    bounds = sorted({0, size, *(c for c in cuts if c < size)})
    seen = bytearray()
    sealer = ems1.Sealer(KEY, HEADER)
    pieces = [
        chunk async for chunk in ems1.seal_chunks(sealer, _chunks_at(data, bounds), seen.extend)
    ]
    assert b"".join(pieces) == spec_seal(KEY, HEADER, data)
    assert seen == data and sealer.plaintext_bytes == size
    # One update per cut: segments straddle the calls (ems1.BATCH gathers runs in production).
    direct = ems1.Sealer(KEY, HEADER)
    parts = [direct.update(data[a:b]) for a, b in itertools.pairwise(bounds)]
    assert direct.start() + b"".join(parts) + direct.finish() == spec_seal(KEY, HEADER, data)


async def _chunks_at(data: bytes, bounds: list[int]):  # type: ignore[no-untyped-def]
    for a, b in itertools.pairwise(bounds):
        yield data[a:b]


async def _chunks(data: bytes, step: int):  # type: ignore[no-untyped-def]
    for i in range(0, len(data), step):
        yield data[i : i + step]


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 300_000),
    bounds=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    step=st.integers(1, 100_000),
)
async def test_any_range_decrypts_alone(size: int, bounds: tuple[float, float], step: int) -> None:
    data = os.urandom(size)
    sealed = ems1.seal_bytes(KEY, data)
    start, end = sorted(int(b * size) for b in bounds)
    located = ems1.locate(start, end, size)
    run = sealed[located.cipher_start : located.cipher_end]
    opener = ems1.Opener(KEY, sealed[:32], size, located.first_segment)
    opened = (opener.update(chunk) async for chunk in _chunks(run, step))
    out = b"".join(
        [chunk async for chunk in ems1.open_range(opener, located.skip, end - start, opened)]
    )
    assert out == data[start:end]


def test_a_tail_cut_inside_a_tag_is_a_corrupt_object() -> None:
    data = os.urandom(3 * 65536 + 10)
    sealed = ems1.seal_bytes(KEY, data)
    for cut in (20, 26 - 15):  # leaves 6 bytes, then 15: less than a tag of the last segment
        with pytest.raises(ems1.CorruptObject):
            ems1.open_bytes(KEY, sealed[:-cut])


async def test_open_range_refuses_bytes_that_were_never_decrypted() -> None:
    sealed = ems1.seal_bytes(KEY, b"secret")
    opener = ems1.Opener(KEY, sealed[:32], 6, 0)

    async def raw() -> AsyncIterator[bytes]:
        yield sealed[32:]  # what a store that ignored the transform would give back

    with pytest.raises(TypeError):
        async for _ in ems1.open_range(opener, 0, 6, raw()):
            pass


def test_truncation_reordering_and_swapping_fail() -> None:
    data = os.urandom(3 * 65536 + 10)
    sealed = ems1.seal_bytes(KEY, data)
    seg = ems1.SEALED_SEGMENT
    # Dropping the last segment: the new last one was sealed without the last-flag.
    truncated = sealed[: 32 + 3 * seg]
    with pytest.raises(ems1.CorruptObject):
        ems1.open_bytes(KEY, truncated)
    body = sealed[32:]
    swapped = sealed[:32] + body[seg : 2 * seg] + body[:seg] + body[2 * seg :]
    with pytest.raises(ems1.CorruptObject):
        ems1.open_bytes(KEY, swapped)
    other = ems1.seal_bytes(KEY, data)  # same key, another object: header is bound as AAD
    with pytest.raises(ems1.CorruptObject):
        ems1.open_bytes(KEY, other[:32] + sealed[32:])
    flipped = bytearray(sealed)
    flipped[100] ^= 1
    with pytest.raises(ems1.CorruptObject):
        ems1.open_bytes(KEY, bytes(flipped))


def test_every_object_gets_a_fresh_nonce_prefix_and_id() -> None:
    headers = {ems1.Header.new().pack() for _ in range(1000)}
    assert len(headers) == 1000
