"""Normalise a video or voice note in the box, streaming the MP4/M4A out with bounded memory."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sys
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ephemeral.media import errors
from ephemeral.media.av_args import PRESETS
from ephemeral.media.box import BoxError, BoxLimits, BoxResult, BoxTimeout, run_boxed_stream
from ephemeral.media.errors import MediaRejected, RejectCode
from ephemeral.media.probe import DEMUXERS
from ephemeral.media.sniff import M4A, MP4, SNIFF_BYTES, Sniffed, sniff

_HEADER_MAX = 1024
_DEPTH = 16  # chunks of ≤ 64 KiB between the box and the consumer: 1 MiB in flight at most
_DEFAULT_DETAIL: dict[RejectCode, str] = {
    "invalid-media": "not a supported video or voice note",
    "too-long": "media is too long",
    "too-many-pixels": "video frame is too large",
    "no-media-stream": "no audio or video stream",
    "processing-failed": "the media could not be processed",
}
_MIMES: dict[str, tuple[str, Sniffed]] = {"video": ("video/mp4", MP4), "audio": ("audio/mp4", M4A)}


def _video_box() -> BoxLimits:
    # Decoding 4K HEVC and tone-mapping it needs ~1.5 GiB of address space; the tmpfs holds
    # the input (≤ 100 MiB), the encoded file and the final one; CPU is per process.
    return BoxLimits(
        cpu_seconds=600,
        memory_bytes=2 << 30,
        file_size_bytes=256 << 20,
        open_files=64,
        tmpfs_bytes=384 << 20,
        wall_seconds=240,
    )


@dataclass(frozen=True)
class AvLimits:
    max_duration: float = 60.0  # seconds, video and audio
    max_width: int = 3840  # input frame limit, compared long side to long side
    max_height: int = 2160
    allow_remux: bool = False
    box: BoxLimits = field(default_factory=_video_box)
    threads: int = 2  # ffmpeg -threads: RLIMIT_AS counts every thread's stack
    crf: int = 23
    preset: str = "veryfast"


@dataclass(frozen=True)
class AvInfo:
    kind: Literal["video", "audio"]
    mime: str  # "video/mp4" | "audio/mp4"
    width: int | None  # display dimensions, after rotation; None for audio
    height: int | None
    duration: float
    size: int
    remuxed: bool


@dataclass(frozen=True)
class NormalisedStream:
    info: AvInfo
    # The output bytes as they leave the box. Raises MediaRejected at the end if the box did
    # not finish cleanly: a consumer that stored the chunks must then throw them away.
    chunks: AsyncIterator[bytes]


class _Channel:
    """Box stdout to the consumer: the box waits while `depth` chunks are unread."""

    def __init__(self, depth: int) -> None:
        self._items: collections.deque[bytes] = collections.deque()
        self._space = asyncio.Semaphore(depth)
        self._ready = asyncio.Event()
        self._closed = False

    async def send(self, chunk: bytes) -> None:
        await self._space.acquire()
        self._items.append(chunk)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def receive(self) -> bytes | None:
        """The next chunk, or None once the box is done and everything was read."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        self._space.release()
        return self._items.popleft()


def child_argv(sniffed: Sniffed, limits: AvLimits) -> list[str]:
    argv = [sys.executable, "-I", "-m", "ephemeral.media.av_child", "--format", sniffed.format]
    argv += ["--max-duration", repr(float(limits.max_duration))]
    argv += ["--max-width", str(limits.max_width), "--max-height", str(limits.max_height)]
    argv += ["--threads", str(limits.threads), "--crf", str(limits.crf), "--preset", limits.preset]
    # The child gives up a little before the box kills it, so the reason is its own.
    argv += ["--deadline", f"{max(1.0, limits.box.wall_seconds * 0.9):.1f}"]
    return [*argv, "--allow-remux"] if limits.allow_remux else argv


@contextlib.asynccontextmanager
async def normalise_av(
    chunks: AsyncIterable[bytes | bytearray], sniffed: Sniffed, limits: AvLimits
) -> AsyncIterator[NormalisedStream]:
    """Probe, check and re-encode (or remux) in a boxed child; yields once the output is
    accepted. Anything about the input raises MediaRejected (an error of `chunks` itself, or
    an OSError starting the box, passes through as it is). On exit the box is gone, whether
    or not `.chunks` was read to the end."""
    if sniffed.kind not in ("video", "audio") or sniffed.format not in DEMUXERS:
        raise MediaRejected("invalid-media", _DEFAULT_DETAIL["invalid-media"])
    if limits.preset not in PRESETS or not 1 <= limits.threads <= 64:
        raise ValueError(f"bad AvLimits: preset {limits.preset!r}, threads {limits.threads}")
    channel = _Channel(_DEPTH)
    runner = asyncio.create_task(
        run_boxed_stream(child_argv(sniffed, limits), chunks, limits.box, channel.send)
    )
    runner.add_done_callback(lambda _task: channel.close())
    try:
        info, rest = await _read_header(channel, runner, limits)
        yield NormalisedStream(info, _body(channel, runner, info, rest))
    finally:
        if not runner.done():
            runner.cancel()  # kills the box's process group (and its pid namespace)
        await asyncio.wait({runner})
        if not runner.cancelled():
            runner.exception()  # retrieved: whatever it was has been reported already


async def _outcome(runner: asyncio.Task[BoxResult]) -> BoxResult:
    try:
        return await runner
    except BoxTimeout as exc:
        raise MediaRejected("processing-failed", "media processing timed out") from exc
    except BoxError as exc:
        raise MediaRejected("processing-failed", str(exc)) from exc


async def _read_header(
    channel: _Channel, runner: asyncio.Task[BoxResult], limits: AvLimits
) -> tuple[AvInfo, bytes]:
    buf = bytearray()
    while (newline := buf.find(b"\n")) < 0 and len(buf) <= _HEADER_MAX:
        chunk = await channel.receive()
        if chunk is None:
            result = await _outcome(runner)
            if result.returncode != 0:
                raise rejection(result)
            break
        buf += chunk
    if newline < 0 or newline > _HEADER_MAX:
        raise MediaRejected("processing-failed", "the media box gave malformed output")
    return parse_header(bytes(buf[:newline]), limits), bytes(buf[newline + 1 :])


def parse_header(line: bytes, limits: AvLimits) -> AvInfo:
    """The child's header, believed only if it fits the contract in every field."""
    try:
        h: Any = json.loads(line)
    except ValueError:
        h = None
    if not isinstance(h, dict) or not _valid_header(h, limits):
        raise MediaRejected("processing-failed", "the media box gave malformed output")
    return AvInfo(
        h["kind"], h["mime"], h["width"], h["height"], float(h["duration"]), h["size"], h["remuxed"]
    )


def _valid_header(h: dict[str, Any], limits: AvLimits) -> bool:
    kind, dims = h.get("kind"), (h.get("width"), h.get("height"))
    duration: Any = h.get("duration")
    if kind not in _MIMES or h.get("mime") != _MIMES[kind][0]:
        return False
    if kind == "video":
        sides = sorted(d if type(d) is int else 0 for d in dims)
        dims_ok = 0 < sides[0] <= 1080 and sides[1] <= 1920
    else:
        dims_ok = dims == (None, None)
    return (
        dims_ok
        and isinstance(duration, int | float)
        and not isinstance(duration, bool)
        and 0 < duration <= limits.max_duration + 1
        and type(h.get("size")) is int
        and 0 < h["size"] <= limits.box.file_size_bytes
        and type(h.get("remuxed")) is bool
        and (limits.allow_remux or not h["remuxed"])
    )


async def _body(
    channel: _Channel, runner: asyncio.Task[BoxResult], info: AvInfo, first: bytes
) -> AsyncIterator[bytes]:
    total, head = 0, first
    # Hold the first bytes back until they sniff as the container the header names.
    while len(head) < SNIFF_BYTES and (more := await channel.receive()) is not None:
        head += more
    if sniff(head) != _MIMES[info.kind][1]:
        raise MediaRejected("processing-failed", "the media box gave malformed output")
    chunk: bytes | None = head
    while chunk is not None:
        total += len(chunk)
        if total > info.size:
            raise MediaRejected("processing-failed", "the media box wrote more than it said")
        yield chunk
        chunk = await channel.receive()
    result = await _outcome(runner)
    if result.returncode != 0 or total != info.size:
        raise MediaRejected("processing-failed", "the media box stopped early")


def rejection(result: BoxResult) -> MediaRejected:
    return errors.rejection(result.returncode, result.stderr, _DEFAULT_DETAIL, "media processing")
