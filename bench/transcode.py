"""Video: our boxed pipeline against plain ffmpeg with the same argv, remux speed, memory."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bench.harness import REPEATS as HARNESS_REPEATS
from bench.harness import Figure
from ephemeral.media.av import AvLimits, normalise_av
from ephemeral.media.av_args import EncodeOptions, OutputBounds, encode_argv, finalise_argv
from ephemeral.media.av_child import Deadline, probe
from ephemeral.media.probe import check_input
from ephemeral.media.sniff import sniff

REPEATS = int(os.environ.get("BENCH_TRANSCODE_REPEATS", str(HARNESS_REPEATS)))
SECONDS = 30


def make_input(path: Path, *, compliant: bool) -> Path:
    """A 30 s 1080p30 phone-like clip with sound (made here, nothing downloaded)."""
    video = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if compliant:
        video = [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-level",
            "4.2",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ]
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=1920x1080:rate=30:duration={SECONDS}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={SECONDS}",
            *video,
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
    )
    return path


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


async def ours(path: Path, allow_remux: bool) -> tuple[float, int, bool]:
    sniffed = sniff(path.read_bytes()[:64])
    assert sniffed is not None
    limits = AvLimits(allow_remux=allow_remux)
    started, size = time.perf_counter(), 0
    async with normalise_av(_chunks(path), sniffed, limits) as out:
        async for chunk in out.chunks:
            size += len(chunk)
        remuxed = out.info.remuxed
    return time.perf_counter() - started, size, remuxed


def plain_ffmpeg(path: Path, work: Path) -> float:
    """The same two ffmpeg runs the boxed child makes, run directly with no box around them."""
    deadline = Deadline(900)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        found = probe(str(path), "mov", deadline)
        selection = check_input(found, "mov", 60.0, 3840, 2160)
        opts = EncodeOptions(2, 23, "veryfast", 60.0, 3840 * 2160, OutputBounds())
        started = time.perf_counter()
        for argv in (
            encode_argv(str(path), "encoded.mp4", "mov", selection, opts, zscale=False),
            finalise_argv("encoded.mp4", "out.mp4", "mp4", selection, 2, intermediate=True),
        ):
            subprocess.run(argv, check=True, capture_output=True)
        return time.perf_counter() - started
    finally:
        os.chdir(cwd)


def measure() -> dict[str, Figure]:
    with tempfile.TemporaryDirectory(prefix="ephv-", dir="/tmp") as tmp:
        work = Path(tmp)
        source = make_input(work / "phone.mp4", compliant=False)
        compliant = make_input(work / "compliant.mp4", compliant=True)
        figures = {
            "transcode": Figure("our boxed transcode, 30 s 1080p30", "s"),
            "baseline_transcode": Figure("plain ffmpeg, the same argv, no box", "s"),
            "remux": Figure("remux of a compliant 30 s 1080p clip", "x real time"),
        }
        asyncio.run(ours(source, allow_remux=False))  # warm-up: imports, caches
        self_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(REPEATS):
            seconds, _, remuxed = asyncio.run(ours(source, allow_remux=False))
            assert not remuxed
            figures["transcode"].samples.append(seconds)
            figures["baseline_transcode"].samples.append(plain_ffmpeg(source, work))
            seconds, _, remuxed = asyncio.run(ours(compliant, allow_remux=True))
            assert remuxed
            figures["remux"].samples.append(SECONDS / seconds)
        self_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        figures["worker_rss_growth"] = Figure(
            "worker process peak RSS growth while streaming video",
            "MiB",
            [(self_after - self_before) / 1024],
        )
        figures["ffmpeg_rss"] = Figure("peak RSS of a boxed ffmpeg", "MiB", [children / 1024])
        return figures
