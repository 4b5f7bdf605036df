"""The CLI for tenants: `ephemeral service-key`, and `ephemeral token --tenant`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import jwt

from ephemeral.tenancy import SERVICE_KEY_RE
from tests.api.test_cli import cli

SECRET_B = "b" * 40


def test_service_key_prints_a_key_and_the_config_line_of_its_hash(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPHEMERAL_")}
    first = cli("service-key", env=env)
    second = cli("service-key", env=env)
    assert first.returncode == 0, first.stderr
    key, line = first.stdout.splitlines()
    assert SERVICE_KEY_RE.match(key) and key != second.stdout.splitlines()[0]
    assert line.startswith(
        f'service_key_hashes = ["sha256:{hashlib.sha256(key.encode()).hexdigest()}"]'
    )
    # The line pastes into a tenant's table as it is.
    config = tmp_path / "c.toml"
    config.write_text(
        f'[tenants.a]\njwt_issuer = "https://a"\njwt_key = "{"a" * 40}"\n{line}\n'
        f'[tenants.b]\njwt_issuer = "https://b"\njwt_key = "{SECRET_B}"\n'
    )
    minted = cli("--config", str(config), "token", "alice", "--tenant", "b", env=env)
    assert minted.returncode == 0, minted.stderr
    claims = jwt.decode(minted.stdout.strip(), SECRET_B, algorithms=["HS256"], audience="ephemeral")
    assert claims["iss"] == "https://b" and claims["sub"] == "alice"
    unknown = cli("--config", str(config), "token", "alice", "--tenant", "zz", env=env)
    assert unknown.returncode == 2 and "tenants.zz" in unknown.stderr
