"""The compose wiring for real: Redis as compose runs it (AOF, fsync always, the generated ACL),
the API and the worker with the compose environment and the generated secrets, S3 with the
lifecycle rules; a photo goes through upload, processing, redemption and content."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from PIL import Image
from redis import Redis
from redis.exceptions import NoPermissionError

from ephemeral.auth import Authenticator
from ephemeral.config import load
from tests.deploy.compose import IMAGE_UID, ROOT, healthcheck_argv, make_secrets, service
from tests.fixtures.core import jpeg_bytes, multipart
from tests.fixtures.processes import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


@contextlib.contextmanager
def spawned(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until(check: list[str], env: dict[str, str], process: subprocess.Popen[bytes]) -> None:
    """Run a compose healthcheck command until it passes, as Docker would."""
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, f"exited with {process.returncode}"
        if subprocess.run(check, env=env, capture_output=True, timeout=30).returncode == 0:
            return
        assert time.monotonic() < deadline, f"{check} never passed"
        time.sleep(0.2)


AS_IMAGE_UID = ["setpriv", "--reuid", str(IMAGE_UID), "--regid", str(IMAGE_UID), "--clear-groups"]


@functools.cache
def image_uid_runs_python() -> bool:
    """Whether the image's uid can start our interpreter again from inside it, as the media
    box does: not when it lives under a 0700 home (pyenv in /root); the image's can."""
    if os.geteuid() != 0:
        return False
    again = "import os, sys; os.execv(sys.executable, [sys.executable, '-c', 'pass'])"
    probe = [*AS_IMAGE_UID, "--", sys.executable, "-c", again]
    return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


def as_here(argv: list[str]) -> list[str]:
    """A container command run on this machine: our interpreter for `ephemeral`/`python`,
    as the image's non-root uid where that uid can run it (then the media box takes the
    container's /dev/shm path, and the keyring and secrets must be readable by that uid)."""
    if argv[0] == "ephemeral":
        argv = [sys.executable, "-m", "ephemeral", *argv[1:]]
    elif argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    else:
        return argv
    return [*AS_IMAGE_UID, "--", *argv] if image_uid_runs_python() else argv


async def photo_round_trip(base: str, token: str) -> bytes:
    sender = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base) as http:
        form = multipart({"recipients": ["bob"]}, jpeg_bytes((80, 60)))
        idempotent = {**sender, "Idempotency-Key": str(uuid.uuid4())}  # its records, too
        async with http.post("/v1/media", data=form, headers=idempotent) as response:
            assert response.status == 202, await response.text()
            created: dict[str, Any] = await response.json()
        deadline = time.monotonic() + 60
        while True:
            async with http.get(f"/v1/media/{created['id']}", headers=sender) as response:
                record = await response.json()
            if record["state"] == "ready":
                break
            assert record["state"] == "processing", record.get("error")
            assert time.monotonic() < deadline, record
            await asyncio.sleep(0.1)
        body = {"token": created["recipients"][0]["token"]}
        async with http.post("/v1/views", json=body) as response:
            assert response.status == 201, await response.text()
            view: dict[str, Any] = await response.json()
        lease = {"Authorization": f"Lease {view['lease']}"}
        async with http.get(f"/v1/views/{view['view_id']}/content", headers=lease) as response:
            assert response.status == 200, await response.text()
            content = await response.read()
        async with http.delete(f"/v1/views/{view['view_id']}", headers=lease) as response:
            assert response.status in (200, 204), await response.text()
        # The last view ended: the worker purges (the job, or the sweeper as its backstop).
        while True:
            async with http.get(f"/v1/media/{created['id']}", headers=sender) as response:
                status = await response.json()
            if status.get("purged_at"):
                return content
            assert time.monotonic() < deadline + 60, status
            await asyncio.sleep(0.1)


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """Like tmp_path, but reachable by the image's uid (pytest's tmp dirs are 0700 root)."""
    with tempfile.TemporaryDirectory(prefix="eph-compose-", dir="/tmp") as name:
        os.chmod(name, 0o711)
        yield Path(name)


def as_image_user(path: Path) -> Path:
    """Hand a dir to the image's uid, as the image and the compose volumes do."""
    if os.geteuid() == 0:
        os.chown(path, IMAGE_UID, IMAGE_UID)
    return path


async def test_the_compose_stack_carries_a_photo(
    work_dir: Path, s3_client: S3Client, moto_server: str
) -> None:
    tmp_path = work_dir
    secrets = tmp_path / "secrets"
    made = make_secrets(secrets)
    assert made.returncode == 0, made.stderr
    as_image_user(secrets)  # compose mounts each 0444 file; the 0700 dir is the host's
    (tmp_path / "keyring").mkdir()
    keyring = as_image_user(tmp_path / "keyring")  # the tmpfs volume's root in compose
    keyring.chmod(0o700)
    (tmp_path / "data").mkdir()
    as_image_user(tmp_path / "data")
    redis_port, api_port = free_port(), free_port()
    (tmp_path / "redis").mkdir()
    redis_argv = [
        arg.replace("/run/secrets/", f"{secrets}/") for arg in service("redis")["command"]
    ]
    redis_argv += [
        "--port",
        str(redis_port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(tmp_path / "redis"),
    ]

    bucket = f"compose-{uuid.uuid4().hex}"  # what deploy/minio-setup.sh does, on moto
    s3_client.create_bucket(Bucket=bucket)
    rules = json.loads((ROOT / "deploy" / "s3-lifecycle.json").read_text())
    s3_client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules)

    # The generated URL names the compose host `redis`; only the address changes here.
    url = tomllib.loads((secrets / "ephemeral.toml").read_text())["redis"]["url"]
    url = url.replace("@redis:6379/", f"@127.0.0.1:{redis_port}/")

    def environment(name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EPHEMERAL_")}
        env.update(service(name)["environment"])
        env.update(
            EPHEMERAL_CONFIG=str(secrets / "ephemeral.toml"),
            EPHEMERAL_REDIS_URL=url,
            EPHEMERAL_STORAGE_S3_ENDPOINT_URL=moto_server,
            EPHEMERAL_STORAGE_S3_BUCKET=bucket,
            EPHEMERAL_KEYRING_DIR=str(keyring),
            EPHEMERAL_DATA_DIR=str(tmp_path / "data"),
            EPHEMERAL_HOST="127.0.0.1",
            EPHEMERAL_PORT=str(api_port),
            EPHEMERAL_PUBLIC_URL=f"http://127.0.0.1:{api_port}",
            HOME=str(tmp_path),
            # Where the processes stay root, the box still takes the container's path.
            EPHEMERAL_BOX_MODE="shm",
        )
        return env

    api_env, worker_env = environment("api"), environment("worker")
    with contextlib.ExitStack() as stack:
        redis_process = stack.enter_context(spawned(redis_argv, {}, tmp_path / "redis.log"))
        wait_until(as_here(["redis-cli", "-p", str(redis_port), "ping"]), {}, redis_process)
        api = stack.enter_context(
            spawned(as_here(service("api")["command"]), api_env, tmp_path / "api.log")
        )
        worker = stack.enter_context(
            spawned(as_here(service("worker")["command"]), worker_env, tmp_path / "worker.log")
        )
        try:
            wait_until(as_here(healthcheck_argv("api")), api_env, api)
            wait_until(as_here(healthcheck_argv("worker")), worker_env, worker)
            settings = load(env=api_env)
            assert settings.auth.jwt_key is not None
            token = Authenticator(settings, settings.auth.jwt_key).mint("alice")
            content = await photo_round_trip(f"http://127.0.0.1:{api_port}", token)
        except BaseException:
            for name in ("redis", "api", "worker"):
                print(f"--- {name}.log\n" + (tmp_path / f"{name}.log").read_text()[-4000:])
            raise
        with Image.open(io.BytesIO(content)) as image:
            assert (image.format, image.size) == ("JPEG", (80, 60))
        assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # purged
        epochs = list(keyring.glob("*.key"))  # the API wrapped the worker's copy of the key
        assert epochs and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in epochs)
        if image_uid_runs_python():
            assert all(p.stat().st_uid == IMAGE_UID for p in epochs)
        for name in ("api", "worker"):  # the relay and webhook loops ran too, under the ACL
            log = (tmp_path / f"{name}.log").read_text()
            assert "Traceback" not in log and "NOPERM" not in log, log

        # The ACL the service ran under: its own keys only, no admin commands.
        with Redis.from_url(url) as client:
            with pytest.raises(NoPermissionError):
                client.set("not-ours", "1")
            with pytest.raises(NoPermissionError):
                client.flushall()
