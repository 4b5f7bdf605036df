"""One webhook try: endpoints, webhook ids, Standard Webhooks signing, a strict POST, backoff."""

from __future__ import annotations

import hashlib
import json
import random
import ssl
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from standardwebhooks import Webhook

from ephemeral.config import WebhookSettings

USER_AGENT = "ephemeral-webhooks/1"
JITTER = 0.1  # ±10 %: dispatchers that failed together do not retry in lockstep


@dataclass(frozen=True)
class Endpoint:
    url: str
    host: str  # what logs may show: the path or query of a webhook URL often carries a secret
    key: str  # a stable digest of the URL, so a stored job survives reordered config


def endpoints(settings: WebhookSettings) -> list[Endpoint]:
    """The configured endpoints, deduplicated; anything but https:// is refused outright."""
    found: dict[str, Endpoint] = {}
    for url in settings.url_list:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"webhook endpoint {parts.hostname or '?'}: not an https:// URL")
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        found.setdefault(url, Endpoint(url, host, _digest(url)[:16]))
    return list(found.values())


def webhook_id(tenant: str, media_id: str, seq: int, endpoint: Endpoint) -> str:
    """Fixed across retries and across the relay's own repeats: (media, seq) names one event."""
    return "msg_" + _digest(f"{tenant}\n{media_id}\n{seq}\n{endpoint.url}")[:32]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def compact(event: str) -> str:
    """The body: the relayed envelope re-serialised compactly; json keeps key order, so the
    same event always yields the same bytes."""
    return json.dumps(json.loads(event), separators=(",", ":"))


def retry_delay(settings: WebhookSettings, failed_try: int) -> float:
    """Seconds to wait after try `failed_try` (1-based) failed."""
    base = settings.first_retry * settings.backoff_factor ** (failed_try - 1)
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def schedule_span(settings: WebhookSettings) -> float:
    """The longest an event can spend in retries: every wait at its jittered maximum."""
    tries = range(settings.max_tries - 1)
    waits = (settings.first_retry * settings.backoff_factor**n for n in tries)
    return sum(waits) * (1 + JITTER)


def claim_idle_ms(settings: WebhookSettings) -> int:
    """An entry or retry untouched this long belongs to a dead dispatcher: every send is bounded
    by the timeout, and the margin covers the Redis round trips around it."""
    return int((settings.timeout * 1.5 + 1.0) * 1000)


@dataclass(frozen=True)
class Job:
    """A scheduled retry. It carries the event itself: the tenant stream is trimmed at 24 h,
    which the last retries outlive."""

    wid: str
    endpoint: str  # Endpoint.key
    attempt: int  # the try this job makes, 2..max_tries
    event: str

    def member(self) -> str:
        # Deterministic, so scheduling the same retry twice (a reclaimed entry) adds nothing.
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def parse(cls, member: str) -> Job | None:
        try:
            raw = json.loads(member)
            compact(raw["event"])  # an unreadable event could never be sent
            return cls(str(raw["wid"]), str(raw["endpoint"]), int(raw["attempt"]), raw["event"])
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str  # an HTTP status, or the name of the error: never a body or a header


def event_fields(event: str) -> dict[str, Any]:
    """What a log line or a dead-letter record may say about an event."""
    try:
        parsed = json.loads(event)
        data = parsed.get("data") or {}
        return {
            "type": str(parsed.get("type", "")),
            "media_id": str(data.get("media_id", "")),
            "tenant": str(data.get("tenant", "")),
            "seq": int(data.get("seq", 0)),
        }
    except (ValueError, AttributeError, TypeError):
        return {"type": "", "media_id": "", "tenant": "", "seq": 0}


def dead_record(job: Job, url: str, attempts: int, last: str) -> str:
    """What an operator needs to replay or chase a delivery: never the body, never a secret."""
    info = event_fields(job.event)
    record = {
        "webhook_id": job.wid,
        "url": url,
        "type": info["type"],
        "media_id": info["media_id"],
        "seq": info["seq"],
        "attempts": attempts,
        "last": last,
        "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    return json.dumps(record, separators=(",", ":"))


class Sender:
    """An HTTPS client that follows no redirect, uses no proxy and signs with every secret."""

    def __init__(self, settings: WebhookSettings, connections: int = 64) -> None:
        # Built here so a malformed secret or CA file fails at start, not at the first event.
        self._signers = [Webhook(secret) for secret in settings.secret_list]
        if not self._signers:
            raise ValueError("webhooks need at least one whsec_ secret")
        self._ssl = ssl.create_default_context()
        if settings.ca_file is not None:
            self._ssl.load_verify_locations(cafile=str(settings.ca_file))
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Sender:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self._connections),
            timeout=self._timeout,
            trust_env=False,  # never a proxy from the environment
            cookie_jar=aiohttp.DummyCookieJar(),  # a receiver's cookies go nowhere
            headers={"User-Agent": USER_AGENT},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    def headers(self, wid: str, body: str) -> dict[str, str]:
        stamp = datetime.now(UTC)  # per try: receivers refuse a timestamp older than minutes
        signatures = " ".join(signer.sign(wid, stamp, body) for signer in self._signers)
        return {
            "Content-Type": "application/json",
            "webhook-id": wid,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": signatures,
        }

    async def send(self, endpoint: Endpoint, wid: str, body: str) -> Outcome:
        """One try; 2xx is success, anything else (a 3xx too) or any error is a failure."""
        assert self._session is not None, "use Sender as an async context manager"
        try:
            async with self._session.post(
                endpoint.url,
                data=body.encode(),
                headers=self.headers(wid, body),
                allow_redirects=False,
            ) as response:
                return Outcome(200 <= response.status < 300, str(response.status))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Outcome(False, type(exc).__name__)
