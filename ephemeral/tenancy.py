"""The tenants of a deployment at run time: JWT keys loaded, service keys matched by hash."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

import jwt

from ephemeral.config import ConfigError, LimitSettings, Settings, WebhookSettings
from ephemeral.crypto.keys import b64
from ephemeral.tenant_config import KEY_HASH_RE, TenantSettings

SERVICE_KEY_PREFIX = "ek_"
SERVICE_KEY_RE = re.compile(r"^ek_[A-Za-z0-9_-]{43}$")


def new_service_key() -> str:
    """`ek_` + 256 random bits, unpadded base64url (43 characters)."""
    return SERVICE_KEY_PREFIX + b64(os.urandom(32))


def service_key_hash(key: str) -> str:
    """What the config stores: a fast hash is enough for a 256-bit random key."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Tenant:
    id: str
    key_digests: tuple[bytes, ...]
    issuer: str
    audience: str
    algorithm: str
    jwt_key: str
    webhooks: WebhookSettings  # the deployment's delivery settings with this tenant's endpoints
    limits: LimitSettings  # the deployment's limits with this tenant's overrides
    status_only: bool  # receipts_to_sender = status_only: times hidden from sender credentials


def _digests(hashes: tuple[str, ...], name: str) -> tuple[bytes, ...]:
    for value in hashes:
        if not KEY_HASH_RE.match(value):
            raise ConfigError(f"setting {name}: each entry is sha256:<64 lowercase hex>")
    return tuple(bytes.fromhex(h.removeprefix("sha256:")) for h in hashes)


def _read_key(path: Path, name: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"setting {name}: cannot read {path}: {exc.strerror}") from None


def _checked_key(algorithm: str, key: str, name: str) -> str:
    """A key PyJWT will accept for the algorithm, checked at start: a malformed PEM or a short
    secret would otherwise surface as a 500 on the first token of the tenant."""
    if algorithm == "HS256" and len(key.encode()) < 32:
        raise ConfigError(f"setting {name}: an HS256 secret needs at least 32 bytes")
    try:
        jwt.get_algorithm_by_name(algorithm).prepare_key(key)
    except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"setting {name}: not a {algorithm} key ({type(exc).__name__})") from None
    return key


def _configured(settings: Settings, t: TenantSettings) -> Tenant:
    where = f"tenants.{t.id}"
    source = f"{where}.jwt_key" if t.jwt_key else f"{where}.jwt_key_file"
    key = t.jwt_key or _read_key(t.jwt_key_file or Path(), source)
    key = _checked_key(t.jwt_algorithm, key, source)
    webhooks = dataclasses.replace(
        settings.webhooks, urls=",".join(t.webhook_urls), secrets=",".join(t.webhook_secrets)
    )
    limits = settings.limits
    if t.max_recipients is not None:
        limits = dataclasses.replace(limits, max_recipients=t.max_recipients)
    return Tenant(
        id=t.id,
        key_digests=_digests(t.service_key_hashes, f"{where}.service_key_hashes"),
        issuer=t.jwt_issuer,
        audience=t.audience,
        algorithm=t.jwt_algorithm,
        jwt_key=key,
        webhooks=webhooks,
        limits=limits,
        status_only=t.receipts_to_sender == "status_only",
    )


def default_tenant(settings: Settings, jwt_key: str) -> Tenant:
    """No tenants block: one tenant from today's top-level auth and webhooks settings."""
    a = settings.auth
    hashes = tuple(h.strip() for h in a.service_key_hashes.split(",") if h.strip())
    return Tenant(
        id=settings.tenant,
        key_digests=_digests(hashes, "auth.service_key_hashes"),
        issuer=a.issuer,
        audience=a.audience,
        algorithm=a.jwt_algorithm,
        jwt_key=_checked_key(a.jwt_algorithm, jwt_key, "auth.jwt_key"),
        webhooks=settings.webhooks,
        limits=settings.limits,
        status_only=False,
    )


class Tenants:
    def __init__(self, tenants: list[Tenant]) -> None:
        if not tenants:
            raise ConfigError("setting tenants: at least one tenant is needed")
        self.all = tuple(tenants)
        self._by_id = {t.id: t for t in tenants}
        self._by_issuer = {t.issuer: t for t in tenants}

    @classmethod
    def from_settings(cls, settings: Settings, default_key: str | None) -> Tenants:
        """`default_key` is the top-level JWT key; it is needed only without a tenants block."""
        if settings.tenants:
            return cls([_configured(settings, t) for t in settings.tenants])
        if default_key is None:
            raise ConfigError("setting auth.jwt_key: no JWT key configured")
        return cls([default_tenant(settings, default_key)])

    @property
    def single(self) -> Tenant | None:
        return self.all[0] if len(self.all) == 1 else None

    def get(self, tenant_id: str) -> Tenant | None:
        return self._by_id.get(tenant_id)

    def by_issuer(self, issuer: object) -> Tenant | None:
        return self._by_issuer.get(issuer) if isinstance(issuer, str) else None

    def by_service_key(self, key: str) -> Tenant | None:
        """Every stored digest is compared, each in constant time, whatever matches first."""
        if not SERVICE_KEY_RE.match(key):
            return None
        digest = hashlib.sha256(key.encode()).digest()
        found: Tenant | None = None
        for tenant in self.all:
            for stored in tenant.key_digests:
                if hmac.compare_digest(digest, stored):
                    found = tenant
        return found

    def status_only(self, tenant_id: str) -> bool:
        tenant = self.get(tenant_id)
        return tenant is not None and tenant.status_only

    def limits(self, tenant_id: str, fallback: LimitSettings) -> LimitSettings:
        tenant = self.get(tenant_id)
        return tenant.limits if tenant is not None else fallback
