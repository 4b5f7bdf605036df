"""redis-py types its asyncio replies as `Awaitable[T] | T`; these narrow them in one place."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

from redis.asyncio import Redis


async def hgetall(redis: Redis, key: str) -> dict[str, str]:
    return await cast(Awaitable[dict[str, str]], redis.hgetall(key))


async def hget(redis: Redis, key: str, field: str) -> str | None:
    return await cast(Awaitable[str | None], redis.hget(key, field))


async def hmget(redis: Redis, key: str, fields: list[str]) -> list[str | None]:
    return await cast(Awaitable[list[str | None]], redis.hmget(key, fields))


async def hset(redis: Redis, key: str, field: str, value: str) -> int:
    return await cast(Awaitable[int], redis.hset(key, field, value))


async def hdel(redis: Redis, key: str, field: str) -> int:
    return await cast(Awaitable[int], redis.hdel(key, field))


async def smembers(redis: Redis, key: str) -> set[str]:
    return await cast(Awaitable[set[str]], redis.smembers(key))


async def sadd(redis: Redis, key: str, member: str) -> int:
    return await cast(Awaitable[int], redis.sadd(key, member))


async def srem(redis: Redis, key: str, member: str) -> int:
    return await cast(Awaitable[int], redis.srem(key, member))


async def lrange(redis: Redis, key: str, start: int, end: int) -> list[str]:
    return await cast(Awaitable[list[str]], redis.lrange(key, start, end))


async def command(redis: Redis, *args: Any) -> Any:
    return await redis.execute_command(*args)  # type: ignore[no-untyped-call]
