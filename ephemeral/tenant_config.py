"""The `tenants` block of the config: one table per messaging app, validated at start.

```toml
[tenants.chatapp]
service_key_hashes = ["sha256:<hex>", "sha256:<hex>"]   # two valid at once for rotation
jwt_issuer = "https://auth.chatapp.example"
jwt_key_file = "/etc/ephemeral/chatapp.pem"
jwt_algorithm = "EdDSA"
```

Without the block the deployment has one tenant (`tenant`, "default") built from the
top-level `auth` and `webhooks` settings. This module imports nothing from config.py (which
imports it); problems are ValueErrors naming the setting, turned into ConfigErrors there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

TENANT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
KEY_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
ALGORITHMS = ("HS256", "EdDSA", "RS256")
RECEIPT_MODES = ("full", "status_only")
MAX_SERVICE_KEYS = 2  # the one in use and the next one, during a rotation


@dataclass(frozen=True)
class TenantSettings:
    id: str
    service_key_hashes: tuple[str, ...] = ()  # "sha256:<hex>" of the whole "ek_..." key
    jwt_issuer: str = ""
    jwt_key: str | None = None  # HS256 secret or PEM public key
    jwt_key_file: Path | None = None
    jwt_algorithm: Literal["HS256", "EdDSA", "RS256"] = "HS256"
    audience: str = "ephemeral"
    webhook_urls: tuple[str, ...] = ()
    webhook_secrets: tuple[str, ...] = ()
    receipts_to_sender: Literal["full", "status_only"] = "full"
    max_recipients: int | None = None  # None: limits.max_recipients


FIELDS = {
    "service_key_hashes",
    "jwt_issuer",
    "jwt_key",
    "jwt_key_file",
    "jwt_algorithm",
    "audience",
    "webhook_urls",
    "webhook_secrets",
    "receipts_to_sender",
    "max_recipients",
}


def _strings(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # a comma-separated string is accepted too
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"setting {name}: expected a list of strings")
    return tuple(value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"setting {name}: expected a string")
    return value


def parse_tenant(tenant_id: str, raw: Any) -> TenantSettings:
    where = f"tenants.{tenant_id}"
    if not TENANT_ID_RE.match(tenant_id):
        raise ValueError(f"setting {where}: a tenant id is 1-64 characters of A-Z a-z 0-9 _ -")
    if not isinstance(raw, Mapping):
        raise ValueError(f"setting {where}: expected a table")
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise ValueError(f"unknown setting {where}.{unknown[0]}")
    hashes = _strings(f"{where}.service_key_hashes", raw.get("service_key_hashes", []))
    for value in hashes:
        if not KEY_HASH_RE.match(value):
            raise ValueError(
                f"setting {where}.service_key_hashes: each entry is sha256:<64 lowercase hex> "
                "(print one with `ephemeral service-key`)"
            )
    if len(hashes) > MAX_SERVICE_KEYS:
        raise ValueError(f"setting {where}.service_key_hashes: at most {MAX_SERVICE_KEYS} keys")
    issuer = _text(f"{where}.jwt_issuer", raw.get("jwt_issuer", ""))
    if not issuer:
        raise ValueError(f"setting {where}.jwt_issuer: required (a JWT's iss selects its tenant)")
    algorithm = raw.get("jwt_algorithm", "HS256")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"setting {where}.jwt_algorithm: expected one of {ALGORITHMS}")
    key = raw.get("jwt_key")
    key_file = raw.get("jwt_key_file")
    if key is not None:
        key = _text(f"{where}.jwt_key", key)
    if key_file is not None:
        key_file = Path(_text(f"{where}.jwt_key_file", key_file))
    if not key and key_file is None:
        raise ValueError(f"setting {where}.jwt_key: set jwt_key or jwt_key_file")
    if algorithm == "HS256" and key and len(key) < 32:
        raise ValueError(f"setting {where}.jwt_key: an HS256 secret needs at least 32 bytes")
    urls = _strings(f"{where}.webhook_urls", raw.get("webhook_urls", []))
    secrets = _strings(f"{where}.webhook_secrets", raw.get("webhook_secrets", []))
    for url in urls:
        if not url.startswith("https://"):
            raise ValueError(f"setting {where}.webhook_urls: {url!r} is not an https:// URL")
    if urls and not secrets:
        raise ValueError(f"setting {where}.webhook_secrets: endpoints need a whsec_ secret")
    if not all(s.startswith("whsec_") for s in secrets):
        raise ValueError(f"setting {where}.webhook_secrets: each secret is a whsec_... value")
    receipts = raw.get("receipts_to_sender", "full")
    if receipts not in RECEIPT_MODES:
        raise ValueError(f"setting {where}.receipts_to_sender: expected one of {RECEIPT_MODES}")
    max_recipients = raw.get("max_recipients")
    if max_recipients is not None and (
        isinstance(max_recipients, bool)
        or not isinstance(max_recipients, int)
        or not 1 <= max_recipients <= 10_000
    ):
        raise ValueError(f"setting {where}.max_recipients: must be an integer 1..10000")
    return TenantSettings(
        id=tenant_id,
        service_key_hashes=hashes,
        jwt_issuer=issuer,
        jwt_key=key or None,
        jwt_key_file=key_file,
        jwt_algorithm=algorithm,
        audience=_text(f"{where}.audience", raw.get("audience", "ephemeral")),
        webhook_urls=urls,
        webhook_secrets=secrets,
        receipts_to_sender=receipts,
        max_recipients=max_recipients,
    )


def parse_tenants(raw: Any) -> tuple[TenantSettings, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError("setting tenants: expected [tenants.<id>] tables")
    tenants = tuple(parse_tenant(str(tid), body) for tid, body in raw.items())
    check_unique(tenants)
    return tenants


def check_unique(tenants: tuple[TenantSettings, ...]) -> None:
    """A JWT's iss selects the tenant, and a key hash authenticates one tenant only."""
    issuers: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for t in tenants:
        if t.jwt_issuer in issuers:
            raise ValueError(
                f"setting tenants.{t.id}.jwt_issuer: also the issuer of tenant "
                f"{issuers[t.jwt_issuer]}"
            )
        issuers[t.jwt_issuer] = t.id
        for h in t.service_key_hashes:
            if h in hashes and hashes[h] != t.id:
                raise ValueError(
                    f"setting tenants.{t.id}.service_key_hashes: a key of tenant {hashes[h]}"
                )
            hashes[h] = t.id
