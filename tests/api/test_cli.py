"""The CLI as a user runs it: `ephemeral serve` with nothing configured, `token`, bad config."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.fixtures.core import jpeg_bytes
from tests.fixtures.processes import free_port, wait_healthy


def cli(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ephemeral", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def clean_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPHEMERAL_")}
    env.update(EPHEMERAL_DATA_DIR=str(data_dir), EPHEMERAL_PORT=str(port))
    return env


def post_photo(url: str, token: str) -> dict[str, object]:
    boundary = "b0undary"
    meta = json.dumps({"recipients": ["bob"]}).encode()
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="meta"\r\n'
        "Content-Type: application/json\r\n\r\n".encode()
        + meta
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"'
        "\r\n\r\n".encode()
        + jpeg_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{url}/v1/media",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        result: dict[str, object] = json.loads(response.read())
        return result


def test_serve_with_nothing_configured(tmp_path: Path) -> None:
    # A relative data dir, as `make run` uses, in a short path (unix sockets are limited).
    workdir = Path("/tmp") / f"ephcli-{os.getpid()}-{time.monotonic_ns()}"
    workdir.mkdir()
    data_dir = workdir / "data"
    port = free_port()
    env = clean_env(Path("data"), port)
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
        run_dir = data_dir / "redis" / "run"
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        assert (run_dir / "redis.sock").is_socket()
        assert "appendfsync always" in (data_dir / "redis" / "redis.conf").read_text()
        key_file = data_dir / "jwt.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        keyring = data_dir.with_name(data_dir.name + ".keyring")
        minted = cli("token", "alice", env=env, cwd=workdir)
        assert minted.returncode == 0, minted.stderr
        created = post_photo(url, minted.stdout.strip())
        assert created["state"] == "processing"
        assert stat.S_IMODE(keyring.stat().st_mode) == 0o700
        assert stat.S_IMODE((keyring / "idempotency.pepper").stat().st_mode) == 0o600
        deadline = time.monotonic() + 30
        while True:  # the in-process worker makes it ready
            request = urllib.request.Request(
                f"{url}/v1/media/{created['id']}",
                headers={"Authorization": f"Bearer {minted.stdout.strip()}"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                if json.loads(response.read())["state"] == "ready":
                    break
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert "serving on" in output
    # The private redis-server went with it.
    assert _no_redis_for(data_dir)


def _no_redis_for(data_dir: Path) -> bool:
    found = subprocess.run(
        ["pgrep", "-f", str(data_dir / "redis")], capture_output=True, check=False
    )
    return found.returncode != 0


def test_bad_settings_fail_at_start_naming_the_setting(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "data", free_port())
    env["EPHEMERAL_LIMITS_MAX_VIEWS"] = "lots"
    result = cli("serve", env=env)
    assert result.returncode == 2 and "limits.max_views" in result.stderr
    env = clean_env(tmp_path / "data", free_port())
    env["EPHEMERAL_REDIS_URL"] = "redis://127.0.0.1:1"
    result = cli("worker", env={**env, "EPHEMERAL_REDIS_URL": ""})
    assert result.returncode == 2 and "redis.url" in result.stderr
    # Outside the embedded default there is no generated key: refuse to start without one.
    result = cli("serve", "--no-worker", env=env)
    assert result.returncode == 2 and "auth.jwt_key" in result.stderr
    env["EPHEMERAL_AUTH_JWT_KEY"] = "k" * 40
    result = cli("serve", "--no-worker", env=env)
    assert result.returncode == 1 and "cannot reach Redis" in result.stderr
