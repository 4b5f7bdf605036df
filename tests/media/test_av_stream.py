"""The parent side of the video child: streaming, outcomes, timeouts and malformed headers."""

from __future__ import annotations

import json
import sys
import tracemalloc
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Any

import pytest

from ephemeral.media import av
from ephemeral.media.av import AvLimits, normalise_av, parse_header
from ephemeral.media.av_args import (
    OutputBounds,
)
from ephemeral.media.box import BoxLimits
from ephemeral.media.errors import MediaRejected
from ephemeral.media.probe import (
    Selection,
    Stream,
)
from ephemeral.media.sniff import JPEG, MATROSKA, MP4, Sniffed
from tests.media.test_corpus import box_processes, gone

H264 = Stream(0, "video", "h264", "High", 40, "yuv420p", 1920, 1080, fps=Fraction(30))
AAC = Stream(1, "audio", "aac", "LC", channels=2, sample_rate=48000)
CLIP = Selection("video", H264, AAC, 10.0)
VOICE = Selection("audio", None, Stream(0, "audio", "opus", channels=1), 5.0)
BOUNDS = OutputBounds()


FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def header(**change: Any) -> bytes:
    fields = {"kind": "video", "mime": "video/mp4", "width": 64, "height": 48}
    fields |= {"duration": 1.0, "size": 1000, "remuxed": False, **change}
    return json.dumps(fields).encode()


def stand_in(script: str) -> Any:
    def argv(_sniffed: Sniffed, _limits: AvLimits) -> list[str]:
        code = "import sys, os, time, json\nout = sys.stdout.buffer\n" + script
        return [sys.executable, "-I", "-c", code]

    return argv


async def chunks(data: bytes = b"input") -> AsyncIterator[bytes]:
    yield data


async def read_all(limits: AvLimits | None = None, sniffed: Sniffed = MP4) -> tuple[Any, bytes]:
    async with normalise_av(chunks(), sniffed, limits or AvLimits()) as stream:
        body = b"".join([c async for c in stream.chunks])
    return stream.info, body


async def test_stream_round_trip_with_flat_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    size = 24 << 20
    script = (
        f"out.write({header(size=size)!r} + b'\\n' + {FTYP!r})\n"
        f"block = b'x' * 65536\nleft = {size} - {len(FTYP)}\n"
        "while left > 0:\n    out.write(block[:left]); left -= 65536\n"
    )
    monkeypatch.setattr(av, "child_argv", stand_in(script))
    tracemalloc.start()
    try:
        total = 0
        async with normalise_av(chunks(), MP4, AvLimits()) as stream:
            assert stream.info.size == size and stream.info.kind == "video"
            async for chunk in stream.chunks:
                total += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < 6 << 20  # 24 MiB went through; a few MiB at most were ever held


@pytest.mark.parametrize(
    ("script", "code", "detail"),
    [
        ("out.write(b'{}\\n' + b'x' * 5)", "processing-failed", "malformed"),
        ("out.write(b'no header')", "processing-failed", "malformed"),
        ("pass", "processing-failed", "malformed"),
        (
            'sys.stderr.write(\'{"code": "too-long", "detail": "91 s"}\\n\'); sys.exit(12)',
            "too-long",
            "91 s",
        ),
        ("sys.exit(13)", "no-media-stream", "no audio or video stream"),
        ("sys.exit(3)", "processing-failed", "failed (3)"),
        ("os.kill(os.getpid(), 9)", "processing-failed", "killed (SIGKILL)"),
        (f"out.write({header(size=1000)!r} + b'\\n' + b'<html>' * 200)", "processing-failed", ""),
        (f"out.write({header(size=1000)!r} + b'\\n' + {FTYP!r} * 10)", "processing-failed", ""),
        (f"out.write({header(size=24)!r} + b'\\n' + {FTYP!r} * 2)", "processing-failed", ""),
        (
            f"out.write({header(size=24)!r} + b'\\n' + {FTYP!r}); sys.exit(1)",
            "processing-failed",
            "",
        ),
        (f"out.write({header(kind='audio')!r} + b'\\n' + {FTYP!r})", "processing-failed", ""),
    ],
)
async def test_child_outcomes(
    monkeypatch: pytest.MonkeyPatch, script: str, code: str, detail: str
) -> None:
    monkeypatch.setattr(av, "child_argv", stand_in(script))
    with pytest.raises(MediaRejected) as caught:
        await read_all()
    assert caught.value.code == code and detail in caught.value.detail


async def test_timeout_is_processing_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(av, "child_argv", stand_in("time.sleep(30)"))
    limits = AvLimits(box=BoxLimits(wall_seconds=0.5))
    with pytest.raises(MediaRejected) as caught:
        await read_all(limits)
    assert (caught.value.code, caught.value.detail) == (
        "processing-failed",
        "media processing timed out",
    )


async def test_consumer_leaving_early_ends_the_box(monkeypatch: pytest.MonkeyPatch) -> None:
    script = f"out.write({header(size=1 << 30)!r} + b'\\n' + {FTYP!r})\n"
    script += "while True: out.write(b'x' * 65536)"
    monkeypatch.setattr(av, "child_argv", stand_in(script))
    limits = AvLimits(box=BoxLimits(wall_seconds=30, file_size_bytes=2 << 30))
    async with normalise_av(chunks(), MP4, limits) as stream:
        await anext(stream.chunks)
        assert box_processes()  # still there, blocked on a full pipe
    assert await gone()


async def test_not_av_never_starts_a_child() -> None:
    for sniffed in (JPEG, Sniffed("video", "avi", "video/x-msvideo")):
        with pytest.raises(MediaRejected) as caught:
            await read_all(sniffed=sniffed)
        assert caught.value.code == "invalid-media"
    with pytest.raises(ValueError, match="preset"):
        await read_all(AvLimits(preset="placebo"), MATROSKA)


@pytest.mark.parametrize(
    "line",
    [
        header(kind="image"),
        header(mime="video/quicktime"),
        header(kind="audio", mime="audio/mp4"),  # audio with a frame size
        header(width=1922),
        header(width=1920, height=1088),
        header(width=0),
        header(width=True),
        header(duration=0),
        header(duration=75.0),
        header(duration="1"),
        header(size=0),
        header(size=1.5),
        header(remuxed=True),
        header(remuxed=1),
        b"[]",
        b"{",
    ],
)
def test_malformed_header(line: bytes) -> None:
    with pytest.raises(MediaRejected) as caught:
        parse_header(line, AvLimits())
    assert caught.value.code == "processing-failed"


def test_well_formed_headers() -> None:
    info = parse_header(header(width=1080, height=1920), AvLimits())
    assert (info.kind, info.width, info.height, info.remuxed) == ("video", 1080, 1920, False)
    voice = parse_header(
        header(kind="audio", mime="audio/mp4", width=None, height=None), AvLimits()
    )
    assert voice.kind == "audio" and voice.width is None
    assert parse_header(header(remuxed=True), AvLimits(allow_remux=True)).remuxed
