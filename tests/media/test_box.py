"""The parser box, in both modes: environment, limits, network, kills, and job dir cleanup."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ephemeral.media import box
from ephemeral.media.box import (
    BoxLimits,
    BoxOutputTooLarge,
    BoxTimeout,
    Mode,
    box_mode,
    cleanup_stale_job_dirs,
    run_boxed,
    run_boxed_stream,
)
from ephemeral.media.boxchild import CHILD_ENV
from ephemeral.media.jobdir import JOB_PREFIX, job_root


def _unshare_works() -> str | None:
    """None if unshare mode can run here, else why not."""
    if os.geteuid() != 0:
        return "unshare mode needs root (the non-root container uses the shm fallback)"
    if shutil.which("unshare") is None:
        return "util-linux unshare is not installed"
    probe = subprocess.run(["unshare", "-m", "-n", "-p", "-f", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"unshare -m -n -p is not permitted here: {probe.stderr.decode().strip()}"
    return None


UNSHARE_SKIP = _unshare_works()
MODES = [
    pytest.param(
        "unshare", marks=pytest.mark.skipif(UNSHARE_SKIP is not None, reason=str(UNSHARE_SKIP))
    ),
    "shm",
]
LIMITS = BoxLimits(wall_seconds=20)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Mode:
    return request.param  # type: ignore[no-any-return]


def py(code: str) -> list[str]:
    return [sys.executable, "-I", "-c", code]


def processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(pid))
    return found


async def gone(marker: str, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while processes_with(marker):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_probe_picks_unshare_as_root() -> None:
    expected = "unshare" if UNSHARE_SKIP is None else "shm"
    assert await box._probe_mode() == expected


async def test_mode_forced_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(box.MODE_ENV, "shm")
    assert (await run_boxed(["true"], None, LIMITS)).mode == "shm"
    monkeypatch.setenv(box.MODE_ENV, "chroot")
    with pytest.raises(ValueError, match=box.MODE_ENV):
        await box_mode()


async def test_environment_is_empty(mode: Mode, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPHEMERAL_SECRET", "hunter2")
    result = await run_boxed(
        py("import os, json; print(json.dumps(dict(os.environ)))"), None, LIMITS, mode=mode
    )
    assert result.mode == mode
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == CHILD_ENV


async def test_stdin_to_stdout_bytes_and_stream(mode: Mode) -> None:
    payload = secrets.token_bytes(3 << 20)
    result = await run_boxed(["cat"], payload, LIMITS, mode=mode)
    assert (result.returncode, result.stdout, result.mode) == (0, payload, mode)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]

    received: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        await asyncio.sleep(0)  # a slow consumer: the child waits, memory stays bounded
        received.append(chunk)

    streamed = await run_boxed_stream(["cat"], chunks(), LIMITS, sink, mode=mode)
    assert streamed.returncode == 0 and streamed.stdout == b""
    assert b"".join(received) == payload
    assert max(map(len, received)) <= 64 * 1024


async def test_child_that_ignores_stdin(mode: Mode) -> None:
    result = await run_boxed(["true"], secrets.token_bytes(1 << 20), LIMITS, mode=mode)
    assert result.returncode == 0


async def test_exit_status_and_stderr(mode: Mode) -> None:
    result = await run_boxed(
        py("import sys; sys.stderr.write('oops'); sys.exit(3)"), None, LIMITS, mode=mode
    )
    assert (result.returncode, result.stderr) == (3, b"oops")


async def test_rlimits_capabilities_and_no_new_privs(mode: Mode) -> None:
    code = (
        "import resource as r, json\n"
        "lim = {n: r.getrlimit(getattr(r, n)) for n in "
        "('RLIMIT_CPU','RLIMIT_AS','RLIMIT_FSIZE','RLIMIT_NOFILE','RLIMIT_CORE')}\n"
        "lines = open('/proc/self/status').read().splitlines()\n"
        "st = dict(l.split(':\\t') for l in lines if ':\\t' in l)\n"
        "print(json.dumps({'lim': lim, 'capeff': st['CapEff'], 'nnp': st['NoNewPrivs']}))"
    )
    limits = BoxLimits(
        cpu_seconds=7, memory_bytes=700 << 20, file_size_bytes=5 << 20, open_files=32
    )
    result = await run_boxed(py(code), None, limits, mode=mode)
    got = json.loads(result.stdout)
    assert got["lim"] == {
        "RLIMIT_CPU": [7, 8],
        "RLIMIT_AS": [700 << 20] * 2,
        "RLIMIT_FSIZE": [5 << 20] * 2,
        "RLIMIT_NOFILE": [32, 32],
        "RLIMIT_CORE": [0, 0],
    }
    assert int(got["capeff"], 16) == 0
    assert got["nnp"] == "1"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand a job its own uid")
async def test_root_jobs_get_their_own_uid(mode: Mode, monkeypatch: pytest.MonkeyPatch) -> None:
    # Python here may live under a 0700 home, so prove the uid switch with /usr/bin tools.
    monkeypatch.setattr(box, "_probed_drop", True)
    script = "id -u; touch made-here && stat -c %u made-here"
    first = await run_boxed(["sh", "-c", script], None, LIMITS, mode=mode)
    second = await run_boxed(["sh", "-c", script], None, LIMITS, mode=mode)
    uids = [r.stdout.split() for r in (first, second)]
    assert all(len(set(u)) == 1 and int(u[0]) >= box._UID_BASE for u in uids), uids
    assert uids[0] != uids[1]


@pytest.mark.skipif(UNSHARE_SKIP is not None, reason=str(UNSHARE_SKIP))
async def test_no_network_in_unshare_mode() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    code = (
        "import socket, json\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2); out = 'connected'\n"
        "except OSError as e:\n"
        "    out = e.__class__.__name__ + ':' + str(e.errno)\n"
        "print(json.dumps({'connect': out, 'ifaces': [n for _, n in socket.if_nameindex()]}))"
    )
    async with server:
        boxed = json.loads((await run_boxed(py(code), None, LIMITS, mode="unshare")).stdout)
        # The same child outside the namespace reaches the server: the test itself is sound.
        free = json.loads((await run_boxed(py(code), None, LIMITS, mode="shm")).stdout)
    assert boxed["ifaces"] == ["lo"]
    assert boxed["connect"] != "connected"  # ENETUNREACH: even loopback is down
    assert free["connect"] == "connected"


@pytest.mark.skipif(UNSHARE_SKIP is not None, reason=str(UNSHARE_SKIP))
async def test_unshare_job_dir_is_private_capped_tmpfs() -> None:
    code = (
        "import os\n"
        "cwd = os.getcwd()\n"
        "mount = [l for l in open('/proc/self/mountinfo') if l.split()[4] == cwd][-1]\n"
        "print(mount.split(' - ')[1].strip()); print(oct(os.stat(cwd).st_mode & 0o777))\n"
        "open('big', 'wb').write(b'x' * (3 << 20))"
    )
    limits = BoxLimits(tmpfs_bytes=1 << 20, wall_seconds=20)
    result = await run_boxed(py(code), None, limits, mode="unshare")
    fs_line, perms = result.stdout.decode().splitlines()
    assert fs_line.startswith("tmpfs ") and "size=1024k" in fs_line and "noexec" not in perms
    assert perms == "0o700"
    assert result.returncode != 0 and b"No space left on device" in result.stderr


async def test_cpu_limit_kills(mode: Mode) -> None:
    started = time.monotonic()
    result = await run_boxed(
        py("while True: pass"), None, BoxLimits(cpu_seconds=1, wall_seconds=20), mode=mode
    )
    assert result.returncode in (-9, -24)  # SIGKILL or SIGXCPU
    assert time.monotonic() - started < 10


async def test_memory_limit(mode: Mode) -> None:
    code = "b = bytearray(512 << 20)\nprint('allocated')"
    result = await run_boxed(
        py(code), None, BoxLimits(memory_bytes=256 << 20, wall_seconds=20), mode=mode
    )
    assert result.returncode != 0 and result.stdout == b""
    assert b"MemoryError" in result.stderr


async def test_file_size_limit(mode: Mode) -> None:
    code = "open('big', 'wb').write(b'x' * (2 << 20))"
    result = await run_boxed(
        py(code), None, BoxLimits(file_size_bytes=1 << 20, wall_seconds=20), mode=mode
    )
    assert result.returncode != 0 and b"File too large" in result.stderr


async def test_stdout_cap(mode: Mode) -> None:
    code = "import sys; sys.stdout.buffer.write(b'x' * (3 << 20))"
    with pytest.raises(BoxOutputTooLarge):
        await run_boxed(
            py(code), None, BoxLimits(file_size_bytes=1 << 20, wall_seconds=20), mode=mode
        )


def _spawner(marker: str, escape: bool) -> list[str]:
    # A grandchild `sleep` in the child's group and, optionally, one that leaves it with setsid.
    code = (
        "import subprocess, time, os\n"
        f"subprocess.Popen(['sleep', '{marker}'])\n"
        + (f"subprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n" if escape else "")
        + "os.write(2, b'spawned')\ntime.sleep(120)"
    )
    return py(code)


async def test_wall_timeout_kills_the_process_group(mode: Mode) -> None:
    marker = f"{300 + secrets.randbelow(10**6) / 10**6:.6f}"
    started = time.monotonic()
    with pytest.raises(BoxTimeout) as caught:
        await run_boxed(_spawner(marker, escape=False), None, BoxLimits(wall_seconds=1), mode=mode)
    assert caught.value.stderr == b"spawned"  # the grandchild existed before the kill
    assert time.monotonic() - started < 5
    assert await gone(marker)


@pytest.mark.skipif(UNSHARE_SKIP is not None, reason=str(UNSHARE_SKIP))
async def test_pid_namespace_kills_even_setsid_escapers() -> None:
    marker = f"{300 + secrets.randbelow(10**6) / 10**6:.6f}"
    with pytest.raises(BoxTimeout) as caught:
        await run_boxed(
            _spawner(marker, escape=True), None, BoxLimits(wall_seconds=1), mode="unshare"
        )
    assert caught.value.stderr == b"spawned"
    assert await gone(marker)
    # And when the child exits normally, what it left behind dies with the namespace.
    code = f"import subprocess; subprocess.Popen(['sleep', '{marker}'], start_new_session=True)"
    result = await run_boxed(py(code), None, LIMITS, mode="unshare")
    assert result.returncode == 0
    assert await gone(marker)


async def test_cancellation_kills_the_process_group(mode: Mode) -> None:
    marker = f"{300 + secrets.randbelow(10**6) / 10**6:.6f}"
    task = asyncio.create_task(run_boxed(_spawner(marker, escape=False), None, LIMITS, mode=mode))
    deadline = time.monotonic() + 10
    while len(processes_with(marker)) < 2 and time.monotonic() < deadline:  # python + sleep
        await asyncio.sleep(0.05)
    assert processes_with(marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone(marker)


async def test_sink_failure_kills_and_propagates(mode: Mode) -> None:
    async def sink(_chunk: bytes) -> None:
        raise RuntimeError("storage is down")

    with pytest.raises(RuntimeError, match="storage is down"):
        await run_boxed_stream(["cat", "/dev/zero"], None, LIMITS, sink, mode=mode)


async def test_job_dir_removed_afterwards(mode: Mode) -> None:
    code = (
        "import os\n"
        "os.makedirs('a/b'); open('a/b/f', 'w').write('x'); os.chmod('a', 0)\n"
        "print(os.getcwd())"
    )
    result = await run_boxed(py(code), None, LIMITS, mode=mode)
    job = result.stdout.decode().strip()
    assert result.returncode == 0, result.stderr
    assert os.path.basename(job).startswith(JOB_PREFIX)
    assert not os.path.exists(job)
    with pytest.raises(BoxTimeout):
        await run_boxed(_spawner("0.5", escape=False), None, BoxLimits(wall_seconds=0.5), mode=mode)
    assert not [n for n in os.listdir(job_root()) if n.startswith(f"{JOB_PREFIX}{os.getpid()}-")]


def test_cleanup_stale_job_dirs() -> None:
    dead = subprocess.run(["true"], check=True)
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    del dead
    root = Path(job_root())
    stale = root / f"{JOB_PREFIX}{dead_pid.pid}-{secrets.token_hex(8)}"
    live = root / f"{JOB_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
    (stale / "sub").mkdir(parents=True, mode=0o700)
    (stale / "sub" / "plaintext").write_bytes(b"secret")
    live.mkdir(mode=0o700)
    try:
        assert cleanup_stale_job_dirs() >= 1
        assert not stale.exists()
        assert live.exists()  # a running worker's job is not ours to remove
    finally:
        shutil.rmtree(live, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)


async def test_shm_mode_cannot_catch_a_setsid_escaper() -> None:
    """The known gap of the fallback, pinned down: without a pid namespace a process that
    leaves the group with setsid() survives; holding stdout, it turns the job into a timeout."""
    marker = f"{300 + secrets.randbelow(10**6) / 10**6:.6f}"
    code = f"import subprocess; subprocess.Popen(['sleep', '{marker}'], start_new_session=True)"
    try:
        with pytest.raises(BoxTimeout):
            await run_boxed(py(code), None, BoxLimits(wall_seconds=1), mode="shm")
        assert processes_with(marker)
    finally:
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def test_harden_process() -> None:
    code = (
        "import ctypes, resource\n"
        "from ephemeral.media.box import harden_process\n"
        "harden_process()\n"
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE))"
    )
    out = subprocess.run(py(code), capture_output=True, check=True, text=True).stdout
    assert out.split(None, 1) == ["0", "(0, 0)\n"]  # PR_GET_DUMPABLE is 0


@pytest.mark.skipif(
    os.geteuid() != 0,
    reason="as non-root this holds once the worker calls harden_process (test_harden_process)",
)
async def test_child_cannot_read_the_workers_environment(mode: Mode) -> None:
    # A capability-less child may not peek at a process with more capabilities than itself.
    code = f"print(open('/proc/{os.getpid()}/environ', 'rb').read())"
    result = await run_boxed(py(code), None, LIMITS, mode=mode)
    assert result.returncode != 0 and b"PermissionError" in result.stderr
    assert result.stdout == b""
