"""The cross-field checks of a loaded configuration: a bad value stops the start, named."""

from __future__ import annotations

from ephemeral.config import ConfigError, RateLimitSettings, Settings
from ephemeral.tenant_config import check_unique


def validate(s: Settings) -> None:
    checks: list[tuple[bool, str]] = [
        (1 <= s.port <= 65535, "port: must be 1..65535"),
        (1 <= s.limits.max_recipients <= 10_000, "limits.max_recipients: must be 1..10000"),
        (1 <= s.limits.max_views <= 10, "limits.max_views: must be 1..10"),
        (
            1 <= s.limits.expires_min <= s.limits.expires_default <= s.limits.expires_max,
            "limits.expires_default: must lie in limits.expires_min..limits.expires_max",
        ),
        (s.lease.idle >= 1, "lease.idle: must be >= 1"),
        (s.lease.max_streams >= 1, "lease.max_streams: must be >= 1"),
        (s.lease.byte_budget_factor >= 1, "lease.byte_budget_factor: must be >= 1"),
        (s.worker.sweep_interval > 0, "worker.sweep_interval: must be > 0"),
        (s.worker.shutdown_grace >= 0, "worker.shutdown_grace: must be >= 0"),
        (s.receipts_ttl >= 60, "receipts_ttl: must be >= 60"),
        (
            s.storage.backend != "s3" or bool(s.storage.s3_bucket),
            "storage.s3_bucket: required when storage.backend is s3",
        ),
        (bool(s.tenant), "tenant: must not be empty"),
        (s.ops.port is None or 1 <= s.ops.port <= 65535, "ops.port: must be 1..65535"),
        (s.ops.port != s.port, "ops.port: must differ from port"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"setting {message}")
    if s.auth.jwt_algorithm == "HS256" and s.auth.jwt_key and len(s.auth.jwt_key) < 32:
        raise ConfigError("setting auth.jwt_key: an HS256 secret needs at least 32 bytes")
    for url in s.webhooks.url_list:
        if not url.startswith("https://"):
            raise ConfigError(f"setting webhooks.urls: {url!r} is not an https:// URL")
    if s.webhooks.url_list and not s.webhooks.secret_list:
        raise ConfigError("setting webhooks.secrets: endpoints need at least one whsec_ secret")
    for secret in s.webhooks.secret_list:
        if not secret.startswith("whsec_"):
            raise ConfigError("setting webhooks.secrets: each secret is a whsec_... value")
    if s.idempotency.pepper is not None and len(s.idempotency.pepper) < 32:
        raise ConfigError("setting idempotency.pepper: needs at least 32 characters")
    if s.idempotency.ttl < 60:
        raise ConfigError("setting idempotency.ttl: must be >= 60 seconds")
    try:
        check_unique(s.tenants)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if s.tenants and (s.webhooks.urls or s.auth.service_key_hashes):
        name = "webhooks.urls" if s.webhooks.urls else "auth.service_key_hashes"
        raise ConfigError(f"setting {name}: with a tenants block, set it per tenant")
    if not 0 <= s.auth.leeway <= 60:
        raise ConfigError("setting auth.leeway: must be 0..60 seconds")
    if not 60 <= s.auth.max_lifetime <= 3600:
        raise ConfigError("setting auth.max_lifetime: must be 60..3600 seconds")
    validate_ratelimit(s.ratelimit)


def validate_ratelimit(r: RateLimitSettings) -> None:
    from ephemeral.abuse.address import parse_trusted  # the one parser of the setting

    counts = (
        "uploads_per_minute",
        "recipients_per_day",
        "inflight_jobs",
        "stored_bytes",
        "fanout_recipients",
        "redeem_misses_per_minute",
        "viewer_per_minute",
        "memory_alarm_bytes",
    )
    for name in counts:
        if getattr(r, name) < 0:
            raise ConfigError(f"setting ratelimit.{name}: must be >= 0 (0 turns it off)")
    if r.fanout_window < 1:
        raise ConfigError("setting ratelimit.fanout_window: must be >= 1 second")
    if not 0 < r.memory_alarm_fraction <= 1:
        raise ConfigError("setting ratelimit.memory_alarm_fraction: must be in (0, 1]")
    if r.memory_check_interval < 0:
        raise ConfigError("setting ratelimit.memory_check_interval: must be >= 0")
    if r.pepper is not None and len(r.pepper) < 32:
        raise ConfigError("setting ratelimit.pepper: needs at least 32 characters")
    try:
        parse_trusted(r.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"setting ratelimit.trusted_proxies: {exc}") from None
