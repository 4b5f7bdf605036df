"""Same-content fan-out: an HMAC of the upload's bytes under a server pepper, never stored raw.

The pepper lives outside Redis and outside the data dir (config, or a 0600 file in the keyring
dir beside the epoch keys), so a copy of Redis or of the data dir cannot test a guessed file
against the fan-out keys. Recipient ids are kept only as keyed hashes too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from ephemeral.config import ConfigError, Settings
from ephemeral.crypto.keys import b64

PEPPER_FILE = "abuse.pepper"  # the keyring's pruning only touches *.key


def pepper_path(settings: Settings) -> Path:
    return settings.ratelimit.pepper_file or settings.keyring_path / PEPPER_FILE


def load_pepper(settings: Settings) -> bytes:
    if settings.ratelimit.pepper:
        return settings.ratelimit.pepper.encode()
    path = pepper_path(settings)
    try:
        if not path.exists():
            _create(path)
        return path.read_text().strip().encode()
    except OSError as exc:
        raise ConfigError(f"setting ratelimit.pepper: none set, and {path}: {exc}") from exc


def _create(path: Path) -> None:
    """Written whole, then published with link(2): the first process's pepper wins."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b64(os.urandom(32)).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()


class Fingerprint:
    """The HMAC of an upload, taken as its chunks stream past on their way to the vault."""

    def __init__(self, pepper: bytes) -> None:
        self._mac = hmac.new(pepper, b"content\x00", hashlib.sha256)

    def update(self, data: bytes) -> None:
        self._mac.update(data)

    def hexdigest(self) -> str:
        return self._mac.hexdigest()


def recipient_tag(pepper: bytes, recipient: str) -> str:
    """A recipient as the fan-out set holds it: 96 bits of a keyed hash, enough to be distinct."""
    return hmac.new(pepper, b"recipient\x00" + recipient.encode(), hashlib.sha256).hexdigest()[:24]
