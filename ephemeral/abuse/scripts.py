"""The abuse controls' own Lua scripts, run by name (redis-py's Script reloads on NOSCRIPT)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

NAMES = ("quota_admit", "quota_release", "fanout")


class AbuseScripts:
    def __init__(self, redis: Redis) -> None:
        lua = resources.files("ephemeral.abuse") / "lua"
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script((lua / f"{name}.lua").read_text()) for name in NAMES
        }

    async def run(self, name: str, keys: list[str], args: list[Any]) -> list[str]:
        result = await self._scripts[name](keys=keys, args=args)
        return [str(item) for item in result]
