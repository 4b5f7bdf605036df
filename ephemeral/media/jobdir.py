"""Per-job 0700 scratch dirs on RAM-backed storage, and sweeping those crashed workers left."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile

from ephemeral.processes import alive

JOB_PREFIX = "ephemeral-box-"
# RAM-backed, so plaintext never reaches a disk; job dirs get random names made with mkdir,
# which fails rather than follows anything planted there.
SHM_ROOT = "/dev/shm"  # noqa: S108


class JobDirError(OSError):
    """No place to put a job dir."""


def job_root() -> str:
    for root in (SHM_ROOT, tempfile.gettempdir()):
        if os.path.isdir(root) and os.access(root, os.W_OK | os.X_OK):
            return root
    raise JobDirError("no writable /dev/shm or temp dir for job dirs")


def make_job_dir(owner: int | None = None) -> str:
    """A new 0700 dir, handed to uid/gid `owner` when given."""
    # The pid in the name lets cleanup_stale_job_dirs spare dirs of workers still alive.
    path = os.path.join(job_root(), f"{JOB_PREFIX}{os.getpid()}-{secrets.token_hex(8)}")
    os.mkdir(path, 0o700)
    if owner is not None:
        os.chown(path, owner, owner)
    return path


def remove_job_dir(path: str) -> None:
    if os.geteuid() != 0:
        # The child ran as us and may have left 0o000 dirs behind; root is not stopped by them.
        _open_up(path)
    shutil.rmtree(path, ignore_errors=True)


def _open_up(path: str) -> None:
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    for dirpath, dirnames, _files in os.walk(path):  # top-down: opened before entered
        for name in dirnames:
            sub = os.path.join(dirpath, name)
            if not os.path.islink(sub):  # chmod follows links; never touch outside the job
                with contextlib.suppress(OSError):
                    os.chmod(sub, 0o700)


def cleanup_stale_job_dirs() -> int:
    """Remove job dirs that crashed workers left behind; call at worker start. Returns a count."""
    removed = 0
    for root in {SHM_ROOT, tempfile.gettempdir()}:
        try:
            names = os.listdir(root)
        except OSError:
            continue
        for name in names:
            if not name.startswith(JOB_PREFIX):
                continue
            pid = name[len(JOB_PREFIX) :].split("-", 1)[0]
            if not pid.isdigit() or alive(int(pid)):
                continue
            path = os.path.join(root, name)
            if os.path.isdir(path) and not os.path.islink(path):
                remove_job_dir(path)
                removed += 1
    return removed
