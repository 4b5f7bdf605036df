"""Upload URL secrets of the two-step create: the verifier and the key that wraps the DEK.

An upload token has the grammar of a view token (`<lookup>.<secret>`); its derivations use
labels of their own, so an upload secret can never stand in for a recipient's, or back.
"""

from __future__ import annotations

from ephemeral.crypto.keys import derive


def upload_verifier(secret: bytes, lookup: str) -> str:
    return derive(secret, "upload-verify", lookup).hex()


def upload_wrap_key(secret: bytes, media_id: str) -> bytes:
    """Wraps the worker's copy of the DEK until the bytes arrive (not the epoch KEK)."""
    return derive(secret, "upload-wrap", media_id)


def upload_context(media_id: str) -> str:
    return f"upload\x00{media_id}"
