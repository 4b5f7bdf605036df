"""Shared plumbing for bench/rates*.py: server env, bearer token and client helpers."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from bench.flows import JWT_KEY
from bench.harness import free_port, process, python
from ephemeral.auth import Authenticator
from ephemeral.config import RedisSettings, Settings


def server_env(
    redis_url: str, data_dir: Path, port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment flows.py gives `ephemeral serve`, plus any EPHEMERAL_* overrides."""
    return {
        **os.environ,
        "EPHEMERAL_REDIS_URL": redis_url,
        "EPHEMERAL_AUTH_JWT_KEY": JWT_KEY,
        "EPHEMERAL_DATA_DIR": str(data_dir),
        "EPHEMERAL_PORT": str(port),
        **(extra or {}),
    }


def bearer(redis_url: str, data_dir: Path) -> str:
    settings = Settings(data_dir=data_dir, redis=RedisSettings(url=redis_url))
    settings = dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, jwt_key=JWT_KEY)
    )
    return Authenticator(settings, JWT_KEY).mint("bench")


@contextlib.contextmanager
def serve(
    redis_url: str,
    data_dir: Path,
    *,
    worker: bool = True,
    extra: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """One `python -m ephemeral serve` on a free loopback port; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [python(), "-m", "ephemeral", "serve"] + ([] if worker else ["--no-worker"])
    with process(argv, server_env(redis_url, data_dir, port, extra), f"{url}/healthz"):
        yield url


def p99(samples: list[float]) -> float:
    """Nearest-rank 99th percentile (the maximum for fewer than 100 samples)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
