"""Epoch key-encryption keys: one 0600 file per hour in a 0700 directory outside Redis."""

from __future__ import annotations

import os
import time
from pathlib import Path

EPOCH_SECONDS = 3600


class Keyring:
    """Files are created with O_EXCL, so concurrent processes agree on each epoch's key."""

    def __init__(self, directory: Path, retention_seconds: int = 86_400) -> None:
        self.directory = directory
        self.retention_seconds = retention_seconds
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)

    def current(self, now: float | None = None) -> tuple[int, bytes]:
        epoch = int((time.time() if now is None else now) // EPOCH_SECONDS)
        key = self.get(epoch)
        if key is None:
            key = self._create(epoch)
        return epoch, key

    def get(self, epoch: int) -> bytes | None:
        try:
            data = (self.directory / f"{epoch}.key").read_bytes()
        except FileNotFoundError:
            return None
        return data if len(data) == 32 else None

    def _create(self, epoch: int) -> bytes:
        path = self.directory / f"{epoch}.key"
        tmp = self.directory / f".{epoch}.{os.getpid()}.{os.urandom(4).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic create-if-absent: the first writer's key wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        key = self.get(epoch)
        assert key is not None
        return key

    def prune(self, now: float | None = None) -> int:
        """Delete epochs no job can still need; their wrapped DEKs become undecryptable."""
        current = (time.time() if now is None else now) // EPOCH_SECONDS
        oldest_kept = current - max(1, -(-self.retention_seconds // EPOCH_SECONDS))
        removed = 0
        for path in self.directory.glob("*.key"):
            if path.stem.isdigit() and int(path.stem) < oldest_kept:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
