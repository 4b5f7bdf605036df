"""Keep the next item of an async stream in production while the caller uses this one."""

from __future__ import annotations

import asyncio
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
        cancelled = await _settle(pending)
        if hasattr(source, "aclose"):
            await source.aclose()
        if cancelled:  # the caller was cancelled while the read in flight was stopping
            raise asyncio.CancelledError


async def _settle(pending: asyncio.Future[T]) -> bool:
    """Stop the read in flight and wait until it has: the source cannot be closed while it
    runs. Its outcome is dropped (and marked retrieved, so never reported as unhandled); a
    cancellation of the caller that arrives meanwhile is returned, to be passed on after."""
    pending.cancel()
    cancelled = False
    while not pending.done():
        try:
            await asyncio.wait([pending])
        except asyncio.CancelledError:
            cancelled = True
    if not pending.cancelled():
        pending.exception()
    return cancelled
