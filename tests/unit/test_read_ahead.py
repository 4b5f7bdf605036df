"""read_ahead: the next item is produced while the caller holds this one; order, errors and an
early close behave as if the source were read directly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import pytest

from ephemeral.read_ahead import read_ahead


class Source:
    """An async source that records when each item was produced and whether it was closed."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.produced: list[int] = []
        self.closed = False

    async def items(self) -> AsyncGenerator[int, None]:
        try:
            for index in range(self.count):
                await asyncio.sleep(0.01)
                if index == self.fail_at:
                    raise ValueError(f"item {index} is bad")
                self.produced.append(index)
                yield index
        finally:
            self.closed = True


async def test_items_come_in_order_with_the_next_already_produced() -> None:
    source = Source(5)
    seen: list[tuple[int, list[int]]] = []
    async for item in read_ahead(source.items()):
        await asyncio.sleep(0.05)  # the caller's work: the next item is made meanwhile
        seen.append((item, list(source.produced)))
    assert [item for item, _ in seen] == [0, 1, 2, 3, 4]
    # While the caller held item n, item n + 1 had been produced too (never more than one).
    assert all(produced == list(range(min(item + 2, 5))) for item, produced in seen)
    assert source.closed


async def test_an_error_of_the_source_reaches_the_caller_at_its_place() -> None:
    source = Source(5, fail_at=2)
    got: list[int] = []
    with pytest.raises(ValueError, match="item 2"):
        async for item in read_ahead(source.items()):
            got.append(item)
    assert got == [0, 1] and source.closed


async def test_closing_early_stops_the_read_in_flight_and_closes_the_source() -> None:
    source = Source(100)
    async with contextlib.aclosing(read_ahead(source.items())) as items:
        assert await anext(items) == 0
    assert source.closed
    await asyncio.sleep(0.05)
    assert source.produced in ([0], [0, 1])  # nothing after the close


async def test_a_cancelled_caller_leaves_no_task_behind() -> None:
    source = Source(100)

    async def consume() -> None:
        async for _ in read_ahead(source.items()):
            await asyncio.sleep(10)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)
    assert source.closed
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
