"""The hostile corpus through sniff and the real pipelines: a contract refusal or a clean output."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ephemeral.media import box
from ephemeral.media.av import AvInfo, AvLimits, normalise_av
from ephemeral.media.errors import MediaRejected
from ephemeral.media.jobdir import JOB_PREFIX, job_root
from ephemeral.media.photo import PhotoLimits, normalise_photo
from ephemeral.media.sniff import MP4, SNIFF_BYTES, sniff
from tests.fixtures.corpus import CASES, PASSWD
from tests.media.test_box import MODES

CONTRACT_CODES = {"invalid-media", "too-long", "too-many-pixels", "no-media-stream"}


def our_jobs() -> str:
    return os.path.join(job_root(), f"{JOB_PREFIX}{os.getpid()}-")


def box_processes() -> list[str]:
    """Command names of processes working in one of this test process's job dirs."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(our_jobs()):
                found.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue  # gone meanwhile
    return found


async def gone(within: float = 3.0) -> bool:
    """Every process of our boxes has exited and every job dir is removed."""
    deadline = time.monotonic() + within
    while box_processes() or [
        n for n in os.listdir(job_root()) if os.path.join(job_root(), n).startswith(our_jobs())
    ]:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def feed(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1 << 16):
        yield data[start : start + (1 << 16)]


@dataclass
class Outcome:
    result: str  # "unsupported", a MediaRejected code, or the kind of a clean output
    body: bytes = b""
    detail: str = ""
    info: AvInfo | None = None


async def run(data: bytes, limits: AvLimits | None = None) -> Outcome:
    """What the service does with an upload: sniff (415), then the photo or av pipeline."""
    sniffed = sniff(data[:SNIFF_BYTES])
    if sniffed is None:
        return Outcome("unsupported")
    try:
        if sniffed.kind == "image":
            return Outcome("image", (await normalise_photo(data, PhotoLimits())).data)
        async with normalise_av(feed(data), sniffed, limits or AvLimits()) as stream:
            body = b"".join([chunk async for chunk in stream.chunks])
        return Outcome(stream.info.kind, body, info=stream.info)
    except MediaRejected as exc:
        return Outcome(exc.code, detail=exc.detail)


def ffprobe(data: bytes, tmp: Path) -> dict[str, Any]:
    path = tmp / "out.mp4"
    path.write_bytes(data)
    argv = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
    done = subprocess.run([*argv, str(path)], capture_output=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def top_level_boxes(data: bytes) -> list[bytes]:
    kinds, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kinds.append(data[pos + 4 : pos + 8])
        pos += size if size >= 8 else len(data)
    return kinds


def assert_clean_av(got: Outcome, case: Any, tmp: Path) -> None:
    info, data = got.info, got.body
    assert info is not None and info.size == len(data) and info.kind == got.result
    assert sniff(data[:SNIFF_BYTES]) is not None and info.mime == sniff(data[:64]).mime  # type: ignore[union-attr]
    boxes = top_level_boxes(data)
    assert boxes.index(b"moov") < boxes.index(b"mdat")  # +faststart
    probe = ffprobe(data, tmp)
    fmt, streams = probe["format"], probe["streams"]
    assert float(fmt["duration"]) <= 60 and abs(float(fmt["duration"]) - info.duration) < 0.01
    assert set(fmt.get("tags", {})) <= {"major_brand", "minor_version", "compatible_brands"}
    videos = [s for s in streams if s["codec_type"] == "video"]
    audios = [s for s in streams if s["codec_type"] == "audio"]
    assert len(streams) == len(videos) + len(audios) and len(audios) <= 1
    for s in streams:
        assert set(s.get("tags", {})) <= {"language", "handler_name", "vendor_id"}, s["tags"]
        assert s["tags"].get("handler_name") in ("VideoHandler", "SoundHandler")
        assert "side_data_list" not in s  # no display matrix: rotation is in the pixels
    if info.kind == "video":
        (v,) = videos
        assert (v["codec_name"], v["profile"], v["pix_fmt"]) == ("h264", "High", "yuv420p")
        assert 0 < v["level"] <= 42 and v["width"] % 2 == 0 and v["height"] % 2 == 0
        assert max(v["width"], v["height"]) <= 1920 and min(v["width"], v["height"]) <= 1080
        assert (v["width"], v["height"]) == (info.width, info.height)
        num, den = map(int, v["avg_frame_rate"].split("/"))
        assert num / den <= 60.5
        if case.display is not None:
            assert (info.width, info.height) == tuple(case.display)
        if not info.remuxed:
            colours = (v["color_space"], v["color_transfer"], v["color_primaries"])
            assert colours == ("bt709",) * 3 and v["color_range"] == "tv"
    else:
        assert not videos and info.width is None and info.mime == "audio/mp4"
    for a in audios:
        assert (a["codec_name"], a["profile"], a["sample_rate"]) == ("aac", "LC", "48000")
        assert a["channels"] <= 2
    raw = json.dumps({**probe, "format": {**fmt, "filename": ""}}).lower()
    assert not any(word in raw for word in ("corpus", "48.8583", "xyz", "encoder", "lavf"))
    assert b"\xa9xyz" not in data and b"Lavf" not in data
    if not info.remuxed:  # a remux copies the streams, with any encoder tag inside them
        assert b"Lavc" not in data and b"x264 - core" not in data  # in AAC fill, in H.264 SEI


def assert_clean_photo(got: Outcome) -> None:
    image = Image.open(io.BytesIO(got.body))
    assert image.format in ("JPEG", "PNG") and len(image.getexif()) == 0


@pytest.mark.parametrize("name", sorted(CASES))
async def test_corpus_file(name: str, corpus: Path, tmp_path: Path) -> None:
    case = CASES[name]
    data = (corpus / name).read_bytes()
    assert all(secret.encode() in data for secret in case.secrets)  # really put in
    got = await run(data)
    assert got.result in case.expect, (got.result, got.detail)
    assert got.result in {"unsupported", "image", "video", "audio"} | CONTRACT_CODES
    assert PASSWD not in got.body and PASSWD.decode() not in got.detail
    assert not [secret for secret in case.secrets if secret.encode() in got.body]
    if got.result in ("video", "audio"):
        assert_clean_av(got, case, tmp_path)
    elif got.result == "image":
        assert_clean_photo(got)
    else:
        assert got.body == b""


def h264_stream(data: bytes, tmp: Path) -> str:
    """The video bitstream alone (Annex B), hashed: what a remux must leave untouched."""
    path = tmp / "clip.mp4"
    path.write_bytes(data)
    argv = ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy"]
    out = subprocess.run([*argv, "-f", "h264", "-"], capture_output=True, check=True).stdout
    return hashlib.sha256(out).hexdigest()


async def test_remux_keeps_the_bitstream(corpus: Path, tmp_path: Path) -> None:
    name = "compliant-h264.mp4"
    data = (corpus / name).read_bytes()
    assert CASES[name].remux
    remuxed = await run(data, AvLimits(allow_remux=True))
    assert remuxed.info is not None and remuxed.info.remuxed
    assert h264_stream(remuxed.body, tmp_path) == h264_stream(data, tmp_path)
    assert_clean_av(remuxed, CASES[name], tmp_path)
    assert not [s for s in CASES[name].secrets if s.encode() in remuxed.body]
    encoded = await run(data, AvLimits(allow_remux=False))
    assert encoded.info is not None and not encoded.info.remuxed
    assert h264_stream(encoded.body, tmp_path) != h264_stream(data, tmp_path)


@pytest.mark.parametrize(
    "name", ["rotated-h264.mp4", "h264-10bit.mkv", "phone-hevc-rotated-gps.mov", "high-fps.mp4"]
)
async def test_non_compliant_input_is_encoded_even_with_remux_on(corpus: Path, name: str) -> None:
    got = await run((corpus / name).read_bytes(), AvLimits(allow_remux=True))
    assert got.info is not None and not got.info.remuxed


def first_frame(path: Path, size: tuple[int, int]) -> bytes:
    """Frame 0 as RGB at `size`, decoded the way a player does (rotation applied)."""
    scale = f"scale={size[0]}:{size[1]}"
    argv = ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-vf", scale]
    argv += ["-pix_fmt", "rgb24", "-f", "rawvideo", "-"]
    return subprocess.run(argv, capture_output=True, check=True).stdout


async def test_rotated_hevc_comes_out_upright(corpus: Path, tmp_path: Path) -> None:
    source = corpus / "phone-hevc-rotated-gps.mov"
    got = await run(source.read_bytes())
    assert got.info is not None and (got.info.width, got.info.height) == (48, 64)
    out = tmp_path / "out.mp4"
    out.write_bytes(got.body)
    seen, expected = first_frame(out, (48, 64)), first_frame(source, (48, 64))
    assert len(seen) == len(expected) == 48 * 64 * 3
    assert sum(abs(a - b) for a, b in zip(seen, expected, strict=True)) / len(seen) < 12
    # ...and not merely similar in colour: the same picture upside down is far off.
    pixels = [expected[i : i + 3] for i in range(0, len(expected), 3)]
    upside_down = b"".join(reversed(pixels))
    assert sum(abs(a - b) for a, b in zip(seen, upside_down, strict=True)) / len(seen) > 30


@pytest.mark.parametrize("mode", MODES)
async def test_both_box_modes(corpus: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(box.MODE_ENV, mode)
    got = await run((corpus / "gps.mov").read_bytes())
    assert got.result == "video" and got.info is not None and got.info.size == len(got.body)
    assert await gone()  # the plaintext's job dir went with the box


@pytest.fixture(scope="module")
def noisy_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Noise encodes big: an output far larger than the pipes and the channel between us."""
    path = tmp_path_factory.mktemp("noise") / "noise.mp4"
    src = "nullsrc=size=640x360:rate=10:duration=4,geq=lum=random(1)*255:cb=128:cr=128"
    argv = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", src, "-c:v", "libx264"]
    subprocess.run([*argv, "-preset", "ultrafast", "-crf", "30", str(path)], check=True)
    return path.read_bytes()


async def test_consumer_stopping_early_kills_the_box(noisy_clip: bytes) -> None:
    async with normalise_av(feed(noisy_clip), MP4, AvLimits()) as stream:
        assert stream.info.size > 2 << 20
        await anext(stream.chunks)
        assert "python" in " ".join(box_processes())  # the child, blocked on its stdout
    assert await gone()


async def test_cancelling_during_ffmpeg_kills_it(noisy_clip: bytes) -> None:
    async def consume() -> None:
        async with normalise_av(feed(noisy_clip), MP4, AvLimits()) as stream:
            async for _ in stream.chunks:
                pass

    task = asyncio.create_task(consume())
    deadline = time.monotonic() + 20
    while "ffmpeg" not in box_processes():
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone()
