"""One real `python -m ephemeral serve` (with its worker) per module, for the client's tests."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from ephemeral.config import Settings
from ephemeral.embedded_redis import EmbeddedRedis
from tests.fixtures.core import make_settings, sender_token
from tests.fixtures.processes import api_processes


@dataclasses.dataclass(frozen=True)
class Service:
    url: str
    settings: Settings

    def token(self, sub: str = "alice") -> str:
        return sender_token(self.settings, sub)


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[Service]:
    settings = make_settings(tmp_path_factory.mktemp("client"), redis_server.url)
    with api_processes(settings, 1, worker=True) as (url,):
        yield Service(url, settings)


def noisy_jpeg(path: Path, side: int = 1024) -> Path:
    """A photo of noise: it compresses badly, so it is big enough to upload in several chunks."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "JPEG", quality=95)
    path.write_bytes(out.getvalue())
    return path
