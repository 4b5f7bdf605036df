"""Key derivation (HKDF-SHA256 with distinct labels) and AES-GCM key wrapping."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SALT = b"ephemeral/v1"
TOKEN_RE = re.compile(r"^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$")


class UnwrapError(Exception):
    """A wrapped key did not authenticate under the given key-encryption key."""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive(ikm: bytes, label: str, context: str = "", length: int = 32) -> bytes:
    info = label.encode() + b"\x00" + context.encode()
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=info).derive(ikm)


def random_id(nbytes: int = 16) -> str:
    return b64(os.urandom(nbytes))


def new_dek() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap(kek: bytes, key: bytes, context: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(kek).encrypt(nonce, key, context.encode())


def unwrap(kek: bytes, blob: bytes, context: str) -> bytes:
    try:
        return AESGCM(kek).decrypt(blob[:12], blob[12:], context.encode())
    except (InvalidTag, ValueError) as exc:
        raise UnwrapError("wrapped key did not authenticate") from exc


def digest(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()


# -- recipient tokens: <lookup>.<secret>; only derived values ever leave this process --------


def new_token() -> tuple[str, bytes]:
    """A fresh (lookup, secret): 128 random bits of lookup, 256 of secret."""
    return b64(os.urandom(16)), os.urandom(32)


def format_token(lookup: str, secret: bytes) -> str:
    return f"{lookup}.{b64(secret)}"


def parse_token(token: str) -> tuple[str, bytes] | None:
    """The strict token grammar; non-canonical base64 is refused so a token has one spelling."""
    match = TOKEN_RE.match(token)
    if not match:
        return None
    lookup, secret_text = match.groups()
    secret = unb64(secret_text)
    if b64(secret) != secret_text or b64(unb64(lookup)) != lookup:
        return None
    return lookup, secret


def token_verifier(secret: bytes, lookup: str) -> str:
    return derive(secret, "verify", lookup).hex()


def recipient_wrap_key(secret: bytes, media_id: str, recipient: str) -> bytes:
    return derive(secret, "wrap", f"{media_id}\x00{recipient}")


def lease_secret(secret: bytes, view_id: str) -> str:
    """Derived, never stored, so a retried redeem can hand out the same lease again."""
    return b64(derive(secret, "lease", view_id))


def lease_verifier(lease: str, view_id: str) -> str:
    return derive(lease.encode(), "lease-verify", view_id).hex()


def lease_wrap_key(lease: str, view_id: str) -> bytes:
    return derive(lease.encode(), "lease-wrap", view_id)


def kek_context(media_id: str, epoch: int) -> str:
    return f"kek\x00{media_id}\x00{epoch}"


def recipient_context(media_id: str, recipient: str) -> str:
    return f"recipient\x00{media_id}\x00{recipient}"


def lease_context(view_id: str) -> str:
    return f"lease\x00{view_id}"


def lease_wrapped_key(lease: str, view_id: str, recipient_key: bytes) -> str:
    """The recipient's wrap key under the lease key: the redeem needs no read of the wrapped
    DEK first, and the lease row pairs this with a copy of the recipient's wrapped DEK."""
    return b64(wrap(lease_wrap_key(lease, view_id), recipient_key, lease_context(view_id)))


@dataclass(frozen=True)
class LeaseKeys:
    """The wrapped keys a lease row holds, as read back for a stream or a replayed redeem."""

    recipient: str = ""
    recipient_key: str = ""  # 'rk': the recipient's wrap key under the lease key
    recipient_wrapped: str = ""  # 'dk': a copy of the recipient's wrapped DEK
    legacy: str = ""  # 'wk', in rows of the earlier format: the DEK under the lease key

    @property
    def present(self) -> bool:
        """False once the lease has ended: its keys are deleted then."""
        return bool(self.recipient_key or self.legacy)


def lease_dek(lease: str, view_id: str, media_id: str, row: LeaseKeys) -> bytes:
    """The DEK a lease opens: the lease key opens the recipient's wrap key, which opens it.
    A row written before that format (a rolling upgrade) holds the DEK under the lease key."""
    lease_key = lease_wrap_key(lease, view_id)
    if not row.recipient_key:
        return unwrap(lease_key, unb64(row.legacy), lease_context(view_id))
    recipient_key = unwrap(lease_key, unb64(row.recipient_key), lease_context(view_id))
    context = recipient_context(media_id, row.recipient)
    return unwrap(recipient_key, unb64(row.recipient_wrapped), context)
