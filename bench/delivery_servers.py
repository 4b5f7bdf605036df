"""The servers the delivery bench starts on loopback: nginx, moto and our own API."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from bench.flows import JWT_KEY
from bench.harness import free_port, process, python, spawned
from ephemeral.config import RedisSettings, Settings, StorageSettings

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

S3_REGION = "us-east-1"
S3_KEY = "testing"  # moto accepts any credentials; these never leave loopback
S3_BUCKET = "bench-delivery"

NGINX_CONF = """\
{user}daemon off;
worker_processes 1;
error_log {tmp}/error.log;
pid {tmp}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    sendfile on;
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def ensure_nginx() -> str:
    """The Debian nginx binary, installed with apt-get when missing."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found:
        return found
    print("bench: nginx not found; installing it with apt-get (Debian package)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx"], check=True, env=env)
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if not found:
        raise RuntimeError("apt-get installed nginx but no nginx binary is on the PATH")
    return found


@contextlib.contextmanager
def running_nginx(work: Path, root: Path, probe: str) -> Iterator[str]:
    """nginx on loopback serving `root`, minimal config in its own temp dir; yields its URL."""
    binary = ensure_nginx()
    tmp = work / "nginx"
    tmp.mkdir(exist_ok=True)
    port = free_port()
    # As root, nginx's workers would drop to `nobody`, which cannot enter the private work dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, tmp=tmp, port=port, root=root))
    url = f"http://127.0.0.1:{port}"
    argv = [binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")]
    with process(argv, dict(os.environ), f"{url}/{probe}"):
        yield url


@contextlib.contextmanager
def running_moto() -> Iterator[str]:
    """`python -m moto.server` on loopback with one plain bucket; yields its endpoint URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [python(), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with process(argv, dict(os.environ), None):
        client = s3_client(url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket=S3_BUCKET)
                break
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url


def s3_client(endpoint: str) -> S3Client:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_KEY,
    )


def settings_for(data_dir: Path, redis_url: str, s3_endpoint: str | None = None) -> Settings:
    """Settings as our server sees them from `server_env`, for sealing objects directly."""
    storage = StorageSettings()
    if s3_endpoint:
        storage = StorageSettings(
            backend="s3",
            s3_bucket=S3_BUCKET,
            s3_endpoint_url=s3_endpoint,
            s3_region=S3_REGION,
            s3_access_key=S3_KEY,
            s3_secret_key=S3_KEY,
        )
    settings = Settings(data_dir=data_dir, redis=RedisSettings(url=redis_url), storage=storage)
    return dataclasses.replace(settings, auth=dataclasses.replace(settings.auth, jwt_key=JWT_KEY))


def server_env(settings: Settings, port: int, max_bytes: int) -> dict[str, str]:
    env = {
        **os.environ,
        "EPHEMERAL_REDIS_URL": settings.redis.url or "",
        "EPHEMERAL_AUTH_JWT_KEY": JWT_KEY,
        "EPHEMERAL_DATA_DIR": str(settings.data_dir),
        "EPHEMERAL_PORT": str(port),
        "EPHEMERAL_LIMITS_MAX_IMAGE_BYTES": str(max_bytes),
    }
    s3 = settings.storage
    if s3.backend == "s3":
        env |= {
            "EPHEMERAL_STORAGE_BACKEND": "s3",
            "EPHEMERAL_STORAGE_S3_BUCKET": s3.s3_bucket,
            "EPHEMERAL_STORAGE_S3_ENDPOINT_URL": s3.s3_endpoint_url or "",
            "EPHEMERAL_STORAGE_S3_REGION": s3.s3_region or "",
            "EPHEMERAL_STORAGE_S3_ACCESS_KEY": s3.s3_access_key or "",
            "EPHEMERAL_STORAGE_S3_SECRET_KEY": s3.s3_secret_key or "",
        }
    return env


@contextlib.contextmanager
def running_ours(
    settings: Settings, max_bytes: int, *, worker: bool = True
) -> Iterator[tuple[str, int]]:
    """`python -m ephemeral serve` on loopback; yields (base URL, API process pid)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [python(), "-m", "ephemeral", "serve", *([] if worker else ["--no-worker"])]
    with spawned(argv, server_env(settings, port, max_bytes), f"{url}/healthz") as proc:
        yield url, proc.pid
