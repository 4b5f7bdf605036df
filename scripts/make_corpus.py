"""Write the hostile media corpus into DIR with ffmpeg, Pillow and pillow-heif; nothing fetched."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

GPS = "+48.8583+002.2945/"  # ISO 6709, as phones write ©xyz
SECRETS = ("CorpusMake", "CorpusModel", "CorpusTitle", GPS)


@dataclass(frozen=True)
class Case:
    expect: tuple[str, ...]  # allowed outcomes: "unsupported" (sniff), a media.failed code, a kind
    display: tuple[int, int] | None = None  # display size a clean video must have
    secrets: tuple[str, ...] = ()  # strings put in that no output may carry
    remux: bool = False  # keeps the output contract: remuxed when allow_remux is on


def _ff(*args: str) -> list[str]:
    return ["ffmpeg", "-nostdin", "-v", "error", "-y", *args]


def _video(
    size: str = "64x48", rate: int = 10, seconds: float = 1, src: str = "testsrc2"
) -> list[str]:
    return ["-f", "lavfi", "-i", f"{src}=size={size}:rate={rate}:duration={seconds}"]


def _audio(seconds: float = 1, rate: int = 48000) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}:sample_rate={rate}"]


_X264 = "-c:v libx264 -preset veryfast -pix_fmt yuv420p".split()
_HIGH = "-profile:v high -color_primaries bt709 -color_trc bt709 -colorspace bt709".split()
_X265 = "-c:v libx265 -tag:v hvc1 -x265-params log-level=error".split()
_HDR = ":hdr10=1:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:max-cll=1000,400"
_HDR_TAGS = "-color_primaries bt2020 -color_trc smpte2084 -colorspace bt2020nc".split()
_AAC = ["-c:a", "aac", "-b:a", "96k"]
_OPUS = ["-c:a", "libopus"]
_TAGS = ["-metadata", "make=CorpusMake", "-metadata", "model=CorpusModel"]
_TAGS += ["-metadata", "title=CorpusTitle", "-metadata", f"location={GPS}"]
_MDTA = ["-movflags", "use_metadata_tags"]  # MP4 mode writes location only as an mdta key
_ROTATE = ["-i", "{in}", "-c", "copy", "-metadata:s:v:0", "rotate=90"]  # a matrix only on copy
_SUBS = "-i {tmp}/s.srt -map 0 -map 1 -map 2 -c:s mov_text -timecode 01:02:03:04".split()
_COVER = "-map 0 -map 1 -c:v png -disposition:v attached_pic -frames:v 1".split()
_VP9 = "-c:v libvpx-vp9 -deadline realtime -cpu-used 8".split()
_V, _A = _video(), _audio()
_TITLE = ("CorpusTitle",)

# name -> (ffmpeg steps; "{in}" is the previous step's output, "{tmp}" a scratch dir), case.
FFMPEG: dict[str, tuple[list[list[str]], Case]] = {
    "phone-hevc-rotated-gps.mov": (
        [[*_V, *_A, *_X265, "-pix_fmt", "yuv420p", *_AAC], [*_ROTATE, *_TAGS]],
        Case(("video",), (48, 64), SECRETS),
    ),
    "compliant-h264.mp4": (
        [[*_V, *_A, *_X264, *_HIGH, *_AAC, *_TAGS, *_MDTA]],
        Case(("video",), (64, 48), SECRETS, remux=True),
    ),
    "rotated-h264.mp4": ([[*_V, *_X264, *_HIGH], _ROTATE], Case(("video",), (48, 64))),
    "gps.mov": ([[*_V, *_A, *_X264, *_AAC, *_TAGS]], Case(("video",), (64, 48), SECRETS)),
    "subs-data.mp4": (
        [[*_V, *_A, *_SUBS, *_X264, *_AAC]],
        Case(("video",), (64, 48), ("SubtitleSecret",)),
    ),
    "subtitle-only.mp4": ([["-i", "{tmp}/s.srt", "-c:s", "mov_text"]], Case(("no-media-stream",))),
    "vp9-opus.webm": ([[*_V, *_A, *_VP9, *_OPUS, *_TAGS]], Case(("video",), (64, 48), SECRETS)),
    "audio-only.webm": ([[*_A, *_OPUS, *_TAGS]], Case(("audio",), None, SECRETS)),
    "voice.ogg": ([[*_A, *_OPUS, *_TAGS]], Case(("audio",), None, SECRETS)),
    "voice.m4a": ([[*_A, *_AAC, *_TAGS]], Case(("audio",), None, _TITLE)),
    "voice.mp3": (
        [[*_A, *_video("16x16", 1, 1), *_COVER, "-c:a", "libmp3lame", *_TAGS]],
        Case(("audio",), None, SECRETS),
    ),
    "voice.wav": (
        [[*_audio(1, 16000), "-c:a", "pcm_s16le", *_TAGS]],
        Case(("audio",), None, _TITLE),
    ),
    "voice.aac": ([[*_A, *_AAC, "-f", "adts"]], Case(("audio",))),
    "long-voice.ogg": ([[*_audio(70, 8000), *_OPUS, "-b:a", "8k"]], Case(("too-long",))),
    "long-audio.mp3": ([[*_audio(70, 8000), "-c:a", "libmp3lame"]], Case(("too-long",))),
    "long-90s.mp4": (
        [[*_video("16x16", 1, 90, "testsrc"), *_X264, "-preset", "ultrafast"]],
        Case(("too-long",)),
    ),
    "hdr10-hevc.mp4": (
        [[*_video("64x36"), *_X265[:-1], _X265[-1] + _HDR, "-pix_fmt", "yuv420p10le", *_HDR_TAGS]],
        Case(("video",), (64, 36)),
    ),
    "high-fps.mp4": ([[*_video("32x32", 120, 0.5), *_X264]], Case(("video",), (32, 32))),
    "h264-10bit.mkv": (
        [[*_V, "-c:v", "libx264", "-pix_fmt", "yuv420p10le"]],
        Case(("video",), (64, 48)),
    ),
    "qhd.mp4": ([[*_video("2560x1440", 10, 0.3), *_X264]], Case(("video",), (1920, 1080))),
    "anamorphic.mkv": ([[*_V, "-vf", "setsar=2", *_X264]], Case(("video",), (128, 48))),
    "wide-4000.mp4": (
        [[*_video("4000x2000", 1, 1), *_X264, "-preset", "ultrafast"]],
        Case(("too-many-pixels",)),
    ),
    "theora.ogg": ([[*_V, "-c:v", "libtheora"]], Case(("invalid-media", "no-media-stream"))),
    "mpeg2.mp4": ([[*_V, "-c:v", "mpeg2video"]], Case(("invalid-media",))),
    # Raw material for the crafted files below; not corpus files themselves.
    "raw-for-patching.mov": (
        [[*_video("16x16", 1, 1), "-c:v", "rawvideo", "-pix_fmt", "rgb24"]],
        Case(()),
    ),
    "plain-for-cutting.mp4": ([[*_video("64x48", 10, 2), *_audio(2), *_X264, *_AAC]], Case(())),
    "fast-for-cutting.mp4": (
        [[*_video("64x48", 10, 2), *_X264, "-movflags", "+faststart"]],
        Case(()),
    ),
}
_SCRATCH = ("raw-for-patching.mov", "plain-for-cutting.mp4", "fast-for-cutting.mp4")


def _run_ffmpeg(out: Path, steps: list[list[str]], tmp: str) -> None:
    previous = ""
    for number, step in enumerate(steps):
        target = out if number == len(steps) - 1 else Path(tmp) / f"{number}-{out.name}"
        args = [a.replace("{in}", previous).replace("{tmp}", tmp) for a in step]
        subprocess.run([*_ff(*args), str(target)], check=True, timeout=60)
        previous = str(target)


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _replace_box(data: bytes, path: tuple[bytes, ...], new: Callable[[bytes], bytes]) -> bytes:
    """Rewrite the box at `path` (containers only above it), fixing every size on the way."""
    out, pos = b"", 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + size]
        if kind == path[0]:
            body = new(body) if len(path) == 1 else _replace_box(body, path[1:], new)
        out += _box(kind, body)
        pos += size
    return out


def _ftyp(brand: bytes) -> bytes:
    return _box(b"ftyp", brand + b"\0\0\0\0" + brand + b"isom")


HLS = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
CONCAT = b"ffconcat version 1.0\nfile 'file:/etc/passwd'\nfile '/etc/passwd'\n"


_PHOTO_SECRETS = ("CorpusMake", "CorpusGPSDatum")
CRAFTED: dict[str, Case] = {
    "hls-passwd.mp4": Case(("unsupported",)),
    "hls-after-ftyp.mp4": Case(("invalid-media",)),
    "concat-passwd.mp4": Case(("unsupported",)),
    "concat-after-ftyp.mov": Case(("invalid-media",)),
    # The mov demuxer leaves url data references alone: the track reads from the file itself.
    "dref-passwd.mp4": Case(("invalid-media", "no-media-stream", "video")),
    "huge-20000.mov": Case(("too-many-pixels",)),
    "huge-16000-raw.mov": Case(("too-many-pixels",)),
    "truncated.mp4": Case(("video", "invalid-media"), (64, 48)),
    "moov-cut.mp4": Case(("invalid-media", "no-media-stream")),
    "garbage-after-ftyp.mp4": Case(("invalid-media",)),
    "polyglot-mp4-jpeg.mp4": Case(("video",), (64, 48)),
    "polyglot.jpg": Case(("image",)),
    "empty.mp4": Case(("unsupported",)),
    "html.mp4": Case(("unsupported",)),
    "script.svg": Case(("unsupported",)),
    "png-bomb.png": Case(("too-many-pixels",)),
    "gps.jpg": Case(("image",), None, _PHOTO_SECRETS),
    "gps.heic": Case(("image",), None, _PHOTO_SECRETS),
}
CASES: dict[str, Case] = {
    **{name: case for name, (_, case) in FFMPEG.items() if name not in _SCRATCH},
    **CRAFTED,
}


def _crafted(scratch: Path) -> dict[str, bytes]:
    raw = (scratch / "raw-for-patching.mov").read_bytes()
    plain = (scratch / "plain-for-cutting.mp4").read_bytes()
    fast = (scratch / "fast-for-cutting.mp4").read_bytes()
    moov = plain.find(b"moov") - 4
    ref = b"\0\0\0\0" + struct.pack(">I", 1) + _box(b"url ", b"\0\0\0\0file:///etc/passwd\0")
    dref_path = (b"moov", b"trak", b"mdia", b"minf", b"dinf", b"dref")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    return {
        "hls-passwd.mp4": HLS,
        "hls-after-ftyp.mp4": _ftyp(b"isom") + HLS,
        "concat-passwd.mp4": CONCAT,
        "concat-after-ftyp.mov": _ftyp(b"qt  ") + CONCAT,
        "dref-passwd.mp4": _replace_box(plain, dref_path, lambda _body: ref),
        "huge-20000.mov": _patch_size(raw, 20000, b"zzzz"),  # no decoder: the header is all
        "huge-16000-raw.mov": _patch_size(raw, 16000, b"raw "),  # the most libavcodec allows
        "truncated.mp4": fast[: len(fast) * 6 // 10],
        "moov-cut.mp4": plain[: moov + 200],
        "garbage-after-ftyp.mp4": _ftyp(b"isom") + random.Random(1).randbytes(4000),
        "polyglot-mp4-jpeg.mp4": fast + _jpeg(),
        "polyglot.jpg": _jpeg() + fast,
        "empty.mp4": b"",
        "html.mp4": b"<!doctype html><script>alert(1)</script>\n",
        "script.svg": svg,
        "png-bomb.png": _png_bomb(20_000),
        "gps.jpg": _photo("JPEG"),
        "gps.heic": _photo("HEIF"),
    }


def _patch_size(mov: bytes, side: int, fourcc: bytes) -> bytes:
    """Claim side x side in the sample entry and the track header of a 16x16 raw MOV."""
    data = bytearray(mov)
    entry = data.find(b"raw ")
    data[entry : entry + 4] = fourcc
    data[entry + 28 : entry + 32] = struct.pack(">HH", side, side)
    tkhd = data.find(b"tkhd") + 4 + 4 * 6 + 8 + 8 + 36
    data[tkhd : tkhd + 8] = struct.pack(">II", side << 16, side << 16)
    return bytes(data)


def _jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 24), "red").save(buf, "JPEG")
    return buf.getvalue()


def _photo(fmt: str) -> bytes:
    import pillow_heif
    from PIL import ExifTags, Image

    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "CorpusMake"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.9)
    gps[ExifTags.GPS.GPSMapDatum] = "CorpusGPSDatum"
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), "blue").save(buf, fmt, exif=exif.tobytes(), quality=90)
    return buf.getvalue()


def _png_bomb(side: int) -> bytes:
    """A valid 1-bit PNG of side x side pixels in about 50 KB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    packer = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def make_corpus(out: Path) -> None:
    """Write every file of CASES, and manifest.json (name -> Case), into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
        scratch = Path(tmp)
        (scratch / "s.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nSubtitleSecret\n")
        jobs = [
            (scratch / n if n in _SCRATCH else out / n, steps) for n, (steps, _) in FFMPEG.items()
        ]
        jobs.sort(key=lambda job: not job[0].name.startswith("long"))  # the slowest first
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(lambda job: _run_ffmpeg(job[0], job[1], tmp), jobs))
        for name, data in _crafted(scratch).items():
            (out / name).write_bytes(data)
    manifest = {name: asdict(case) for name, case in CASES.items()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: make_corpus.py OUTDIR")
    make_corpus(Path(sys.argv[1]))
    print(f"{len(CASES)} files in {sys.argv[1]}")
