"""Boxed child: probe, check, re-encode (or remux) one video or voice note from stdin to stdout."""

# Protocol (av.py is the other end). stdin: the upload's plaintext, copied into the job dir.
# On success, exit 0 and stdout = one JSON line {"kind", "mime", "width", "height", "duration",
# "size", "remuxed"} then exactly `size` bytes of MP4 (video) or M4A (audio), moov first.
# On refusal, exit with an errors.EXIT_* code and a last stderr line {"code", "detail"}.

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import IO, NoReturn

from ephemeral.media.av_args import (
    PRESETS,
    EncodeOptions,
    OutputBounds,
    check_output,
    decode_check_argv,
    encode_argv,
    finalise_argv,
    remux_eligible,
)
from ephemeral.media.errors import (
    EXIT_INVALID_MEDIA,
    EXIT_PROCESSING_FAILED,
    refuse,
    signal_name,
)
from ephemeral.media.probe import (
    Probe,
    Refused,
    Selection,
    check_input,
    parse_probe,
    probe_argv,
)

INPUT, ENCODED, OUTPUT, LOG = "input.media", "encoded.mp4", "output.mp4", "tool.log"
_READ = 1 << 20
_LOG_TAIL = 4096
# ffmpeg failing on these is the box running short, not the input being bad.
_BOX_WORDS = (b"Cannot allocate memory", b"No space left on device", b"File too large")


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_us(parent: int) -> None:
    """preexec_fn (safe: this process has one thread): in shm mode no pid namespace ends a
    tool whose box died with its worker, so the kernel is asked to."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # we died before the prctl took effect
        os._exit(1)


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise Refused(EXIT_PROCESSING_FAILED, "processing timed out")
        return left


def receive(path: str) -> int:
    """stdin to a 0600 file in the job dir (in unshare mode a private tmpfs); its size."""
    total = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := sys.stdin.buffer.read(_READ):
                out.write(chunk)
                total += len(chunk)
    except OSError as exc:  # EFBIG (RLIMIT_FSIZE) or ENOSPC (the tmpfs): the box is full
        raise Refused(EXIT_PROCESSING_FAILED, "input does not fit the box") from exc
    return total


def run_tool(
    argv: list[str], deadline: Deadline, *, what: str, stdout: IO[bytes] | None = None
) -> int:
    """Run ffmpeg/ffprobe (argv, no shell); its stderr goes to a file, its tail to ours."""
    with open(LOG, "wb") as log:
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout or log,
                stderr=log,
                timeout=deadline.left(),
                preexec_fn=functools.partial(_die_with_us, os.getpid()),
            )
        except subprocess.TimeoutExpired as exc:  # run() has killed it
            raise Refused(EXIT_PROCESSING_FAILED, f"{what} timed out") from exc
    tail = _log_tail()
    if proc.returncode < 0:  # RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE: the box, not the input
        raise Refused(
            EXIT_PROCESSING_FAILED, f"{what} was killed ({signal_name(-proc.returncode)})"
        )
    if proc.returncode != 0 and any(word in tail for word in _BOX_WORDS):
        raise Refused(EXIT_PROCESSING_FAILED, f"{what} ran out of room")
    return proc.returncode


def _log_tail() -> bytes:
    """The end of the tool's stderr, copied to ours for the worker's log; never shown to users."""
    with open(LOG, "rb") as f:
        f.seek(max(0, os.path.getsize(LOG) - _LOG_TAIL))
        tail = f.read().strip()
    if tail:
        sys.stderr.buffer.write(tail + b"\n")
        sys.stderr.flush()
    return tail


def probe(path: str, fmt: str, deadline: Deadline, *, full: bool = False) -> Probe:
    out = path + ".json"
    with open(out, "wb") as f:
        code = run_tool(probe_argv(path, fmt, full=full), deadline, what="probe", stdout=f)
    with open(out, "rb") as f:
        raw = f.read(8 << 20)  # inputs get no tags in it (probe_argv): far smaller than this
    os.unlink(out)
    if code != 0:
        raise Refused(EXIT_INVALID_MEDIA, "the file could not be read as media")
    return parse_probe(raw)


def zscale_available(deadline: Deadline) -> bool:
    """Asked only for HDR input: most jobs never pay for the extra process."""
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-filters"]
    with open("filters.txt", "w+b") as listing_file:
        run_tool(argv, deadline, what="ffmpeg -filters", stdout=listing_file)
        listing_file.seek(0)
        listing = listing_file.read()
    return any(line.split()[1:2] == [b"zscale"] for line in listing.splitlines())


def moov_first(path: str) -> bool:
    """+faststart really happened: the moov box comes before the mdat box."""
    with open(path, "rb") as f:
        while header := f.read(8):
            if len(header) < 8:
                return False
            size, kind = int.from_bytes(header[:4], "big"), header[4:]
            if kind in (b"moov", b"mdat"):
                return kind == b"moov"
            if size == 1:
                size = int.from_bytes(f.read(8), "big") - 8
            if size < 8:
                return False
            f.seek(size - 8, os.SEEK_CUR)
    return False


def process(args: argparse.Namespace, deadline: Deadline) -> dict[str, object]:
    """Everything between the input file and the output file; returns the header."""
    fmt, bounds = args.format, OutputBounds()
    found = probe(INPUT, fmt, deadline)
    selection = check_input(found, fmt, args.max_duration, args.max_width, args.max_height)
    remuxed = args.allow_remux and remux_eligible(fmt, selection, bounds)
    if remuxed:
        check = decode_check_argv(INPUT, fmt, selection, args.threads)
        remuxed = run_tool(check, deadline, what="decode check") == 0 and _quiet()
    if remuxed:
        final = finalise_argv(INPUT, OUTPUT, fmt, selection, args.threads, intermediate=False)
        _ffmpeg(final, deadline, "remux")
    else:
        encode(args, selection, bounds, deadline)
    out = probe(OUTPUT, "mp4", deadline, full=True)
    duration = check_output(out, selection, args.max_duration, bounds)
    if not moov_first(OUTPUT):
        raise Refused(EXIT_PROCESSING_FAILED, "output is not faststart")
    video = out.video
    return {
        "kind": selection.kind,
        "mime": "video/mp4" if selection.kind == "video" else "audio/mp4",
        "width": video.width if video else None,
        "height": video.height if video else None,
        "duration": round(duration, 3),
        "size": os.path.getsize(OUTPUT),
        "remuxed": remuxed,
    }


def encode(
    args: argparse.Namespace, selection: Selection, bounds: OutputBounds, deadline: Deadline
) -> None:
    pixels = args.max_width * args.max_height
    opts = EncodeOptions(args.threads, args.crf, args.preset, args.max_duration, pixels, bounds)
    zscale = selection.video is not None and selection.video.hdr and zscale_available(deadline)
    encoded = ENCODED if selection.kind == "video" else OUTPUT
    argv = encode_argv(INPUT, encoded, args.format, selection, opts, zscale=zscale)
    _ffmpeg(argv, deadline, "encoding")
    os.unlink(INPUT)  # the plaintext input leaves the tmpfs as soon as it is not needed
    if encoded != OUTPUT:
        final = finalise_argv(ENCODED, OUTPUT, "mp4", selection, args.threads, intermediate=True)
        _ffmpeg(final, deadline, "muxing")
        os.unlink(ENCODED)


def _quiet() -> bool:
    return os.path.getsize(LOG) == 0


def _ffmpeg(argv: list[str], deadline: Deadline, what: str) -> None:
    if run_tool(argv, deadline, what=what) != 0:
        raise Refused(EXIT_INVALID_MEDIA, "the media could not be decoded")


def send(header: dict[str, object]) -> None:
    sys.stdout.buffer.write(json.dumps(header).encode() + b"\n")
    with open(OUTPUT, "rb") as f:
        shutil.copyfileobj(f, sys.stdout.buffer, 64 * 1024)
    sys.stdout.buffer.flush()


def main(argv: list[str]) -> NoReturn:
    parser = argparse.ArgumentParser(prog="av_child")
    parser.add_argument("--format", required=True)
    parser.add_argument("--max-duration", type=float, required=True)
    parser.add_argument("--max-width", type=int, required=True)
    parser.add_argument("--max-height", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--crf", type=int, required=True)
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--deadline", type=float, required=True)
    parser.add_argument("--allow-remux", action="store_true")
    args = parser.parse_args(argv)
    deadline = Deadline(args.deadline)
    try:
        receive(INPUT)
        header = process(args, deadline)
    except Refused as exc:
        refuse(exc.exit_code, exc.detail)
    except MemoryError:
        refuse(EXIT_PROCESSING_FAILED, "out of memory")
    except Exception as exc:
        refuse(EXIT_PROCESSING_FAILED, f"unexpected {type(exc).__name__}")
    send(header)
    sys.exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
