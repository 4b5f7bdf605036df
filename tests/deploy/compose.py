"""docker-compose.yml as Debian's docker-compose resolves it, for the deployment tests."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import shutil
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest

from ephemeral.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SECRETS_SCRIPT = ROOT / "scripts" / "compose_secrets.sh"
IMAGE_UID = 10001  # the Dockerfile's USER (tests/deploy/test_dockerfile.py checks it)


def compose_binary() -> str:
    """docker-compose, installed by scripts/bootstrap.sh; on CI its absence is a failure."""
    binary = shutil.which("docker-compose")
    if binary is None:
        reason = (
            "docker-compose is not installed (scripts/bootstrap.sh: apt-get install docker-compose)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


def run_compose(*args: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: the file's ${VAR:-default}s resolve to their defaults, as on a
    # machine where nothing is exported.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        [compose_binary(), "-f", str(COMPOSE_FILE), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@functools.cache
def _resolved() -> dict[str, Any]:
    result = run_compose("config")
    assert result.returncode == 0, result.stderr
    # PyYAML comes with the dev dependencies (through moto) but without type stubs.
    yaml = importlib.import_module("yaml")
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def resolved_config() -> dict[str, Any]:
    """The file after interpolation, merges and defaults (`docker-compose config`)."""
    return _resolved()


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = resolved_config()["services"][name]
    return found


def healthcheck_argv(name: str) -> list[str]:
    """The service's healthcheck as an argv (compose's exec form: ["CMD", ...])."""
    test: list[str] = service(name)["healthcheck"]["test"]
    assert test[0] == "CMD", test
    return test[1:]


def setting_env_names(cls: type[Any] = Settings, prefix: str = "") -> set[str]:
    """Every EPHEMERAL_<SECTION>_<NAME> that config.load reads (it ignores unknown ones)."""
    names: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            names |= setting_env_names(hints[f.name], f"{prefix}{f.name}_")
        else:
            names.add(f"EPHEMERAL_{prefix}{f.name}".upper())
    return names


def make_secrets(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SECRETS_SCRIPT), str(directory)], capture_output=True, text=True, timeout=30
    )
