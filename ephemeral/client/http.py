"""What both clients share: one aiohttp session (owned or lent), JSON calls, typed errors."""

from __future__ import annotations

import json as jsonlib
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from ephemeral.client.errors import ClientError, ConnectionFailed, raise_for_problem

# Plain API calls answer quickly; uploads, content and event streams set their own timeouts.
CALL_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10)
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=90)
USER_AGENT = "ephemeral-client/1"


class HttpBase:
    def __init__(self, session: aiohttp.ClientSession | None = None) -> None:
        self._lent = session
        self._own: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._lent is not None:
            return self._lent
        if self._own is None:
            self._own = aiohttp.ClientSession(
                timeout=CALL_TIMEOUT, headers={"User-Agent": USER_AGENT}
            )
        return self._own

    async def close(self) -> None:
        """Close the session if this client opened it (a lent session stays open)."""
        if self._own is not None:
            await self._own.close()
            self._own = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def call(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One JSON request; the status and the body (empty for a 204), or a typed error."""
        try:
            async with self.session.request(
                method, url, headers=headers, json=json, params=params
            ) as response:
                await raise_for_problem(response)
                text = "" if response.status == 204 else await response.text()
                body = _json(text) if text else {}
                return response.status, body if isinstance(body, dict) else {}
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            # The type only: aiohttp's message carries the full URL, and with it a view id.
            raise ConnectionFailed(f"no answer from {_origin(url)} ({type(exc).__name__})") from exc


def _json(text: str) -> Any:
    try:
        return jsonlib.loads(text)
    except ValueError as exc:
        raise ClientError("the service answered with something that is not JSON") from exc


def _origin(url: str) -> str:
    """Only scheme, host and port: paths may hold a view id, which is never printed."""
    parsed = URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}" if parsed.host else "the service"
