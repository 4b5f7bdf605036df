"""Real sample files for the media tests, made on the spot with Pillow, pillow-heif and ffmpeg."""

from __future__ import annotations

import io
import struct
import subprocess
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pillow_heif
from PIL import Image, ImageCms

pillow_heif.register_heif_opener()


def image_bytes(fmt: str, size: tuple[int, int] = (32, 24), color: Any = "red", **kw: Any) -> bytes:
    mode = "RGBA" if isinstance(color, tuple) and len(color) == 4 else "RGB"
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format=fmt, **kw)
    return buf.getvalue()


def heic_bytes(size: tuple[int, int] = (64, 48), color: str = "blue") -> bytes:
    return image_bytes("HEIF", size, color, quality=90)


def animated_gif(first: str = "red", second: str = "lime") -> bytes:
    frames = [Image.new("RGB", (40, 30), c) for c in (first, second)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def linear_rgb_icc() -> bytes:
    """A minimal ICC v2 matrix/TRC profile: sRGB primaries but a linear (gamma 1.0) curve.

    Pillow can only create sRGB, so this one is written by hand: with it, grey 128 in the
    file is linear light 0.5, which sRGB encodes as about 188. That makes conversion visible.
    """

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0100) + b"\0\0"  # gamma 1.0, padded
    text = b"linear sRGB\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    desc += bytes(-len(desc) % 4)
    tags: list[tuple[bytes, bytes]] = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)),
        (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    header += bytes(12) + b"acsp" + bytes(4 + 4 + 4 + 4 + 8 + 4)
    header += xyz(0.9642, 1.0, 0.8249)[8:] + bytes(4) + bytes(16) + bytes(28)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def png_bomb(side: int = 20_000) -> bytes:
    """A real, valid 1-bit PNG of side x side pixels: about 50 KB for 400 megapixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    row = bytes(1 + (side + 7) // 8)  # filter byte 0, then all-black pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


_VIDEO = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:duration=0.2"]
_AUDIO = ["-f", "lavfi", "-i", "sine=duration=0.2"]
_H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
_RAW_MP3 = ["-c:a", "libmp3lame", "-id3v2_version", "0", "-write_xing", "0"]

# name -> (ffmpeg arguments, file name); the name says what the file is.
FFMPEG_SAMPLES: dict[str, tuple[list[str], str]] = {
    "mp4": ([*_VIDEO, *_H264], "a.mp4"),
    "mov": ([*_VIDEO, *_H264], "a.mov"),
    "m4v": ([*_VIDEO, *_H264], "a.m4v"),
    "3gp": ([*_VIDEO, *_H264], "a.3gp"),
    "mkv": ([*_VIDEO, *_H264], "a.mkv"),
    "webm": ([*_VIDEO, "-c:v", "libvpx"], "a.webm"),
    "webm-audio": ([*_AUDIO, "-c:a", "libopus"], "b.webm"),
    "m4a": ([*_AUDIO, "-c:a", "aac"], "a.m4a"),
    "ogg": ([*_AUDIO, "-c:a", "libopus"], "a.ogg"),
    "mp3-id3": ([*_AUDIO, "-c:a", "libmp3lame"], "a.mp3"),
    "mp3-mpeg1": ([*_AUDIO, "-ar", "44100", *_RAW_MP3], "b.mp3"),
    "mp3-mpeg2": ([*_AUDIO, "-ar", "22050", *_RAW_MP3], "c.mp3"),
    "wav": ([*_AUDIO, "-c:a", "pcm_s16le"], "a.wav"),
    "aac-adts": ([*_AUDIO, "-c:a", "aac", "-f", "adts"], "a.aac"),
}


def ffmpeg_samples(directory: Path) -> dict[str, bytes]:
    def make(item: tuple[str, tuple[list[str], str]]) -> tuple[str, bytes]:
        name, (args, filename) = item
        out = directory / filename
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args, str(out)]
        subprocess.run(cmd, check=True, timeout=60)
        return name, out.read_bytes()

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(make, FFMPEG_SAMPLES.items()))
