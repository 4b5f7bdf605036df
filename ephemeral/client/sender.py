"""The sender's client: send, status, watch, unsend, revoke (docs/API.md, sender routes)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from ephemeral.client.errors import (
    Conflict,
    ConnectionFailed,
    ProblemError,
    Unavailable,
    raise_for_problem,
)
from ephemeral.client.http import STREAM_TIMEOUT, HttpBase
from ephemeral.client.models import Event, MediaStatus, MemberStatus, SentMedia, parse_time
from ephemeral.client.sse import read_events
from ephemeral.client.upload import Progress, create_body

TokenSource = str | Callable[[], str]
"""A sender JWT, or a function returning a fresh one (long watches outlive a token's `exp`)."""

UPLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=120)
SEND_RETRY_PAUSE = 1.0  # seconds, doubled per try, when the service names no Retry-After
WAITING = frozenset({"awaiting_upload", "processing"})
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # then give up: the caller decides what to do


def _seconds(value: int | float | timedelta | None) -> int | None:
    if value is None:
        return None
    return int(value.total_seconds()) if isinstance(value, timedelta) else int(value)


class Client(HttpBase):
    """A sender (or backend) talking to one ephemeral service.

    ```
    async with Client("https://eph.example", token) as client:
        sent = await client.send("photo.jpg", to=["bob", "carol"], progress=print)
        status = await client.status(sent.id)
    ```
    """

    def __init__(
        self, server: str, token: TokenSource, *, session: aiohttp.ClientSession | None = None
    ) -> None:
        super().__init__(session)
        self.server = server.rstrip("/")
        self._token = token

    def _auth(self) -> dict[str, str]:
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"}

    async def send(
        self,
        path: str | Path,
        to: Sequence[str],
        *,
        views: int = 1,
        expires_in: int | timedelta | None = None,
        replay_window: int | timedelta | None = None,
        caption: str | None = None,
        capture: str | None = None,
        recipient_auth: str | None = None,
        client_ref: str | None = None,
        idempotency_key: str | None = None,
        progress: Progress | None = None,
        retries: int = 2,
    ) -> SentMedia:
        """Upload one photo, video or voice note for `to`; returns every recipient's link.

        The file is streamed; `progress(sent, total)` is called as it goes (from 0 again if the
        upload is retried). Every try carries the same Idempotency-Key (a new UUID unless
        given), so a lost answer, a 503 or a concurrent twin (`409 idempotency-key-in-flight`)
        is retried up to `retries` times without creating the media twice. To retry later
        yourself, call again with the same `idempotency_key`.
        """
        meta: dict[str, Any] = {"recipients": list(to), "views": views}
        optional = {
            "expires_in": _seconds(expires_in),
            "replay_window": _seconds(replay_window),
            "caption": caption,
            "capture": capture,
            "recipient_auth": recipient_auth,
            "client_ref": client_ref,
        }
        meta.update({k: v for k, v in optional.items() if v is not None})
        key = idempotency_key or str(uuid.uuid4())
        attempt = 0
        while True:
            try:
                return await self._create(meta, Path(path), key, progress)
            except (ConnectionFailed, Unavailable, Conflict) as exc:
                # Safe only because every try carries the same key: the service either has
                # the first answer stored (and replays it) or has released the key.
                in_flight = isinstance(exc, Conflict) and exc.code == "idempotency-key-in-flight"
                if attempt >= retries or (isinstance(exc, Conflict) and not in_flight):
                    raise
                pause = getattr(exc, "retry_after", None) or SEND_RETRY_PAUSE * 2**attempt
                await asyncio.sleep(min(pause, 30.0))
                attempt += 1

    async def _create(
        self, meta: dict[str, Any], path: Path, key: str, progress: Progress | None
    ) -> SentMedia:
        headers = {**self._auth(), "Idempotency-Key": key}
        body, file_part = create_body(meta, path, progress)
        try:
            async with self.session.post(
                f"{self.server}/v1/media",
                data=body,
                headers=headers,
                expect100=True,  # a refusal from the headers costs no upload
                timeout=UPLOAD_TIMEOUT,
            ) as response:
                await raise_for_problem(response)
                replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
                return SentMedia.from_json(await response.json(), replayed=replayed)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise ConnectionFailed(
                f"the upload to {self.server} failed ({type(exc).__name__})"
            ) from exc
        finally:
            await file_part.release()

    async def status(self, media_id: str) -> MediaStatus:
        """State, counts and the first page (100) of members; see `members` for the rest."""
        _, body = await self.call("GET", self._media(media_id), headers=self._auth())
        return MediaStatus.from_json(body)

    async def wait_ready(self, media_id: str) -> MediaStatus:
        """Poll until processing is over: the status, `ready` or `failed` (see `error`).

        Processing has its own deadline on the service (never stuck in `processing`); bound
        the wait here with `asyncio.timeout` if it should be shorter.
        """
        delay = 0.1
        while (status := await self.status(media_id)).state in WAITING:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)
        return status

    async def members(self, media_id: str) -> AsyncGenerator[MemberStatus, None]:
        """Every member of a group, page by page."""
        cursor: str | None = None
        while True:
            params = {"cursor": cursor} if cursor else None
            _, body = await self.call(
                "GET", f"{self._media(media_id)}/recipients", headers=self._auth(), params=params
            )
            for row in MediaStatus.from_json({"id": media_id, "state": "", **body}).recipients:
                yield row
            cursor = body.get("next_cursor")
            if not cursor:
                return

    async def list_media(self, page: int = 50) -> AsyncGenerator[MediaStatus, None]:
        """The sender's own media, newest first (without members: see `status`)."""
        cursor: str | None = None
        while True:
            params = {"limit": str(page), **({"cursor": cursor} if cursor else {})}
            _, body = await self.call(
                "GET", f"{self.server}/v1/media", headers=self._auth(), params=params
            )
            for item in body.get("media") or ():
                yield MediaStatus.from_json(item)
            cursor = body.get("next_cursor")
            if not cursor:
                return

    async def unsend(self, media_id: str) -> None:
        """Revoke every link with views left, cut live views, purge now. Repeatable."""
        await self.call("DELETE", self._media(media_id), headers=self._auth())

    async def revoke(self, media_id: str, recipient_id: str) -> None:
        """Remove one member from the group: their link stops working, their view is cut."""
        url = f"{self._media(media_id)}/recipients/{recipient_id}"
        await self.call("DELETE", url, headers=self._auth())

    async def watch(
        self, media_id: str | None = None, *, last_event_id: str | None = None
    ) -> AsyncGenerator[Event, None]:
        """Events as they happen, in order, for one media (or all of the sender's).

        With a `media_id` the first event is a `snapshot` carrying the full status. A dropped
        connection (or the service closing the stream at the token's `exp`) is resumed with
        `Last-Event-ID`, so nothing is lost within the service's retention window; the resumed
        stream starts with a fresh snapshot. Gives up after a few failed reconnects in a row.
        """
        params = {"media_id": media_id} if media_id else None
        failures = 0
        while True:
            headers = self._auth()
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                async with self.session.get(
                    f"{self.server}/v1/events",
                    params=params,
                    headers=headers,
                    timeout=STREAM_TIMEOUT,
                ) as response:
                    await raise_for_problem(response)
                    async for sse in read_events(response):
                        failures = 0
                        if sse.id:
                            last_event_id = sse.id
                        yield _event(sse.event, sse.data, sse.id)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError):
                pass  # reconnect below
            except ProblemError as exc:
                if exc.status not in (429, 503) or failures >= len(RECONNECT_DELAYS):
                    raise
            if failures >= len(RECONNECT_DELAYS):
                raise ConnectionFailed(f"the event stream of {self.server} keeps failing")
            await asyncio.sleep(RECONNECT_DELAYS[failures])
            failures += 1

    def _media(self, media_id: str) -> str:
        return f"{self.server}/v1/media/{media_id}"


def _event(name: str, data: str, event_id: str | None) -> Event:
    body: Any = json.loads(data) if data else {}
    if not isinstance(body, dict):
        body = {}
    if name == "snapshot":
        return Event(id=None, type="snapshot", snapshot=MediaStatus.from_json(body))
    payload = body.get("data")
    return Event(
        id=event_id,
        type=str(body.get("type") or name),
        timestamp=parse_time(body.get("timestamp")),
        data=payload if isinstance(payload, dict) else {},
    )
