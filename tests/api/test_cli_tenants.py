"""The CLI for tenants: `ephemeral service-key`, and `ephemeral token --tenant`."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt

from ephemeral.tenancy import SERVICE_KEY_RE
from tests.api.test_cli import clean_env, cli
from tests.fixtures.core import jpeg_bytes
from tests.fixtures.processes import free_port, wait_healthy

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


def call(
    url: str,
    credential: str,
    method: str = "GET",
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    sent = {"Authorization": f"Bearer {credential}", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def test_serve_with_a_tenants_block_end_to_end(tmp_path: Path) -> None:
    """A real `serve` process from a TOML tenants block: create on behalf, read, isolate, erase."""
    workdir = Path("/tmp") / f"ephten-{os.getpid()}-{time.monotonic_ns()}"
    workdir.mkdir()
    port = free_port()
    env = clean_env(Path("data"), port)
    service_key, line = cli("service-key", env=env).stdout.splitlines()
    config = workdir / "tenants.toml"
    config.write_text(
        f'[tenants.a]\njwt_issuer = "https://a"\njwt_key = "{"a" * 40}"\n{line}\n'
        f'[tenants.b]\njwt_issuer = "https://b"\njwt_key = "{SECRET_B}"\n'
        'receipts_to_sender = "status_only"\n'
    )
    env["EPHEMERAL_CONFIG"] = str(config)
    process = subprocess.Popen(
        [sys.executable, "-m", "ephemeral", "serve"],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        boundary = "b0undary"
        meta = json.dumps({"recipients": ["bob"], "on_behalf_of": "alice"}).encode()
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="meta"\r\n'
            "Content-Type: application/json\r\n\r\n".encode()
            + meta
            + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="a.jpg"\r\n\r\n'.encode()
            + jpeg_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        content_type = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        status, raw = call(f"{url}/v1/media", service_key, "POST", data=body, headers=content_type)
        assert status == 202, raw
        media = f"{url}/v1/media/{json.loads(raw)['id']}"
        alice_a = cli("token", "alice", "--tenant", "a", env=env, cwd=workdir).stdout.strip()
        alice_b = cli("token", "alice", "--tenant", "b", env=env, cwd=workdir).stdout.strip()
        assert call(media, alice_a)[0] == 200
        assert call(media, alice_b)[0] == 404
        assert call(f"{url}/v1/subjects/alice", service_key, "DELETE")[0] == 204
        assert call(media, service_key)[0] == 404
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert service_key not in output
