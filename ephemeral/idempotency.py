"""Idempotency-Key for creates: one media per (tenant, sender, key); retries get the first answer.

Redis alone never reveals a token or the raw key: the record is named by
HMAC(pepper, tenant ‖ sender ‖ key) and the stored response is AES-GCM under
HKDF(pepper, tenant ‖ sender ‖ key). The pepper is a server secret kept outside Redis
(config, or a 0600 file in the keyring dir). The request fingerprint is an HMAC under that
derived key too, so even the meta's shape cannot be tested against Redis without the key.

The one-step multipart create fingerprints its `meta` only: the file bytes are not known when
the key is claimed (before the body is read), so a retry with the same meta and another file
is a replay, not a 422.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from ephemeral.config import ConfigError, Settings
from ephemeral.crypto import keys as kc
from ephemeral.errors import ServiceError
from ephemeral.state.idempotency import Held, IdempotencyRecords
from ephemeral.state.media import MediaRepo
from ephemeral.state.records import render_media, render_recipient

log = logging.getLogger("ephemeral.idempotency")

HEADER = "Idempotency-Key"
# A UUID (hex and hyphens are base64url characters) or >= 22 base64url characters (128 bits).
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{22,255}$")
PEPPER_FILE = "idempotency.pepper"
RETRY_AFTER = "2"
LIVE_STATES = frozenset({"awaiting_upload", "processing", "ready"})


@dataclass(frozen=True)
class Outcome:
    """A create's successful answer, as it will be replayed."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    media_id: str


Produce = Callable[[], Awaitable[Outcome]]


def parse_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not KEY_RE.match(value):
        raise ServiceError(
            422,
            "invalid-field",
            "Idempotency-Key must be a UUID or 22..255 base64url characters",
            errors=[{"pointer": "", "code": "invalid-field", "detail": "bad Idempotency-Key"}],
        )
    return value


def fingerprint_material(flow: str, meta: Any) -> bytes:
    """Canonical JSON of the validated meta (defaults applied), and which create it was."""
    is_record = dataclasses.is_dataclass(meta) and not isinstance(meta, type)
    fields = dataclasses.asdict(meta) if is_record else meta
    text = json.dumps({"flow": flow, "meta": fields}, sort_keys=True, separators=(",", ":"))
    return text.encode()


def load_pepper(settings: Settings) -> bytes:
    """From config, else the keyring dir's pepper file, created atomically when absent."""
    if settings.idempotency.pepper:
        return settings.idempotency.pepper.encode()
    directory = settings.keyring_path
    path = directory / PEPPER_FILE
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            _create_pepper(directory, path)
        return path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"setting idempotency.pepper: none set, and {path}: {exc}") from exc


def _create_pepper(directory: Path, path: Path) -> None:
    tmp = directory / f".{PEPPER_FILE}.{os.getpid()}.{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, kc.b64(os.urandom(32)).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # the first process's pepper wins; the others read it
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def respond(outcome: Outcome, replayed: bool = False) -> web.Response:
    headers = dict(outcome.headers)
    if replayed:
        headers["Idempotent-Replayed"] = "true"
        headers["Cache-Control"] = "no-store"
    return web.Response(
        status=outcome.status,
        text=json.dumps(outcome.body),
        content_type="application/json",
        headers=headers,
    )


class Idempotency:
    def __init__(
        self,
        records: IdempotencyRecords,
        media: MediaRepo,
        pepper: bytes,
        ttl: int,
        inflight_ttl: float,
    ) -> None:
        self.records = records
        self.media = media
        self.pepper = pepper
        self.ttl_ms = ttl * 1000
        # A claim outlives the longest upload, so a crashed process's claim frees itself.
        self.inflight_ms = int(min(inflight_ttl, ttl) * 1000)

    def _names(self, owner: tuple[str, str], key: str) -> tuple[str, bytes]:
        scope = "\x00".join((*owner, key))
        digest = hmac.new(self.pepper, scope.encode(), hashlib.sha256).hexdigest()
        return self.records.keys.idempotency(digest), kc.derive(self.pepper, "idempotency", scope)

    async def run(
        self,
        owner: tuple[str, str],
        key: str | None,
        material: bytes,
        produce: Produce,
        hide_times: bool = False,
    ) -> web.Response:
        """Run `produce` at most once per (owner, key) within the TTL; replay its answer.
        `hide_times`: the caller may see statuses only (receipts_to_sender = status_only)."""
        if key is None:
            return respond(await produce())
        record, secret = self._names(owner, key)
        fingerprint = hmac.new(secret, material, hashlib.sha256).hexdigest()
        nonce = kc.random_id(16)
        held = await self.records.claim(record, fingerprint, nonce, self.inflight_ms)
        if held is not None:
            return await self._replay(held, fingerprint, secret, record, hide_times)
        try:
            outcome = await produce()
        except BaseException:
            # A 4xx, an aborted upload, a crash of the handler: the retry may run again.
            await asyncio.shield(self._release(record, nonce))
            raise
        await asyncio.shield(self._complete(record, nonce, secret, outcome))
        return respond(outcome)

    async def _release(self, record: str, nonce: str) -> None:
        try:
            await self.records.release(record, nonce)
        except RedisError as exc:  # the in-flight marker expires on its own
            log.warning("releasing an idempotency key failed: %s", type(exc).__name__)

    async def _complete(self, record: str, nonce: str, secret: bytes, outcome: Outcome) -> None:
        """Link the media to its record (for the tombstone), then store the encrypted answer.

        The media exists by now, so its answer goes out even if this fails; the in-flight
        marker then expires and a later retry would create a second media.
        """
        plain = json.dumps(
            {"status": outcome.status, "body": outcome.body, "headers": outcome.headers}
        ).encode()
        sealed = base64.b64encode(kc.wrap(secret, plain, record)).decode()
        try:
            await self.records.link(record, outcome.media_id)
            done = await self.records.complete(
                record, nonce, outcome.status, sealed, outcome.media_id, self.ttl_ms
            )
        except RedisError as exc:
            log.warning("storing an idempotent response failed: %s", type(exc).__name__)
            return
        if not done:
            log.warning("an idempotency claim expired before its create finished")

    async def _replay(
        self, held: Held, fingerprint: str, secret: bytes, record: str, hide_times: bool
    ) -> web.Response:
        if not hmac.compare_digest(held.fingerprint, fingerprint):
            raise ServiceError(
                422,
                "idempotency-key-reused",
                "this Idempotency-Key was used for a request with different meta",
            )
        if held.state not in ("done", "tomb"):
            raise ServiceError(
                409,
                "idempotency-key-in-flight",
                "a request with this Idempotency-Key is still running; retry later",
                headers={"Retry-After": RETRY_AFTER},
            )
        # The state alone first: a live media replays its stored answer, no members needed.
        current = await self.media.get(held.media_id, with_recipients=False)
        state = current.media.get("state", "") if current is not None else ""
        if held.state == "done" and state in LIVE_STATES:
            try:
                stored = json.loads(kc.unwrap(secret, base64.b64decode(held.ciphertext), record))
            except (kc.UnwrapError, ValueError):
                log.warning("an idempotent response did not decrypt; answering without tokens")
            else:
                return respond(
                    Outcome(stored["status"], stored["body"], stored["headers"], held.media_id),
                    replayed=True,
                )
        # Unsent, purged, failed or gone: the current state, never a token again.
        if current is not None:
            current = await self.media.get(held.media_id)
        if current is None:
            body: dict[str, Any] = {"id": held.media_id, "state": "purged", "recipients": []}
        else:
            body = render_media(current.id, current.media)
            body["recipients"] = [
                render_recipient(rid, r, hide_times) for rid, r in current.recipients
            ]
            body["recipients_next_cursor"] = current.next_cursor
        headers = {"Location": f"/v1/media/{held.media_id}"}
        return respond(Outcome(held.status or 200, body, headers, held.media_id), replayed=True)
