"""Callers: sender and recipient JWTs (every registered claim checked), backend service keys."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web

from ephemeral.config import ConfigError, Settings
from ephemeral.crypto.keys import b64
from ephemeral.errors import ServiceError
from ephemeral.tenancy import SERVICE_KEY_PREFIX, Tenant, Tenants

BACKEND_SESSION = 3600  # an event stream opened with a service key re-authenticates hourly


@dataclass(frozen=True)
class Sender:
    """A sender, from a JWT: owns the media it creates, as (tenant, id)."""

    tenant: str
    id: str
    expires_at: int


@dataclass(frozen=True)
class Backend:
    """The messaging app's server, from an `ek_` service key: acts on any media of its tenant."""

    tenant: str
    expires_at: int


Caller = Sender | Backend


def unauthorized(detail: str, error: str = "invalid_token") -> ServiceError:
    challenge = f'Bearer realm="ephemeral", error="{error}"'
    if error == "":
        challenge = 'Bearer realm="ephemeral"'
    return ServiceError(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})


def load_key(settings: Settings, generate: bool) -> str:
    """The verification key: from config, else its file; the embedded default makes one."""
    if settings.auth.jwt_key:
        return settings.auth.jwt_key
    path = settings.jwt_key_path
    if path.exists():
        return path.read_text().strip()
    if not generate or settings.auth.jwt_algorithm != "HS256":
        raise ConfigError(
            "setting auth.jwt_key: no JWT key configured (set EPHEMERAL_AUTH_JWT_KEY or "
            "auth.jwt_key_file); only the embedded default generates one"
        )
    return _generate_key(path)


def _generate_key(path: Path) -> str:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = b64(os.urandom(32))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


class Authenticator:
    """Sender JWTs (a JWT's `iss` selects its tenant) and backend service keys (`ek_...`)."""

    def __init__(
        self, settings: Settings, key: str | None = None, tenants: Tenants | None = None
    ) -> None:
        self.auth = settings.auth
        self.tenants = tenants or Tenants.from_settings(settings, key)

    @classmethod
    def load(cls, settings: Settings, generate: bool) -> Authenticator:
        """At start: every tenant's key read, so a bad config fails before serving."""
        if settings.tenants:
            return cls(settings, tenants=Tenants.from_settings(settings, None))
        return cls(settings, load_key(settings, generate))

    def mint(self, subject: str, lifetime: int = 3600, tenant: str | None = None) -> str:
        """Development tokens (`ephemeral token SUB`); only for the shared-secret algorithm."""
        t = self.tenants.get(tenant) if tenant else self.tenants.all[0]
        if t is None:
            raise ConfigError(f"setting tenants.{tenant}: no such tenant")
        if t.algorithm != "HS256":  # a public key cannot sign: the issuer mints those tokens
            raise ConfigError(f"tenant {t.id}: `ephemeral token` mints only for HS256 tenants")
        now = int(time.time())
        claims = {
            "sub": subject,
            "aud": t.audience,
            "iss": t.issuer,
            "iat": now,
            "exp": now + min(lifetime, self.auth.max_lifetime),
        }
        return jwt.encode(claims, t.jwt_key, algorithm="HS256")

    def _tenant_of(self, token: str) -> Tenant:
        single = self.tenants.single
        if single is not None:
            return single  # the issuer is checked by the verification itself
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise unauthorized(f"invalid token: {type(exc).__name__}") from None
        tenant = self.tenants.by_issuer(unverified.get("iss"))
        if tenant is None:
            raise unauthorized("invalid token: unknown issuer")
        return tenant

    def verify_claims(self, token: str) -> tuple[Tenant, dict[str, Any]]:
        tenant = self._tenant_of(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                tenant.jwt_key,
                algorithms=[tenant.algorithm],  # explicit: never taken from the token
                audience=tenant.audience,
                issuer=tenant.issuer,
                leeway=self.auth.leeway,
                options={"require": ["sub", "aud", "iss", "exp", "iat"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise unauthorized(f"invalid token: {type(exc).__name__}") from None
        iat, exp = claims["iat"], claims["exp"]
        if not isinstance(iat, int | float) or iat > time.time() + self.auth.leeway:
            raise unauthorized("invalid token: issued in the future")
        if exp - iat > self.auth.max_lifetime:
            raise unauthorized("invalid token: lifetime longer than allowed")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise unauthorized("invalid token: bad subject")
        return tenant, claims

    def verify(self, token: str) -> dict[str, Any]:
        return self.verify_claims(token)[1]

    def bearer(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()

    def _backend(self, token: str) -> Backend:
        tenant = self.tenants.by_service_key(token)
        if tenant is None:
            raise unauthorized("unknown service key")
        return Backend(tenant.id, int(time.time()) + BACKEND_SESSION)

    def caller(self, request: web.Request) -> Caller:
        """Routes open to senders and backends: a JWT, or an `ek_` service key."""
        token = self.bearer(request)
        if token is None:
            raise unauthorized("a Bearer token is required", error="")
        if token.startswith(SERVICE_KEY_PREFIX):
            return self._backend(token)
        tenant, claims = self.verify_claims(token)
        return Sender(tenant.id, claims["sub"], int(claims["exp"]))

    def sender(self, request: web.Request) -> Sender:
        """Sender-only routes: a valid service key is refused with 403."""
        caller = self.caller(request)
        if isinstance(caller, Backend):
            raise ServiceError(403, "forbidden", "this route takes a sender JWT, not a service key")
        return caller

    def backend(self, request: web.Request) -> Backend:
        """Backend-only routes: a valid sender JWT is refused with 403."""
        caller = self.caller(request)
        if isinstance(caller, Sender):
            raise ServiceError(403, "forbidden", "this route takes a backend service key")
        return caller

    def optional_subject(self, request: web.Request) -> str:
        """Recipient routes: a JWT is optional, but a bad one is still a 401. The backend never
        views content: a service key is refused like a JWT whose sub is someone else."""
        found = self.optional_recipient(request)
        return found[1] if found else ""

    def optional_recipient(self, request: web.Request) -> tuple[str, str] | None:
        """(tenant, sub) of a recipient JWT, or None without one; see optional_subject."""
        token = self.bearer(request)
        if token is None:
            return None
        if token.startswith(SERVICE_KEY_PREFIX):
            self._backend(token)  # an unknown key is a 401, a known one a 403
            raise ServiceError(403, "forbidden", "a service key cannot view media")
        tenant, claims = self.verify_claims(token)
        return tenant.id, claims["sub"]
