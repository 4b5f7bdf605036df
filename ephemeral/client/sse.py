"""A Server-Sent Events reader over an aiohttp response (the WHATWG event-stream format).

Written here rather than taken from aiohttp-sse-client: that package has had no release since
2021 and owns its reconnect loop, while `Client.watch` must reconnect with a fresh credential
and `Last-Event-ID`. The format itself is a dozen lines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import aiohttp

MAX_EVENT = 4 * 1024 * 1024  # a snapshot of a large group is big, but never this big


@dataclasses.dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None


class SSEParser:
    """Feed it bytes, take complete events; comments (heartbeats) and `retry:` are dropped."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        self._buffer += chunk
        events: list[ServerSentEvent] = []
        while True:
            line, sep, rest = self._buffer.partition(b"\n")
            if not sep:
                if len(self._buffer) > MAX_EVENT:
                    raise ValueError("an event-stream line is larger than the client accepts")
                return events
            self._buffer = rest
            event = self._line(line.rstrip(b"\r").decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._data and not self._event:
                return None
            event = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\x00" not in value:
            self._id = value  # the id persists across events, as in the spec
        return None


async def read_events(response: aiohttp.ClientResponse) -> AsyncIterator[ServerSentEvent]:
    parser = SSEParser()
    async for chunk in response.content.iter_any():
        for event in parser.feed(chunk):
            yield event
