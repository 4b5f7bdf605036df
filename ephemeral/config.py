"""Settings, parsed once: defaults, then an optional TOML file, then EPHEMERAL_* variables."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ephemeral.tenant_config import TenantSettings, parse_tenants

MiB = 1 << 20


class ConfigError(Exception):
    """A setting has a bad value; the message names the setting."""


@dataclass(frozen=True)
class RedisSettings:
    url: str | None = None  # None: start a private redis-server under the data dir
    prefix: str = "eph"
    # fsync: the server must run appendfsync always; attested: the operator vouches for it;
    # waitaof: WAITAOF after each redemption (Redis >= 7.2, replicated deployments).
    durability: Literal["fsync", "waitaof", "attested"] = "fsync"
    redis_server: str = "redis-server"


@dataclass(frozen=True)
class StorageSettings:
    backend: Literal["fs", "s3"] = "fs"
    fs_root: Path | None = None  # default: <data_dir>/blobs
    s3_bucket: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_prefix: str = ""
    s3_allow_unsafe_bucket: bool = False
    s3_max_workers: int = 8


@dataclass(frozen=True)
class AuthSettings:
    jwt_algorithm: Literal["HS256", "EdDSA", "RS256"] = "HS256"
    jwt_key: str | None = None  # HS256 secret, or a PEM public key
    jwt_key_file: Path | None = None  # default in the embedded mode: <data_dir>/jwt.key
    audience: str = "ephemeral"
    issuer: str = "ephemeral"
    leeway: int = 30
    max_lifetime: int = 3600
    # The default tenant's backend service keys (comma-separated sha256:<hex>), when there is
    # no tenants block; `ephemeral service-key` prints a key and its hash.
    service_key_hashes: str = ""


@dataclass(frozen=True)
class LimitSettings:
    max_image_bytes: int = 25 * MiB
    max_video_bytes: int = 100 * MiB
    max_audio_bytes: int = 10 * MiB
    max_image_pixels: int = 64_000_000
    max_image_side: int = 4096
    max_video_width: int = 3840  # the input frame limit (long side x short side)
    max_video_height: int = 2160
    max_duration: float = 60.0  # seconds, video and voice
    allow_remux: bool = False  # copy compliant H.264 instead of re-encoding it
    max_recipients: int = 250
    max_views: int = 2
    expires_default: int = 1_209_600
    expires_min: int = 60
    expires_max: int = 2_592_000
    replay_window: int = 86_400
    caption_max: int = 485
    client_ref_max: int = 255
    upload_deadline: float = 600.0
    upload_min_rate: int = 32 * 1024
    upload_rate_window: float = 30.0
    upload_ttl: int = 86_400  # two-step create: how long the upload URL waits for the bytes


@dataclass(frozen=True)
class LeaseSettings:
    idle: int = 60
    max_floor: int = 600
    max_duration_factor: int = 4
    byte_budget_factor: int = 3
    max_streams: int = 4
    recheck_interval: float = 1.0


@dataclass(frozen=True)
class WorkerSettings:
    job_timeout: int = 300
    max_tries: int = 3
    concurrency: int = 4
    sweep_interval: float = 1.0
    sweep_batch: int = 200
    keyring_retention: int = 86_400
    max_transcodes: int = 1  # concurrent ffmpeg jobs per worker process (2 cores here)
    # Seconds a stopping worker lets its jobs in flight finish before cutting them (they are
    # idempotent: a cut job runs again after its job timeout).
    shutdown_grace: float = 5.0

    @property
    def processing_deadline_ms(self) -> int:
        """After this, media still processing fails with processing-failed: never stuck."""
        return (self.max_tries * self.job_timeout + 60) * 1000

    @property
    def requeue_ms(self) -> int:
        """How often the sweeper re-enqueues (idempotently) a job that may have been lost."""
        return self.job_timeout * 1000


@dataclass(frozen=True)
class WebhookSettings:
    """The default tenant's endpoints (the tenants block of the integrator issue generalises)."""

    urls: str = ""  # comma-separated https:// URLs
    secrets: str = ""  # comma-separated whsec_... secrets, all valid at once (rotation)
    ca_file: Path | None = None  # a private or test CA for the endpoints' certificates
    timeout: float = 10.0
    max_tries: int = 8
    # The waits between tries grow as first_retry * backoff_factor^n: 8 tries span about 24 h.
    first_retry: float = 4.5
    backoff_factor: float = 5.0

    @property
    def url_list(self) -> list[str]:
        return [u.strip() for u in self.urls.split(",") if u.strip()]

    @property
    def secret_list(self) -> list[str]:
        return [s.strip() for s in self.secrets.split(",") if s.strip()]


@dataclass(frozen=True)
class EventSettings:
    sse_max_streams: int = 5
    sse_heartbeat: float = 20.0
    ticket_ttl: int = 60


@dataclass(frozen=True)
class IdempotencySettings:
    # The server secret behind Idempotency-Key records: from here (>= 32 characters), else a
    # 0600 file in the keyring dir, generated (O_EXCL) when absent. API processes that do not
    # share the keyring dir must all be given the same pepper.
    pepper: str | None = None
    ttl: int = 86_400  # records (and tombstones) live this long after the first request


@dataclass(frozen=True)
class RateLimitSettings:
    """Abuse controls (docs/API.md, Defaults). A limit of 0 turns that limit off."""

    uploads_per_minute: int = 60  # per sender
    recipients_per_day: int = 5_000  # per sender, summed over creates
    inflight_jobs: int = 4  # per sender: media still processing, checked before enqueue
    stored_bytes: int = 2 * 1024 * MiB  # per sender: uploaded bytes not yet purged
    fanout_recipients: int = 50  # distinct recipients of the same content ...
    fanout_window: int = 3600  # ... within this many seconds
    redeem_misses_per_minute: int = 30  # 404s from peek/redeem, per client address
    viewer_per_minute: int = 300  # GET/HEAD /v/*, per client address
    # Comma-separated addresses or networks whose X-Forwarded-For is believed ("unix" = a peer
    # on a unix socket); the client is the rightmost hop that is not one of them.
    trusted_proxies: str = ""
    memory_alarm_fraction: float = 0.9  # shed uploads above this share of Redis maxmemory
    memory_alarm_bytes: int = 0  # ... or above this used_memory (0: only the fraction)
    memory_check_interval: float = 1.0  # seconds an INFO memory reading is reused
    # The key of the content HMAC (fan-out); every API process must share it. Default: a 0600
    # file made once in the keyring dir (outside the data dir). Never stored in Redis.
    pepper: str | None = None
    pepper_file: Path | None = None


@dataclass(frozen=True)
class OpsSettings:
    """The ops listener: when a port is set, /metrics, /healthz and /readyz move there."""

    host: str = "127.0.0.1"
    port: int | None = None
    # Where the API and worker processes of one host share their metrics (prometheus-client's
    # multiprocess mode); default: <data_dir>/run/metrics.
    metrics_dir: Path | None = None


@dataclass(frozen=True)
class LogSettings:
    format: Literal["json", "text"] = "json"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # default: http://host:port
    viewer_url: str = ""  # default: public_url
    tenant: str = "default"
    receipts_ttl: int = 30 * 86_400
    keyring_dir: Path | None = None  # default: <data_dir>.keyring, beside the data dir
    embedded_worker: bool = True
    redis: RedisSettings = field(default_factory=RedisSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    events: EventSettings = field(default_factory=EventSettings)
    idempotency: IdempotencySettings = field(default_factory=IdempotencySettings)
    ratelimit: RateLimitSettings = field(default_factory=RateLimitSettings)
    ops: OpsSettings = field(default_factory=OpsSettings)
    log: LogSettings = field(default_factory=LogSettings)
    # The [tenants.<id>] tables (tenant_config.py); empty: one tenant from auth and webhooks.
    tenants: tuple[TenantSettings, ...] = ()

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def viewer_base_url(self) -> str:
        return (self.viewer_url or self.base_url).rstrip("/")

    @property
    def lease_max_bound(self) -> int:
        """The longest any lease can run: max(floor, factor x the longest allowed duration)."""
        factor = self.lease.max_duration_factor * self.limits.max_duration
        return int(max(self.lease.max_floor, factor))

    @property
    def blob_root(self) -> Path:
        return self.storage.fs_root or self.data_dir / "blobs"

    @property
    def keyring_path(self) -> Path:
        # Outside the data dir, so a copy of the data dir never carries the keys with it.
        return self.keyring_dir or self.data_dir.with_name(self.data_dir.name + ".keyring")

    @property
    def metrics_path(self) -> Path:
        return self.ops.metrics_dir or self.data_dir / "run" / "metrics"

    @property
    def jwt_key_path(self) -> Path:
        return self.auth.jwt_key_file or self.data_dir / "jwt.key"


def _coerce(name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value == ""):
            return None
        return _coerce(name, options[0], value)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"setting {name}: expected one of {allowed}, got {value!r}")
        return value
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is Path:
            return Path(value)
        if hint is str:
            if not isinstance(value, str | int | float):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError):
        kind = getattr(hint, "__name__", str(hint))
        raise ConfigError(f"setting {name}: expected {kind}, got {value!r}") from None
    raise ConfigError(f"setting {name}: unsupported type {hint!r}")


def _build(cls: type[Any], prefix: str, toml: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    known = set()
    for f in dataclasses.fields(cls):
        known.add(f.name)
        dotted = f"{prefix}{f.name}"
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            section = toml.get(f.name, {})
            if not isinstance(section, Mapping):
                raise ConfigError(f"setting {dotted}: expected a table")
            values[f.name] = _build(hint, f"{dotted}.", section, env)  # type: ignore[arg-type]
            continue
        env_name = "EPHEMERAL_" + dotted.replace(".", "_").upper()
        if env_name in env:
            values[f.name] = _coerce(dotted, hint, env[env_name])
        elif f.name in toml:
            values[f.name] = _coerce(dotted, hint, toml[f.name])
    unknown = set(toml) - known
    if unknown:
        raise ConfigError(f"unknown setting {prefix}{sorted(unknown)[0]}")
    return cls(**values)


def load(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    path = path or (Path(env["EPHEMERAL_CONFIG"]) if env.get("EPHEMERAL_CONFIG") else None)
    toml: dict[str, Any] = {}
    if path is not None:
        try:
            toml = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    tenants_block = toml.pop("tenants", None)
    settings: Settings = _build(Settings, "", toml, env)
    if tenants_block is not None:
        try:
            settings = dataclasses.replace(settings, tenants=parse_tenants(tenants_block))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    from ephemeral.config_checks import validate  # it imports the classes defined here

    validate(settings)
    return settings
