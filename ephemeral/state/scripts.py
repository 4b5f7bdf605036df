"""Loads the Lua scripts (each prefixed with the shared helpers) and runs them by name."""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

NAMES = (
    "create",
    "peek",
    "redeem",
    "lease_open",
    "lease_touch",
    "lease_end",
    "evaluate",
    "unsend",
    "revoke",
    "mark_ready",
    "mark_failed",
    "purge_begin",
    "purge_finish",
    "live_set",
    "preview",
    "lease_note",
    "unmark",
    "relayed",
    "remark",
    "erase_recipient",
    "erase_media",
    "idem_claim",
    "idem_complete",
    "idem_release",
    "idem_tombstone",
    "idem_link",
    "upload_claim",
    "upload_commit",
    "index_keep",
)


def source(name: str) -> str:
    lua = resources.files("ephemeral.state") / "lua"
    return (lua / "_prelude.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class Scripts:
    """EVALSHA with a transparent reload (redis-py's Script) for every script in NAMES."""

    def __init__(self, redis: Redis) -> None:
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(source(name)) for name in NAMES
        }

    async def run(self, name: str, keys: list[str], args: list[Any]) -> list[str]:
        result = await self._scripts[name](keys=keys, args=args)
        return list(result) if isinstance(result, list) else [result]

    async def queue(self, pipe: Pipeline, name: str, keys: list[str], args: list[Any]) -> None:
        """Add a call to a pipeline; its execute() loads the script first if Redis lacks it."""
        await self._scripts[name](keys=keys, args=args, client=pipe)
