"""The recipient's client: peek at a link, redeem one view, stream it, end the lease."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from ephemeral.client.errors import (
    ClientError,
    Conflict,
    ConnectionFailed,
    Gone,
    NotFound,
    Unavailable,
    raise_for_problem,
)
from ephemeral.client.http import STREAM_TIMEOUT, HttpBase
from ephemeral.client.models import Peek, View

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$")
REDEEM_RETRIES = (0.5, 1.0, 2.0)  # pauses between tries of a redeem (same redeem_id) or a GET
CHUNK = 64 * 1024


def parse_link(link: str, server: str | None = None) -> tuple[str, str]:
    """(viewer base URL, token) from `{viewer}/v/<lookup>#<secret>` or a bare token.

    The token is never put in an exception message: a link is a bearer credential.
    """
    link = link.strip()
    if TOKEN_RE.match(link):
        if not server:
            raise ClientError("a bare token needs the server's URL; or pass the whole link")
        return server.rstrip("/"), link
    url = URL(link)
    base, marker, lookup = url.path.rpartition("/v/")
    token = f"{lookup}.{url.fragment}"
    if not marker or not url.host or not TOKEN_RE.match(token):
        raise ClientError("not an ephemeral link (…/v/<lookup>#<secret>) or token")
    origin = str(url.origin())
    return origin + base.rstrip("/"), token


class RecipientClient(HttpBase):
    """A recipient's side of the service. `jwt` is for media sent with `recipient_auth: account`;
    `device` is a label the sender's backend sees in `recipient.opened`."""

    def __init__(
        self,
        server: str | None = None,
        *,
        jwt: str | None = None,
        device: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(session)
        self.server = server
        self.device = device
        self._jwt = jwt

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._jwt}"} if self._jwt else {}

    async def peek(self, link: str) -> Peek:
        """What the link holds and whether it can be opened; consumes nothing."""
        return await self.peek_token(*parse_link(link, self.server))

    async def peek_token(self, base: str, token: str) -> Peek:
        _, body = await self.call(
            "POST", f"{base}/v1/views/peek", json={"token": token}, headers=self._headers()
        )
        return Peek.from_json(body)

    def open(self, link: str, *, wait_processing: float = 0.0) -> ViewReader:
        """Peek, redeem one view and stream it: `async with client.open(link) as view: ...`.

        This consumes a view (the only call here that does). The lease is ended when the
        block exits. With `wait_processing`, a media still processing is waited for that many
        seconds (nothing is consumed while it processes).
        """
        base, token = parse_link(link, self.server)
        return ViewReader(self, base, token, wait_processing)

    async def redeem(self, base: str, token: str, redeem_id: str, wait: float) -> View:
        body: dict[str, Any] = {"token": token, "redeem_id": redeem_id}
        if self.device:
            body["device"] = self.device
        deadline = time.monotonic() + wait
        attempt = 0
        while True:
            try:
                _, answer = await self.call(
                    "POST", f"{base}/v1/views", json=body, headers=self._headers()
                )
                return View.from_json(answer)
            except Conflict as exc:
                if exc.code != "media-processing" or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(min(exc.retry_after or 1.0, 2.0))
            except (ConnectionFailed, Unavailable):
                # The same redeem_id makes the retry safe: a redemption that happened answers
                # again with the same view (200) instead of consuming another.
                if attempt >= len(REDEEM_RETRIES):
                    raise
                await asyncio.sleep(REDEEM_RETRIES[attempt])
                attempt += 1


class ViewReader:
    """One redeemed view: `info` says what it is; iterate `chunks()` or `read()` the bytes."""

    def __init__(self, client: RecipientClient, base: str, token: str, wait: float) -> None:
        self._client = client
        self._base = base
        self._token = token
        self._wait = wait
        self._response: aiohttp.ClientResponse | None = None
        self._info: View | None = None
        self._ended = False
        self.peeked: Peek | None = None

    @property
    def info(self) -> View:
        if self._info is None:
            raise ClientError("the view is not open: use `async with client.open(link)`")
        return self._info

    def _lease_url(self, suffix: str = "") -> str:
        content = self.info.content_url
        return content.removesuffix("/content") + suffix

    def _lease_auth(self) -> dict[str, str]:
        return {"Authorization": f"Lease {self.info.lease}"}

    async def __aenter__(self) -> ViewReader:
        # Peek first, as the viewer page does: it marks the link delivered, and a link that
        # cannot be opened is refused by a call that consumes nothing.
        self.peeked = await self._client.peek_token(self._base, self._token)
        redeem_id = secrets.token_urlsafe(16)  # 128 random bits, 22 characters
        self._info = await self._client.redeem(self._base, self._token, redeem_id, self._wait)
        try:
            self._response = await self._fetch()
        except BaseException:
            await self.close()
            raise
        return self

    async def _fetch(self) -> aiohttp.ClientResponse:
        """GET the content; a broken connection is retried within the lease, which stays live
        (the view was counted at redeem, so giving up early would waste it)."""
        attempt = 0
        while True:
            try:
                response = await self._client.session.get(
                    self.info.content_url, headers=self._lease_auth(), timeout=STREAM_TIMEOUT
                )
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if attempt >= len(REDEEM_RETRIES):
                    # Named by type only: the URL holds the view id.
                    name = type(exc).__name__
                    raise ConnectionFailed(f"the content could not be fetched ({name})") from exc
                await asyncio.sleep(REDEEM_RETRIES[attempt])
                attempt += 1
                continue
            try:
                await raise_for_problem(response)
            except BaseException:
                response.close()
                raise
            return response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def chunks(self, size: int = CHUNK) -> AsyncIterator[bytes]:
        if self._response is None:
            raise ClientError("the view is not open")
        try:
            async for chunk in self._response.content.iter_chunked(size):
                yield chunk
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            # Unsend, revoke or the lease's end cut the stream mid-way.
            raise ClientError("the content stream was cut before its end") from exc

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def keepalive(self) -> None:
        """Keep an idle lease alive (a paused video): the service ends it after `lease_idle`."""
        await self._client.call("POST", self._lease_url("/keepalive"), headers=self._lease_auth())

    async def screenshot(self, kind: str = "screenshot") -> None:
        """Tell the sender a screenshot (or a `recording`) was taken."""
        await self._client.call(
            "POST", self._lease_url("/screenshot"), json={"kind": kind}, headers=self._lease_auth()
        )

    async def report(self, reason: str = "") -> None:
        """Report abuse to the sender's messaging app (never to the sender)."""
        body = {"reason": reason} if reason else {}
        await self._client.call(
            "POST", self._lease_url("/report"), json=body, headers=self._lease_auth()
        )

    async def close(self) -> None:
        """Stop reading and end the lease now; an already-ended lease is fine."""
        if self._response is not None:
            self._response.close()  # an unread rest is dropped with its connection
            self._response = None
        if self._info is None or self._ended:
            return
        self._ended = True
        try:
            await self._client.call("DELETE", self._lease_url(), headers=self._lease_auth())
        except (Gone, NotFound):
            pass
        except ClientError:
            pass  # the lease still ends by itself after lease_idle; closing must not raise
