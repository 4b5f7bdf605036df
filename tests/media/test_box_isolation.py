"""What the box keeps from the parser and what it takes with it: hidden paths, a dead worker."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ephemeral.media.box import BoxLimits, Mode, run_boxed
from tests.media.test_box import UNSHARE_SKIP, gone, mode, processes_with, py

__all__ = ["mode"]  # the fixture, shared with test_box


@pytest.mark.skipif(UNSHARE_SKIP is not None, reason=str(UNSHARE_SKIP))
async def test_hidden_paths_are_out_of_sight(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "keyring"
    secrets_dir.mkdir()
    (secrets_dir / "1.key").write_bytes(b"kek-bytes")
    lone = tmp_path / "jwt.key"
    lone.write_text("jwt-secret")
    code = (
        "import os, sys\n"
        "try:\n"
        f"    print(sorted(os.listdir({str(secrets_dir)!r})))\n"
        "except PermissionError:\n"
        "    print('denied')\n"
        f"print(repr(open({str(lone)!r}).read()))\n"
    )
    limits = BoxLimits(wall_seconds=20, hidden=(str(secrets_dir), str(lone)))
    result = await run_boxed(py(code), None, limits, mode="unshare")
    listing, content = result.stdout.decode().splitlines()
    assert result.returncode == 0, result.stderr
    assert listing in ("[]", "denied") and content == "''"
    assert (secrets_dir / "1.key").read_bytes() == b"kek-bytes"  # the host copy is untouched


async def test_the_box_dies_with_a_killed_worker(mode: Mode) -> None:
    """A worker SIGKILLed mid-job must not leave its parser running as an orphan."""
    marker = f"{400 + secrets.randbelow(10**6) / 10**6:.6f}"
    # The marker reaches the worker through its environment, so that only the boxed sleep
    # carries it on its command line.
    worker = (
        "import asyncio, os, sys\n"
        "from ephemeral.media.box import BoxLimits, run_boxed\n"
        "code = 'import subprocess; subprocess.run([\"sleep\", \"' + os.environ['MARK'] + '\"])'\n"
        f"asyncio.run(run_boxed([sys.executable, '-I', '-c', code], None,"
        f" BoxLimits(wall_seconds=60), mode={mode!r}))\n"
    )
    env = {**os.environ, "MARK": marker}
    proc = subprocess.Popen([sys.executable, "-c", worker], cwd=Path(__file__).parents[2], env=env)
    try:
        deadline = time.monotonic() + 20
        while not processes_with(marker):
            assert time.monotonic() < deadline, "the boxed sleep never started"
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert await gone(marker, within=5.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)
