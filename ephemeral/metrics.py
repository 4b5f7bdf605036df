"""Every Prometheus metric of the service, and the scrape.

Labels come only from small fixed sets (route template, method, status, problem code, kind,
backend, operation, outcome): never a token, lookup, view id, lease or media id. In
`ephemeral serve` and `ephemeral worker` the values live in prometheus-client's multiprocess
files (see metrics_dir.py), so one scrape of any process on a host counts every process there;
without that directory (tests running the app in process) they live in the default registry.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from redis.asyncio import Redis

from ephemeral.state.keys import LIVE_SHARDS, Keys

KINDS = frozenset({"image", "video", "audio"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "ephemeral_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "ephemeral_http_request_duration_seconds",
    "Time from the request's arrival to the last byte of its answer.",
    ["route", "method"],
)
ERRORS = Counter(
    "ephemeral_http_errors_total",
    "4xx and 5xx answers, by status and problem code.",
    ["status", "code"],
)
UPLOADS = Counter(
    "ephemeral_uploads_total",
    "Uploads accepted (stored encrypted and queued for processing), by kind.",
    ["kind"],
)
VIEWS = Counter(
    "ephemeral_views_total",
    "Views redeemed (201; a retried redeem of a live lease is not a new view), by kind.",
    ["kind"],
)
BYTES_IN = Counter(
    "ephemeral_upload_bytes_total",
    "Media bytes received in accepted uploads, by kind.",
    ["kind"],
)
BYTES_OUT = Counter(
    "ephemeral_content_bytes_total",
    "Decrypted content bytes sent to viewers, by kind.",
    ["kind"],
)
PROCESSING_SECONDS = Histogram(
    "ephemeral_processing_seconds",
    "Time to normalise one upload in a worker, by kind and outcome.",
    ["kind", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
PURGE_LAG_SECONDS = Histogram(
    "ephemeral_purge_lag_seconds",
    "From the moment a media's purge condition held (last lease end, expiry, failure, "
    "unsend) to the confirmed deletion of its blobs.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
STORAGE_ERRORS = Counter(
    "ephemeral_storage_errors_total",
    "Storage calls that failed (a missing object is not counted), by backend and operation.",
    ["backend", "op"],
)


def kind_label(kind: str) -> str:
    """A media kind, or `other`: the label set stays fixed whatever a record holds."""
    return kind if kind in KINDS else "other"


def observe_request(route: str, method: str, status: int, seconds: float, code: str) -> None:
    method = method if method in METHODS else "other"  # clients may send any token
    REQUESTS.labels(route, method, str(status)).inc()
    REQUEST_SECONDS.labels(route, method).observe(seconds)
    if status >= 400:
        ERRORS.labels(str(status), code or "none").inc()


def observe_upload(kind: str, received: int) -> None:
    UPLOADS.labels(kind_label(kind)).inc()
    BYTES_IN.labels(kind_label(kind)).inc(received)


def observe_view(kind: str) -> None:
    VIEWS.labels(kind_label(kind)).inc()


def observe_content(mime: str, sent: int) -> None:
    if sent:
        BYTES_OUT.labels(kind_label(mime.partition("/")[0])).inc(sent)


def observe_processing(kind: str, outcome: str, seconds: float) -> None:
    PROCESSING_SECONDS.labels(kind_label(kind), outcome).observe(seconds)


def observe_purge_lag(lag_ms: int) -> None:
    PURGE_LAG_SECONDS.observe(max(0, lag_ms) / 1000)


def storage_error(backend: str, op: str) -> None:
    STORAGE_ERRORS.labels(backend, op).inc()


# -- the scrape ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    """Gauges read from Redis at scrape time: shared state, so no process stores them."""

    jobs: int
    webhook_retries: int
    webhook_dead: int
    live_media: int


async def read_backlog(redis: Redis, keys: Keys, tenants: Sequence[str]) -> Backlog:
    """Each tenant's dispatcher keeps its own retries and dead letters: summed over all."""
    # One command per key (no pipeline): the keys sit in different Redis Cluster slots.
    jobs, *counts = await asyncio.gather(
        redis.zcard(keys.queue()),
        *(redis.zcard(keys.webhook_retries(t)) for t in tenants),
        *(cast(Awaitable[int], redis.llen(keys.webhook_dead(t))) for t in tenants),
        *(redis.zcard(keys.live_due(shard)) for shard in range(LIVE_SHARDS)),
    )
    n = len(tenants)
    retries, dead, shards = counts[:n], counts[n : 2 * n], counts[2 * n :]
    return Backlog(int(jobs), sum(map(int, retries)), sum(map(int, dead)), sum(map(int, shards)))


class BacklogCollector(Collector):
    def __init__(self, backlog: Backlog) -> None:
        self.backlog = backlog

    def collect(self) -> Iterable[GaugeMetricFamily]:
        b = self.backlog
        yield GaugeMetricFamily(
            "ephemeral_queue_depth", "Processing and purge jobs waiting in the queue.", b.jobs
        )
        yield GaugeMetricFamily(
            "ephemeral_webhook_retry_depth",
            "Webhook deliveries waiting for a retry.",
            b.webhook_retries,
        )
        yield GaugeMetricFamily(
            "ephemeral_webhook_dead_letters",
            "Webhook deliveries that gave up (records kept).",
            b.webhook_dead,
        )
        yield GaugeMetricFamily(
            "ephemeral_live_media", "Media not yet purged (entries of the live-set).", b.live_media
        )


def render(backlog: Backlog | None) -> tuple[bytes, str]:
    """The exposition text: every process's counters on this host, then the backlog."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        counted = generate_latest(registry)
    else:
        counted = generate_latest(REGISTRY)
    if backlog is None:
        return counted, CONTENT_TYPE_LATEST
    shared = CollectorRegistry()
    shared.register(BacklogCollector(backlog))
    return counted + generate_latest(shared), CONTENT_TYPE_LATEST
