"""Normalise a photo in the box: an upright sRGB JPEG (PNG if it has alpha) with no metadata."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from ephemeral.media import errors
from ephemeral.media.box import BoxError, BoxLimits, BoxResult, BoxTimeout, run_boxed
from ephemeral.media.errors import MediaRejected, RejectCode
from ephemeral.media.sniff import SNIFF_BYTES, sniff

_HEADER_MAX = 1024
_OUTPUT_MIMES = frozenset({"image/jpeg", "image/png"})
_DEFAULT_DETAIL: dict[RejectCode, str] = {
    "invalid-media": "not a supported image (JPEG, PNG, WebP, HEIC, GIF)",
    "too-many-pixels": "image has too many pixels",
    "processing-failed": "the photo could not be processed",
}


@dataclass(frozen=True)
class PhotoLimits:
    max_pixels: int = 64_000_000
    max_side: int = 4096
    jpeg_quality: int = 85
    box: BoxLimits = field(default_factory=BoxLimits)


@dataclass(frozen=True)
class NormalisedMedia:
    data: bytes
    mime: str
    kind: str
    width: int
    height: int
    duration: float | None = None


async def normalise_photo(plaintext: bytes, limits: PhotoLimits) -> NormalisedMedia:
    """Decode, orient, convert and re-encode in a boxed child; raises only MediaRejected
    for anything about the input (an OSError means the host could not start a child)."""
    sniffed = sniff(plaintext[:SNIFF_BYTES])
    if sniffed is None or sniffed.kind != "image":
        # Not worth a child: the magic bytes already say no.
        raise MediaRejected("invalid-media", _DEFAULT_DETAIL["invalid-media"])
    argv = [sys.executable, "-I", "-m", "ephemeral.media.photo_child"]
    argv += ["--max-pixels", str(limits.max_pixels), "--max-side", str(limits.max_side)]
    argv += ["--quality", str(limits.jpeg_quality)]
    try:
        result = await run_boxed(argv, plaintext, limits.box)
    except BoxTimeout as exc:
        raise MediaRejected("processing-failed", "photo processing timed out") from exc
    except BoxError as exc:
        raise MediaRejected("processing-failed", str(exc)) from exc
    if result.returncode != 0:
        raise _rejection(result)
    return _parse_output(result.stdout, limits)


def _rejection(result: BoxResult) -> MediaRejected:
    return errors.rejection(result.returncode, result.stderr, _DEFAULT_DETAIL, "photo processing")


def _parse_output(stdout: bytes, limits: PhotoLimits) -> NormalisedMedia:
    """Header line, then exactly `size` bytes that must really be the image the header names."""
    newline = stdout.find(b"\n", 0, _HEADER_MAX)
    try:
        header: Any = json.loads(stdout[:newline]) if newline > 0 else None
    except ValueError:
        header = None
    body = stdout[newline + 1 :]
    if not isinstance(header, dict) or not _valid_header(header, len(body), limits.max_side):
        raise MediaRejected("processing-failed", "the photo box gave malformed output")
    found = sniff(body[:SNIFF_BYTES])
    if found is None or found.mime != header["mime"]:
        raise MediaRejected("processing-failed", "the photo box gave malformed output")
    return NormalisedMedia(body, header["mime"], "image", header["width"], header["height"])


def _valid_header(header: dict[str, Any], size: int, max_side: int) -> bool:
    dims = (header.get("width"), header.get("height"))
    return (
        header.get("mime") in _OUTPUT_MIMES
        and header.get("size") == size
        and all(type(d) is int and 0 < d <= max_side for d in dims)
    )
