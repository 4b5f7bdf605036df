"""Sender and recipient JWTs: one configured algorithm, every registered claim checked."""

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


@dataclass(frozen=True)
class Sender:
    tenant: str
    id: str
    expires_at: int


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
    def __init__(self, settings: Settings, key: str) -> None:
        self.auth = settings.auth
        self.tenant = settings.tenant
        self.key = key

    def mint(self, subject: str, lifetime: int = 3600) -> str:
        """Development tokens (`ephemeral token SUB`); only for the shared-secret algorithm."""
        now = int(time.time())
        claims = {
            "sub": subject,
            "aud": self.auth.audience,
            "iss": self.auth.issuer,
            "iat": now,
            "exp": now + min(lifetime, self.auth.max_lifetime),
        }
        return jwt.encode(claims, self.key, algorithm="HS256")

    def verify(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=[self.auth.jwt_algorithm],  # explicit: never taken from the token
                audience=self.auth.audience,
                issuer=self.auth.issuer,
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
        return claims

    def bearer(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()

    def sender(self, request: web.Request) -> Sender:
        token = self.bearer(request)
        if token is None:
            raise unauthorized("a Bearer token is required", error="")
        claims = self.verify(token)
        return Sender(self.tenant, claims["sub"], int(claims["exp"]))

    def optional_subject(self, request: web.Request) -> str:
        """Recipient routes: a JWT is optional, but a bad one is still a 401."""
        token = self.bearer(request)
        if token is None:
            return ""
        subject: str = self.verify(token)["sub"]
        return subject
