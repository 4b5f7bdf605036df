"""The one-step create body: `meta` first, `file` last, the file streamed in chunks.

The file is never read whole: an async iterable payload reads one chunk at a time off the event
loop and reports progress after aiohttp has handed each chunk to the transport. Its size is
declared, so the request carries a Content-Length and the service can refuse an oversized file
from the headers alone (with `Expect: 100-continue`, before a byte of it is sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import IO, Any

from aiohttp import MultipartWriter
from aiohttp.payload import AsyncIterablePayload, JsonPayload

CHUNK = 256 * 1024

Progress = Callable[[int, int], None]
"""Called as progress(bytes_sent, total) after each chunk; the last call has sent == total."""


class FilePayload(AsyncIterablePayload):
    """A file read chunk by chunk, with a known size and a progress callback."""

    def __init__(self, path: Path, progress: Progress | None, **kwargs: Any) -> None:
        self._path = path
        self._total = path.stat().st_size
        self._progress = progress
        self._handle: IO[bytes] | None = None
        self._source = self._chunks()
        super().__init__(self._source, **kwargs)

    @property
    def size(self) -> int:
        return self._total

    async def _chunks(self) -> AsyncGenerator[bytes, None]:
        # Opened here, not in a thread: a writer cancelled while a threaded open was in flight
        # (the service refused from the first bytes) lost the handle, left to the collector.
        handle: IO[bytes] = open(self._path, "rb")  # noqa: ASYNC230 - a local file, at once
        self._handle = handle
        sent = 0
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                if sent + len(chunk) > self._total:
                    raise OSError(f"{self._path} grew while it was being sent")
                yield chunk
                sent += len(chunk)  # the writer has taken the chunk when the generator resumes
                if self._progress is not None:
                    self._progress(sent, self._total)
        finally:
            handle.close()  # a local read-only file: closing cannot block
        if sent != self._total:
            raise OSError(f"{self._path} shrank while it was being sent")
        if self._total == 0 and self._progress is not None:
            self._progress(0, 0)

    async def release(self) -> None:
        """Close the file when the service answered before reading all of it (a 4xx from the
        first bytes): the half-read generator would otherwise keep it open until collected."""
        with contextlib.suppress(RuntimeError):  # still being iterated by a writer: it closes
            await self._source.aclose()
        if self._handle is not None:
            self._handle.close()


def create_body(
    meta: dict[str, Any], path: Path, progress: Progress | None
) -> tuple[MultipartWriter, FilePayload]:
    form = MultipartWriter("form-data")
    meta_part = JsonPayload(meta, dumps=json.dumps)
    meta_part.set_content_disposition("form-data", name="meta")
    form.append_payload(meta_part)
    # The service decides the kind from the bytes, never from the name or this type.
    file_part = FilePayload(path, progress, content_type="application/octet-stream")
    # The local file name is the user's business, not the service's: it is not sent.
    file_part.set_content_disposition("form-data", name="file", filename="upload")
    form.append_payload(file_part)
    return form, file_part
