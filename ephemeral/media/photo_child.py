"""Boxed child: decode one photo from stdin, write a clean upright sRGB JPEG or PNG to stdout."""

# Protocol (photo.py is the other end). stdin: the upload's plaintext. On success, exit 0 and
# stdout = one JSON line {"mime", "width", "height", "size"} then exactly `size` image bytes.
# On refusal, exit with an errors.EXIT_* code and a last stderr line {"code", "detail"}.

from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from typing import NoReturn

import pillow_heif
from PIL import Image, ImageCms, ImageOps

from ephemeral.media.errors import (
    EXIT_INVALID_MEDIA,
    EXIT_PROCESSING_FAILED,
    EXIT_TOO_MANY_PIXELS,
    refuse,
)

FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "HEIF"]  # the allow-list; HEIF is pillow-heif's


class Refused(Exception):
    def __init__(self, exit_code: int, detail: str) -> None:
        super().__init__(detail)
        self.exit_code = exit_code
        self.detail = detail


def decode(data: bytes, max_pixels: int) -> Image.Image:
    """Open with the allow-list, refuse by pixel count from the header, then decode frame 0."""
    try:
        im = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Refused(EXIT_TOO_MANY_PIXELS, "image has too many pixels") from exc
    except MemoryError:
        raise
    except Exception as exc:  # whatever a plugin raises on garbage (SyntaxError, struct.error...)
        raise Refused(
            EXIT_INVALID_MEDIA, "not a supported image (JPEG, PNG, WebP, HEIC, GIF)"
        ) from exc
    width, height = im.size
    if width < 1 or height < 1 or width * height > max_pixels:
        raise Refused(EXIT_TOO_MANY_PIXELS, f"image is {width}x{height}; limit {max_pixels} pixels")
    try:
        im.seek(0)  # a GIF or multi-image HEIF: the first frame only
        im.load()
    except MemoryError:
        raise
    except Exception as exc:  # truncated or corrupt data (OSError), or a plugin's own error
        raise Refused(EXIT_INVALID_MEDIA, "image data is truncated or corrupt") from exc
    return im


def upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation to the pixels; an unreadable EXIF block means no rotation."""
    try:
        ImageOps.exif_transpose(im, in_place=True)  # in place: one full-size copy fewer
    except MemoryError:
        raise
    except Exception:  # a broken EXIF block in an otherwise good photo: keep it as stored
        return im
    return im


def to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """RGB or RGBA in sRGB: through the embedded ICC profile when there is a usable one."""
    alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    target = "RGBA" if alpha else "RGB"
    if icc:
        base = im if im.mode in ("RGB", "RGBA", "CMYK", "L") else im.convert(target)
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            srgb = ImageCms.createProfile("sRGB")
            out_mode = "RGBA" if base.mode == "RGBA" else "RGB"
            converted = ImageCms.profileToProfile(base, source, srgb, outputMode=out_mode)
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a bogus or mismatched profile: the numbers as they are beat no photo
    return im if im.mode == target else im.convert(target)


def to_plain(im: Image.Image) -> Image.Image:
    # Palette and odd modes cannot be resampled with LANCZOS; lift them to RGB(A) first.
    if im.mode.startswith("I"):  # 16-bit greyscale PNG: scale to 8 bits, since convert clips
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    alpha = im.mode in ("PA", "RGBa", "La") or "transparency" in im.info
    return im.convert("RGBA" if alpha else "RGB")


def shrink(im: Image.Image, max_side: int) -> Image.Image:
    width, height = im.size
    if max(width, height) <= max_side:
        return im
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap: a cheap box reduce first, then LANCZOS; same look, a fraction of the time.
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode(im: Image.Image, quality: int) -> tuple[str, bytes]:
    """JPEG, or PNG when some pixel is not fully opaque, with nothing of the input's metadata.

    Pillow's encoders write only what they are given plus a few keys of `im.info` (the JPEG
    comment, the PNG ICC profile and transparency); emptying `info` leaves them nothing to carry,
    without the full-size copy a brand-new image would cost. The privacy tests check the output.
    Baseline, not progressive: the viewer shows a photo only once it has all of it (a `blob:`
    URL), so progressive scans would buy nothing and cost several times the encode.
    """
    if im.mode == "RGBA" and im.getchannel("A").getextrema()[0] == 255:
        im = im.convert("RGB")  # an alpha channel nobody uses
    im.info = {}
    out = io.BytesIO()
    if im.mode == "RGBA":
        im.save(out, format="PNG")
        return "image/png", out.getvalue()
    im.save(out, format="JPEG", quality=quality, optimize=True)
    return "image/jpeg", out.getvalue()


def normalise(
    data: bytes, max_pixels: int, max_side: int, quality: int
) -> tuple[str, Image.Image, bytes]:
    im = decode(data, max_pixels)
    icc = im.info.get("icc_profile")
    try:
        im = upright(im)
        im = shrink(im if im.mode in ("RGB", "RGBA", "CMYK", "L", "LA") else to_plain(im), max_side)
        im = to_srgb(im, icc if isinstance(icc, bytes) else None)
        mime, body = encode(im, quality)
    except MemoryError as exc:
        raise Refused(EXIT_PROCESSING_FAILED, "out of memory") from exc
    return mime, im, body


def main(argv: list[str]) -> NoReturn:
    parser = argparse.ArgumentParser(prog="photo_child")
    parser.add_argument("--max-pixels", type=int, required=True)
    parser.add_argument("--max-side", type=int, required=True)
    parser.add_argument("--quality", type=int, required=True)
    args = parser.parse_args(argv)
    pillow_heif.register_heif_opener()
    Image.MAX_IMAGE_PIXELS = args.max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    try:
        data = sys.stdin.buffer.read()
        mime, im, body = normalise(data, args.max_pixels, args.max_side, args.quality)
    except Refused as exc:
        refuse(exc.exit_code, exc.detail)
    except MemoryError:
        refuse(EXIT_PROCESSING_FAILED, "out of memory")
    except Exception as exc:
        refuse(EXIT_PROCESSING_FAILED, f"unexpected {type(exc).__name__}")
    header = {"mime": mime, "width": im.width, "height": im.height, "size": len(body)}
    sys.stdout.buffer.write(json.dumps(header).encode() + b"\n")
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()
    sys.exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
