"""Job names and deterministic job ids; the API's side of the queue (enqueue only)."""

from __future__ import annotations

import json
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

NORMALISE = "normalise"
PURGE = "purge"


def serialize(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def deserialize(data: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(data)
    return loaded


def arq_pool(url: str, queue: str) -> ArqRedis:
    """An arq client with the JSON serialiser: job arguments are ids, never pickles."""
    return ArqRedis(
        ConnectionPool.from_url(url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=queue,
    )


class Jobs:
    """Arguments are ids only; a job id per (kind, media) makes enqueueing idempotent."""

    def __init__(self, pool: ArqRedis, queue: str) -> None:
        self.pool = pool
        self.queue = queue

    async def normalise(self, media_id: str) -> None:
        await self.pool.enqueue_job(
            NORMALISE, media_id, _job_id=f"{NORMALISE}:{media_id}", _queue_name=self.queue
        )

    async def purge(self, media_id: str) -> None:
        await self.pool.enqueue_job(
            PURGE, media_id, _job_id=f"{PURGE}:{media_id}", _queue_name=self.queue
        )
