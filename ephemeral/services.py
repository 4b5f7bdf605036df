"""The service graph, built once per process from Settings and torn down in reverse."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from arq.connections import ArqRedis
from redis.asyncio import Redis

from ephemeral.abuse.content import load_pepper as load_content_pepper
from ephemeral.abuse.guard import Abuse
from ephemeral.auth import Authenticator, load_key
from ephemeral.config import Settings
from ephemeral.crypto.ems1 import READ_CHUNK
from ephemeral.crypto.keyring import Keyring
from ephemeral.durability import check_durability
from ephemeral.idempotency import Idempotency
from ephemeral.idempotency import load_pepper as load_idempotency_pepper
from ephemeral.jobs import Jobs, arq_pool
from ephemeral.lifecycle import Lifecycle
from ephemeral.state.idempotency import IdempotencyRecords
from ephemeral.state.keys import Keys
from ephemeral.state.media import MediaRepo
from ephemeral.state.scripts import Scripts
from ephemeral.state.views import ViewRepo
from ephemeral.vault import Vault
from storage.base import Store


@dataclass
class Services:
    settings: Settings
    redis: Redis
    keys: Keys
    scripts: Scripts
    media: MediaRepo
    views: ViewRepo
    vault: Vault
    store: Store
    lifecycle: Lifecycle
    keyring: Keyring
    auth: Authenticator
    jobs: Jobs
    arq: ArqRedis
    idempotency: Idempotency
    abuse: Abuse


async def open_store(settings: Settings) -> Store:
    if settings.storage.backend == "s3":
        from storage.s3 import S3Store

        s = settings.storage
        return await S3Store.open(
            bucket=s.s3_bucket,
            endpoint_url=s.s3_endpoint_url,
            region=s.s3_region,
            access_key=s.s3_access_key,
            secret_key=s.s3_secret_key,
            prefix=s.s3_prefix,
            max_workers=s.s3_max_workers,
            allow_unsafe_bucket=s.s3_allow_unsafe_bucket,
            chunk_size=READ_CHUNK,
        )
    from storage.fs import FsStore

    return FsStore(settings.blob_root, chunk_size=READ_CHUNK)


@contextlib.asynccontextmanager
async def open_services(settings: Settings, *, embedded: bool = False) -> AsyncIterator[Services]:
    url = settings.redis.url
    if not url:
        raise RuntimeError("redis.url must be set (the CLI starts the embedded server)")
    jwt_key = load_key(settings, generate=embedded)  # before connecting: fail fast on config
    idempotency_pepper = load_idempotency_pepper(settings)
    content_pepper = load_content_pepper(settings)
    redis = Redis.from_url(url, decode_responses=True, health_check_interval=30)
    arq = arq_pool(url, Keys(settings.redis.prefix).queue())
    store: Store | None = None
    try:
        await check_durability(redis, settings.redis.durability)
        store = await open_store(settings)
        keys = Keys(settings.redis.prefix)
        scripts = Scripts(redis)
        media = MediaRepo(redis, scripts, keys, settings.lease_max_bound, settings.receipts_ttl)
        jobs = Jobs(arq, keys.queue())
        requeue_ms = settings.worker.requeue_ms
        yield Services(
            settings=settings,
            redis=redis,
            keys=keys,
            scripts=scripts,
            media=media,
            views=ViewRepo(redis, scripts, keys, media, settings.lease),
            vault=Vault(store),
            store=store,
            lifecycle=Lifecycle(media, store, jobs, settings.receipts_ttl, requeue_ms),
            keyring=Keyring(settings.keyring_path, settings.worker.keyring_retention),
            auth=Authenticator(settings, jwt_key),
            jobs=jobs,
            arq=arq,
            idempotency=Idempotency(
                IdempotencyRecords(redis, scripts, keys),
                media,
                idempotency_pepper,
                settings.idempotency.ttl,
                settings.limits.upload_deadline + 60,
            ),
            abuse=Abuse(redis, keys, settings, content_pepper),
        )
    finally:
        if store is not None:
            await store.close()
        await arq.aclose()
        await redis.aclose()
