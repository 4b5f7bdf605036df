"""Decide what an upload is from its first bytes only, never from its name or Content-Type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["image", "video", "audio"]

# Enough for the ISO-BMFF ftyp box with a dozen compatible brands and the EBML DocType.
SNIFF_BYTES = 64


@dataclass(frozen=True)
class Sniffed:
    kind: Kind
    format: str
    mime: str


JPEG = Sniffed("image", "jpeg", "image/jpeg")
PNG = Sniffed("image", "png", "image/png")
GIF = Sniffed("image", "gif", "image/gif")
WEBP = Sniffed("image", "webp", "image/webp")
HEIF = Sniffed("image", "heif", "image/heif")
HEIC = Sniffed("image", "heif", "image/heic")
MP4 = Sniffed("video", "mp4", "video/mp4")
MOV = Sniffed("video", "mov", "video/quicktime")
M4A = Sniffed("audio", "m4a", "audio/mp4")
# Matroska and WebM carry video or audio alike and only the track list (far past the magic)
# tells which, so both sniff as video; the probe that follows settles audio-only files.
MATROSKA = Sniffed("video", "matroska", "video/x-matroska")
WEBM = Sniffed("video", "matroska", "video/webm")
# Ogg could hold Theora, but the API accepts Ogg only for voice (Opus).
OGG = Sniffed("audio", "ogg", "audio/ogg")
MP3 = Sniffed("audio", "mp3", "audio/mpeg")
WAV = Sniffed("audio", "wav", "audio/wav")
AAC = Sniffed("audio", "aac", "audio/aac")

# ISO-BMFF brands. None marks a brand we know and refuse (AVIF, protected M4P), so that a
# compatible brand further on cannot smuggle it in as something else.
_FTYP_BRANDS: dict[bytes, Sniffed | None] = {
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevm", b"hevs"), HEIC),
    **dict.fromkeys((b"mif1", b"msf1"), HEIF),
    **dict.fromkeys(
        (
            b"isom",
            b"iso2",
            b"iso3",
            b"iso4",
            b"iso5",
            b"iso6",
            b"mp41",
            b"mp42",
            b"avc1",
            b"dash",
            b"mmp4",
            b"MSNV",
            b"M4V ",
            b"M4VH",
            b"M4VP",
            b"f4v ",
        ),
        MP4,
    ),
    b"qt  ": MOV,
    **dict.fromkeys((b"M4A ", b"M4B "), M4A),
    **dict.fromkeys((b"avif", b"avis", b"M4P ", b"crx "), None),
}
# 3GPP families ("3gp4", "3gp5", "3g2a", "3ge6", ...) use the mp4 demuxer.
_FTYP_PREFIXES: tuple[tuple[bytes, Sniffed], ...] = ((b"3gp", MP4), (b"3g2", MP4), (b"3ge", MP4))


def _ftyp_brand(brand: bytes) -> tuple[bool, Sniffed | None]:
    """(known, result) for one brand."""
    if brand in _FTYP_BRANDS:
        return True, _FTYP_BRANDS[brand]
    for prefix, result in _FTYP_PREFIXES:
        if brand.startswith(prefix):
            return True, result
    return False, None


def _iso_bmff(head: bytes) -> Sniffed | None:
    """The major brand decides; compatible brands only when the major one is unknown."""
    size = int.from_bytes(head[0:4], "big")
    if size < 16 and size != 0:
        return None
    end = len(head) if size == 0 else min(size, len(head))
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]
    for brand in brands:
        known, result = _ftyp_brand(brand)
        if known:
            return result
    return None


def _ebml(head: bytes) -> Sniffed:
    # DocType element (0x4282) with a one-byte size; it sits in the first ~40 bytes.
    return WEBM if b"\x42\x82\x84webm" in head else MATROSKA


@dataclass(frozen=True)
class _Magic:
    offset: int
    magic: bytes
    result: Sniffed | Callable[[bytes], Sniffed | None]
    also: tuple[int, bytes] | None = None  # a second fixed field, e.g. the RIFF form type


_MAGIC: tuple[_Magic, ...] = (
    _Magic(0, b"\xff\xd8\xff", JPEG),
    _Magic(0, b"\x89PNG\r\n\x1a\n", PNG),
    _Magic(0, b"GIF87a", GIF),
    _Magic(0, b"GIF89a", GIF),
    _Magic(0, b"RIFF", WEBP, also=(8, b"WEBP")),
    _Magic(0, b"RIFF", WAV, also=(8, b"WAVE")),
    _Magic(4, b"ftyp", _iso_bmff),
    _Magic(0, b"\x1a\x45\xdf\xa3", _ebml),
    _Magic(0, b"OggS", OGG),
    _Magic(0, b"ID3", MP3),
    # MPEG audio frame sync: MPEG-1/2 layer III, with and without CRC.
    *(_Magic(0, sync, MP3) for sync in (b"\xff\xfb", b"\xff\xfa", b"\xff\xf3", b"\xff\xf2")),
    # ADTS (raw AAC): MPEG-4 and MPEG-2, with and without CRC.
    *(_Magic(0, sync, AAC) for sync in (b"\xff\xf1", b"\xff\xf9", b"\xff\xf0", b"\xff\xf8")),
)


def sniff(head: bytes) -> Sniffed | None:
    """What the first SNIFF_BYTES of a file say it is; None for anything we do not accept."""
    head = head[:SNIFF_BYTES]
    for entry in _MAGIC:
        if head[entry.offset : entry.offset + len(entry.magic)] != entry.magic:
            continue
        if entry.also is not None:
            offset, magic = entry.also
            if head[offset : offset + len(magic)] != magic:
                continue
        if isinstance(entry.result, Sniffed):
            return entry.result
        return entry.result(head)
    return None
