"""The Redis memory alarm: above a threshold, uploads are shed before anything else fails.

With `maxmemory-policy noeviction` a full Redis refuses writes, and a refused redemption or
purge hurts far more than a refused upload. So uploads stop first, while views, status and
purges (which free memory) go on.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from ephemeral.config import RateLimitSettings


class MemoryAlarm:
    def __init__(self, redis: Redis, settings: RateLimitSettings) -> None:
        self.redis = redis
        self.fraction = settings.memory_alarm_fraction
        self.absolute = settings.memory_alarm_bytes
        self.interval = settings.memory_check_interval
        self._checked = float("-inf")
        self._raised = False

    async def raised(self) -> bool:
        """One INFO per interval per process, however many uploads arrive."""
        now = time.monotonic()
        if now - self._checked >= self.interval:
            info = await self.redis.info("memory")
            used, maxmemory = int(info["used_memory"]), int(info.get("maxmemory", 0))
            self._raised = over(used, maxmemory, self.fraction, self.absolute)
            self._checked = now
        return self._raised


def over(used: int, maxmemory: int, fraction: float, absolute: int) -> bool:
    """Past the absolute threshold (if set), or past the fraction of maxmemory (if set)."""
    if absolute and used >= absolute:
        return True
    return maxmemory > 0 and used >= fraction * maxmemory
