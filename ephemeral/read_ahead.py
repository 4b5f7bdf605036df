"""Keep the next item of an async stream in production while the caller uses this one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def read_ahead(source: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """Yield `source`'s items with the next one already on its way.

    A view's next chunk is read and decrypted (in threads) while the socket takes the current
    one, so delivery runs at the slower of the two stages instead of their sum. One item is
    ahead at most, so memory stays one chunk higher whatever the object's size."""
    pending: asyncio.Future[T] = asyncio.ensure_future(anext(source))
    try:
        while True:
            try:
                item = await pending
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(source))
            yield item
    finally:
        if not pending.done():
            pending.cancel()
        with contextlib.suppress(BaseException):
            # Retrieved so a cancelled or failed read-ahead is never reported as unhandled.
            await pending
        if hasattr(source, "aclose"):
            await source.aclose()
