"""Same-content fan-out: an HMAC of the upload's bytes under a server pepper, never stored raw.

The pepper lives outside Redis (config, or a 0600 file under the data dir, published whole with
link(2) so processes sharing the dir agree on the first one), so a copy of Redis cannot test a
guessed file against the fan-out keys. Recipient ids are kept only as keyed hashes too.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from ephemeral.config import Settings
from ephemeral.crypto.keys import b64


def pepper_path(settings: Settings) -> Path:
    return settings.ratelimit.pepper_file or settings.data_dir / "abuse.pepper"


def load_pepper(settings: Settings) -> bytes:
    if settings.ratelimit.pepper:
        return settings.ratelimit.pepper.encode()
    path = pepper_path(settings)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(b64(os.urandom(32)) + "\n")
        try:
            os.link(draft, path)  # complete when it appears; fails if another process won
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip().encode()


class Fingerprint:
    """The HMAC of an upload, taken as its chunks stream past on their way to the vault."""

    def __init__(self, pepper: bytes) -> None:
        self._mac = hmac.new(pepper, b"content\x00", hashlib.sha256)

    async def feed(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self._mac.update(chunk)
            yield chunk

    def hexdigest(self) -> str:
        return self._mac.hexdigest()


def recipient_tag(pepper: bytes, recipient: str) -> str:
    """A recipient as the fan-out set holds it: 96 bits of a keyed hash, enough to be distinct."""
    return hmac.new(pepper, b"recipient\x00" + recipient.encode(), hashlib.sha256).hexdigest()[:24]
