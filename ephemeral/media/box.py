"""Run a parser (Pillow, libheif, ffmpeg) as a boxed child process: the largest attack surface."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from ephemeral.media.boxchild import CHILD_ENV
from ephemeral.media.boxchild import harden_process as harden_process
from ephemeral.media.jobdir import cleanup_stale_job_dirs as cleanup_stale_job_dirs
from ephemeral.media.jobdir import make_job_dir, remove_job_dir

Mode = Literal["unshare", "shm"]
MODE_ENV = "EPHEMERAL_BOX_MODE"  # forces a mode (tests, or a host where the probe misleads)

Sink = Callable[[bytes], Awaitable[None]]
Stdin = bytes | AsyncIterable[bytes | bytearray] | None

_CHUNK = 64 * 1024
_STDERR_CAP = 64 * 1024
# As root, each job runs as its own uid from this range (no passwd entry needed): two jobs
# cannot signal or ptrace each other and the parser owns no host file.
_UID_BASE = 0x7000_0000
_UID_SPAN = 1 << 24


@dataclass(frozen=True)
class BoxLimits:
    cpu_seconds: int = 60
    memory_bytes: int = 1 << 30  # RLIMIT_AS: address space, not resident memory
    file_size_bytes: int = 512 << 20  # RLIMIT_FSIZE, and also the cap on stdout
    open_files: int = 64
    tmpfs_bytes: int = 256 << 20  # the job tmpfs in unshare mode
    wall_seconds: float = 120
    # Paths covered by an empty mount inside the box (unshare mode): the keyring, the data dir,
    # the config. A parser that stays root must not read the service's secrets.
    hidden: tuple[str, ...] = ()


@dataclass(frozen=True)
class BoxResult:
    returncode: int  # negative: killed by that signal, as in subprocess
    stdout: bytes  # empty when streamed to a sink
    stderr: bytes  # at most the first 64 KiB
    mode: Mode


class BoxError(Exception):
    """The box, not the input, decided the outcome."""


class BoxTimeout(BoxError):
    def __init__(self, seconds: float, stderr: bytes) -> None:
        super().__init__(f"killed after {seconds} s wall-clock")
        self.stderr = stderr


class BoxOutputTooLarge(BoxError):
    def __init__(self, cap: int) -> None:
        super().__init__(f"child wrote more than {cap} bytes to stdout")


_MODES: dict[str, Mode] = {"unshare": "unshare", "shm": "shm"}
_probed_mode: Mode | None = None
_probed_drop: bool | None = None


async def box_mode(forced: Mode | None = None) -> Mode:
    """The mode to run in: the argument, else $EPHEMERAL_BOX_MODE, else a probe made once."""
    global _probed_mode
    if forced is not None:
        return forced
    env = os.environ.get(MODE_ENV, "")
    if env:
        if env not in _MODES:
            raise ValueError(f"{MODE_ENV} must be one of {sorted(_MODES)}, not {env!r}")
        return _MODES[env]
    if _probed_mode is None:
        _probed_mode = await _probe_mode()
    return _probed_mode


async def _probe_mode() -> Mode:
    """Build a real unshare box around `true`: if anything in it fails, use the fallback."""
    if os.geteuid() != 0 or shutil.which("unshare", path=CHILD_ENV["PATH"]) is None:
        return "shm"
    return "unshare" if await _probe(["true"], "unshare", drop=False) else "shm"


async def drops_privileges(mode: Mode) -> bool:
    """Whether children run as a per-job uid instead of root: only if that uid can start our
    Python (probed once). Under a 0700 home (pyenv in /root) it cannot; they stay root."""
    global _probed_drop
    if os.geteuid() != 0:
        return False
    if _probed_drop is None:
        probe = [sys.executable, "-I", "-c", "import ephemeral.media.sniff"]
        _probed_drop = await _probe(probe, mode, drop=True)
    return _probed_drop


async def _probe(argv: list[str], mode: Mode, *, drop: bool) -> bool:
    async def discard(_chunk: bytes) -> None:
        return None

    try:
        result = await _run(argv, None, BoxLimits(wall_seconds=10), discard, mode, drop=drop)
    except (BoxError, OSError):
        return False
    return result.returncode == 0


async def run_boxed(
    argv: list[str], stdin: Stdin, limits: BoxLimits, *, mode: Mode | None = None
) -> BoxResult:
    """Run argv boxed; stdin goes in whole or streamed, stdout comes back as bytes."""
    chunks: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        chunks.append(chunk)

    result = await run_boxed_stream(argv, stdin, limits, collect, mode=mode)
    return BoxResult(result.returncode, b"".join(chunks), result.stderr, result.mode)


async def run_boxed_stream(
    argv: list[str], stdin: Stdin, limits: BoxLimits, sink: Sink, *, mode: Mode | None = None
) -> BoxResult:
    """As run_boxed, but each stdout chunk (≤ 64 KiB) is awaited into sink as it arrives.

    The child blocks while sink is busy, so memory stays bounded for 100 MiB video outputs.
    An exception from sink kills the child and propagates.
    """
    chosen = await box_mode(mode)
    return await _run(argv, stdin, limits, sink, chosen, drop=await drops_privileges(chosen))


def _command(
    argv: list[str], limits: BoxLimits, mode: Mode, job: str, uid: int | None, status_fd: int
) -> list[str]:
    # setpriv: the box dies with the worker (SIGKILL included), not minutes later as an orphan.
    setpriv = shutil.which("setpriv")
    death = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
    wrapper = [*death, sys.executable, "-I", "-m", "ephemeral.media.boxchild", "--dir", job]
    wrapper += ["--cpu", str(limits.cpu_seconds), "--as", str(limits.memory_bytes)]
    wrapper += ["--fsize", str(limits.file_size_bytes), "--nofile", str(limits.open_files)]
    if uid is not None:
        wrapper += ["--uid", str(uid), "--gid", str(uid)]
    if mode == "shm":
        return [*wrapper, "--", *argv]
    wrapper += ["--tmpfs", str(limits.tmpfs_bytes), "--pid1", "--status-fd", str(status_fd)]
    for path in limits.hidden:
        wrapper += ["--hide", path]
    unshare = shutil.which("unshare", path=CHILD_ENV["PATH"]) or "unshare"
    # A pid namespace on top of -m -n: see boxchild._supervise.
    ns = ["--mount", "--net", "--pid", "--fork", "--kill-child", "--propagation", "private"]
    return [*death, unshare, *ns, "--", *wrapper[len(death) :], "--", *argv]


async def _run(
    argv: list[str], stdin: Stdin, limits: BoxLimits, sink: Sink, mode: Mode, *, drop: bool
) -> BoxResult:
    uid = _UID_BASE + secrets.randbelow(_UID_SPAN) if drop else None
    # In unshare mode the dir is only the mount point; the tmpfs on it is given to uid.
    job = make_job_dir(uid if mode == "shm" else None)
    status_r, status_w = os.pipe()
    try:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _Protocol(loop),
            *_command(argv, limits, mode, job, uid, status_w),
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(CHILD_ENV),
            cwd=job,
            start_new_session=True,  # its own process group, killed as a whole
            pass_fds=(status_w,) if mode == "unshare" else (),
        )
        os.close(status_w)
        status_w = -1
        stderr = bytearray()
        # What create_subprocess_exec builds, but we keep the transport to close it ourselves.
        proc = asyncio.subprocess.Process(transport, protocol, loop)
        returncode = await _supervise(proc, transport, protocol, stdin, limits, sink, stderr)
        if mode == "unshare":
            returncode = _read_status(status_r, returncode)
        return BoxResult(returncode, b"", bytes(stderr), mode)
    finally:
        for fd in (status_r, status_w):
            if fd >= 0:
                os.close(fd)
        remove_job_dir(job)


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's stream protocol, plus an event for "the process exited" (pipes may not be)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=_CHUNK, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


async def _supervise(
    proc: asyncio.subprocess.Process,
    transport: asyncio.SubprocessTransport,
    protocol: _Protocol,
    stdin: Stdin,
    limits: BoxLimits,
    sink: Sink,
    stderr: bytearray,
) -> int:
    assert protocol.stdout is not None and protocol.stderr is not None
    pgid = transport.get_pid()
    tasks = [
        asyncio.create_task(_feed(protocol.stdin, stdin)),
        asyncio.create_task(_pump(protocol.stdout, sink, limits.file_size_bytes)),
        asyncio.create_task(_drain_stderr(protocol.stderr, stderr)),
        asyncio.create_task(_sweep_on_exit(protocol.exited, pgid)),
    ]
    try:
        async with asyncio.timeout(limits.wall_seconds):
            await asyncio.gather(*tasks)
    except TimeoutError as exc:
        raise BoxTimeout(limits.wall_seconds, bytes(stderr)) from exc
    finally:
        # Also on cancellation and on a failing sink: nothing of the job outlives this call.
        _kill_group(pgid)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Closing our pipe ends instead of reading them to EOF cannot hang on a stray holder;
        # wait() returns once the child is reaped and the pipes are shut.
        transport.close()
        await proc.wait()
    return await proc.wait()


async def _feed(writer: asyncio.StreamWriter | None, stdin: Stdin) -> None:
    if writer is None or stdin is None:
        return
    try:
        if isinstance(stdin, bytes):
            view = memoryview(stdin)
            for start in range(0, len(view), _CHUNK):
                writer.write(view[start : start + _CHUNK])
                await writer.drain()
        else:
            async for chunk in stdin:
                writer.write(chunk)
                await writer.drain()
        writer.close()
        await writer.wait_closed()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the child stopped reading; its exit status says why
    finally:
        writer.close()


async def _pump(stream: asyncio.StreamReader, sink: Sink, cap: int) -> None:
    total = 0
    while chunk := await stream.read(_CHUNK):
        total += len(chunk)
        if total > cap:
            raise BoxOutputTooLarge(cap)
        await sink(chunk)


async def _drain_stderr(stream: asyncio.StreamReader, into: bytearray) -> None:
    # Keep reading past the cap so a chatty child never blocks on a full pipe.
    while chunk := await stream.read(_CHUNK):
        into += chunk[: max(0, _STDERR_CAP - len(into))]


async def _sweep_on_exit(exited: asyncio.Event, pgid: int) -> None:
    await exited.wait()
    # Whatever it left running in its group would hold stdout open; it goes now.
    _kill_group(pgid)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read_status(fd: int, fallback: int) -> int:
    """The target's exit status as boxchild reported it, if boxchild lived to report it."""
    os.set_blocking(fd, False)
    try:
        return int(os.read(fd, 64).decode("ascii").strip())
    except (BlockingIOError, ValueError):
        return fallback
