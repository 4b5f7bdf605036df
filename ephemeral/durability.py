"""A 201 for a redemption goes out only once it is durable; check the server can promise it."""

from __future__ import annotations

from redis.asyncio import Redis

from ephemeral.config import ConfigError
from ephemeral.state import typed


async def check_durability(redis: Redis, mode: str) -> None:
    if mode == "attested":
        return  # the operator vouches for a managed Redis that denies CONFIG
    config = await redis.config_get("append*")
    if mode == "fsync":
        if config.get("appendonly") != "yes" or config.get("appendfsync") != "always":
            raise ConfigError(
                "setting redis.durability: fsync needs the Redis server to run with "
                "'appendonly yes' and 'appendfsync always' (found appendonly="
                f"{config.get('appendonly')}, appendfsync={config.get('appendfsync')}); "
                "set redis.durability=attested only if the operator guarantees it"
            )
    elif mode == "waitaof":
        info = await redis.info("server")
        major, minor = (int(x) for x in str(info["redis_version"]).split(".")[:2])
        if (major, minor) < (7, 2):
            raise ConfigError("setting redis.durability: waitaof needs Redis >= 7.2")


async def confirm(redis: Redis, mode: str) -> bool:
    """After a redemption: WAITAOF where replicated; with appendfsync always the reply to the
    script itself already came after the fsync."""
    if mode != "waitaof":
        return True
    local, replicas = await typed.command(redis, "WAITAOF", 1, 1, 1000)
    return int(local) >= 1 and int(replicas) >= 1
