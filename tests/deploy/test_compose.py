"""docker-compose.yml: valid for Debian's docker-compose, and wired to settings that exist."""

from __future__ import annotations

import dataclasses
import json
import re
import stat
import subprocess
import typing
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from ephemeral.config import Settings, load
from storage.s3_ops import bucket_problems
from tests.deploy.compose import (
    ROOT,
    compose_binary,
    make_secrets,
    resolved_config,
    run_compose,
    service,
    setting_env_names,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

LIFECYCLE = ROOT / "deploy" / "s3-lifecycle.json"
DAY = 86_400


def test_compose_config_validates() -> None:
    result = run_compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_a_broken_file_is_caught(tmp_path: Path) -> None:
    """The check has teeth: docker-compose 1.29 rejects an unknown option."""
    broken = tmp_path / "docker-compose.yml"
    text = (ROOT / "docker-compose.yml").read_text()
    broken.write_text(text.replace("shm_size:", "shm_sise:", 1))
    result = subprocess.run(
        [compose_binary(), "-f", str(broken), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "shm_sise" in result.stderr


def test_services_are_shaped_as_the_issue_asks() -> None:
    services = resolved_config()["services"]
    assert set(services) == {"api", "worker", "redis", "minio", "minio-setup"}
    assert services["api"]["command"] == ["ephemeral", "serve", "--no-worker"]
    assert services["worker"]["command"] == ["ephemeral", "worker"]
    redis = " ".join(services["redis"]["command"])
    for flag in ("--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction"):
        assert flag in redis
    for name in ("api", "worker", "redis", "minio"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    for name in ("api", "worker"):
        deps = services[name]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["minio-setup"]["condition"] == "service_completed_successfully"
        assert services[name]["volumes"] == ["keyring:/run/ephemeral/keyring:rw"]
    assert services["minio-setup"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_secrets_come_only_from_files() -> None:
    config = resolved_config()
    for name, spec in config["secrets"].items():
        assert Path(spec["file"]).parent == ROOT / "secrets", name
    secret_settings = {"EPHEMERAL_REDIS_URL", "EPHEMERAL_AUTH_JWT_KEY"}
    secret_settings |= {"EPHEMERAL_STORAGE_S3_ACCESS_KEY", "EPHEMERAL_STORAGE_S3_SECRET_KEY"}
    for name, spec in config["services"].items():
        env = spec.get("environment", {})
        assert not secret_settings & set(env), name
        assert not any("PASSWORD" in key and not key.endswith("_FILE") for key in env), name
    assert "/secrets/" in (ROOT / ".gitignore").read_text().split()


def test_every_variable_names_a_real_setting(tmp_path: Path) -> None:
    """config.load ignores unknown EPHEMERAL_ names, so a typo here would pass silently."""
    known = setting_env_names() | {"EPHEMERAL_CONFIG"}
    assert make_secrets(tmp_path / "secrets").returncode == 0
    for name in ("api", "worker"):
        env = dict(service(name)["environment"])
        assert set(env) <= known, set(env) - known
        env["EPHEMERAL_CONFIG"] = str(tmp_path / "secrets" / "ephemeral.toml")
        settings = load(env=env)
        assert settings.storage.backend == "s3" and settings.storage.s3_bucket == "ephemeral"
        assert settings.redis.durability == "fsync" and settings.redis.prefix == "eph"
        assert settings.redis.url and settings.redis.url.startswith("redis://ephemeral:")
        assert settings.auth.jwt_key and len(settings.auth.jwt_key) >= 32
        assert settings.idempotency.pepper  # not only in the tmpfs keyring, which reboots lose
        assert str(settings.keyring_path) == "/run/ephemeral/keyring"


def test_compose_secrets_script(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    first = make_secrets(directory)
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = sorted(p.name for p in directory.iterdir())
    assert files == sorted(
        [
            "ephemeral.toml",
            "minio_root_password",
            "minio_root_user",
            "redis_users.acl",
            "s3_access_key",
            "s3_secret_key",
        ]
    )
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o444, path.name
    before = (directory / "ephemeral.toml").read_text()
    again = make_secrets(directory)
    assert again.returncode == 1 and "nothing changed" in again.stderr
    assert (directory / "ephemeral.toml").read_text() == before
    other = tmp_path / "other"
    assert make_secrets(other).returncode == 0
    assert (other / "ephemeral.toml").read_text() != before  # fresh randomness each time


def test_lifecycle_backstop_outlives_every_legitimate_object() -> None:
    """The backstop must never purge early: an object can live until its media's hard deadline,
    expires_at + replay_window + lease_max, and a sender may ask for expires_in and
    replay_window up to limits.expires_max each (ephemeral/meta.py)."""
    defaults = Settings()
    latest_purge = 2 * defaults.limits.expires_max + defaults.lease_max_bound
    rules = json.loads(LIFECYCLE.read_text())["Rules"]
    days = [rule["Expiration"]["Days"] for rule in rules if "Expiration" in rule]
    assert days and min(days) * DAY > latest_purge
    assert min(days) * DAY <= latest_purge + 2 * DAY  # and not much later: it is a backstop


def test_lifecycle_rules_pass_the_bucket_safety_check(
    s3_client: S3Client, moto_server: str
) -> None:
    """Even if someone turns versioning on later, these rules keep the bucket acceptable."""
    bucket = f"lifecycle-{uuid.uuid4().hex}"
    s3_client.create_bucket(Bucket=bucket)
    s3_client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert bucket_problems(s3_client, bucket, "") != []  # unsafe without the rules
    rules = json.loads(LIFECYCLE.read_text())
    s3_client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules)
    assert bucket_problems(s3_client, bucket, "") == []


def test_operations_doc_names_only_real_settings() -> None:
    """docs/operations.md documents every section, and every variable it names exists."""
    doc = (ROOT / "docs" / "operations.md").read_text()
    named = set(re.findall(r"\bEPHEMERAL_[A-Z0-9_]*[A-Z0-9]\b", doc))
    assert named and named <= setting_env_names() | {"EPHEMERAL_CONFIG"}, named
    hints = typing.get_type_hints(Settings)
    sections = [
        f.name for f in dataclasses.fields(Settings) if dataclasses.is_dataclass(hints[f.name])
    ]
    for section in sections:
        assert f"| `[{section}]` |" in doc, section
