"""Webhooks to a real HTTPS receiver: signatures, retries, redirects, dead letters, a SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from ephemeral.config import ConfigError, Settings, WebhookSettings, load
from ephemeral.events import envelope
from ephemeral.services import Services, open_services
from ephemeral.state import typed
from ephemeral.state.keys import Keys
from tests.api.helpers import redeemed
from tests.api.test_views import ready_media
from tests.fixtures.core import AppClient
from tests.fixtures.https import REDIRECT_TARGET, SECRETS, Hit, Receiver, hook_settings
from tests.fixtures.logscan import output_path
from tests.fixtures.processes import server_env
from workers.webhook_delivery import endpoints, retry_delay, webhook_id
from workers.webhooks import GROUP, run_webhooks

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import asyncio, logging
from ephemeral.config import load
from ephemeral.services import open_services
from workers.webhooks import run_webhooks
async def main() -> None:
    logging.basicConfig(level=logging.INFO)
    async with open_services(load()) as svc:
        await run_webhooks(svc, asyncio.Event())
asyncio.run(main())
"""


def keys(settings: Settings) -> Keys:
    return Keys(settings.redis.prefix)


def hooked(settings: Settings, webhooks: WebhookSettings) -> Settings:
    return dataclasses.replace(settings, webhooks=webhooks)


@contextlib.asynccontextmanager
async def dispatching(settings: Settings) -> AsyncIterator[Services]:
    """A dispatcher on this loop; if the app's worker runs one too, they share the group."""
    async with open_services(settings) as svc:
        stop = asyncio.Event()
        task = asyncio.create_task(run_webhooks(svc, stop))
        try:
            yield svc
        finally:
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def emit(redis: Redis, settings: Settings, media_id: str, seq: int) -> None:
    """An event as the relay appends it to the tenant stream (the relay is tested elsewhere)."""
    media = {"tenant": settings.tenant, "sender": "alice", "client_ref": "ref-1"}
    entry = {"type": "recipient.opened", "ts": str(int(time.time() * 1000)), "seq": str(seq)}
    entry |= {"recipient": "bob", "status": "opened", "views_left": "0", "counts": "{}"}
    event = json.dumps(envelope(media_id, media, entry))
    await redis.xadd(keys(settings).tenant_events(settings.tenant), {"e": event})


def verified(hit: Hit) -> dict[str, Any]:
    """The body, checked against each secret alone: receivers may hold either during rotation."""
    assert len(hit.headers["webhook-signature"].split(" ")) == len(SECRETS)
    first, second = (Webhook(secret).verify(hit.body, hit.headers) for secret in SECRETS)
    assert first == second
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(hit.body, hit.headers)
    return cast(dict[str, Any], first)


def expected_id(settings: Settings, url: str, media_id: str, seq: int) -> str:
    """The documented derivation: (tenant, media id, seq, endpoint URL)."""
    (target,) = endpoints(WebhookSettings(urls=url))
    return webhook_id(settings.tenant, media_id, seq, target)


async def eventually(probe: Callable[[], Any], want: Any) -> None:
    """Wait for Redis to show `want`: the dispatcher writes there after the receiver answered."""
    deadline = time.monotonic() + 10
    while (got := await probe()) != want:
        assert time.monotonic() < deadline, f"wanted {want!r}, got {got!r}"
        await asyncio.sleep(0.05)


async def dead_letters(redis: Redis, settings: Settings) -> list[dict[str, Any]]:
    rows = await typed.lrange(redis, keys(settings).webhook_dead(), 0, -1)
    return [json.loads(row) for row in rows]


async def test_events_arrive_signed_under_each_secret_at_every_endpoint(
    make_client: AppClient, settings: Settings, receiver: Receiver, ca_file: Path
) -> None:
    urls = (receiver.url("/a"), receiver.url("/b", host="localhost"))
    settings = hooked(settings, hook_settings(receiver, ca_file, *urls))
    client = await make_client(settings)
    async with dispatching(settings):
        media_id, tokens = await ready_media(client, settings)
        await redeemed(client, tokens["bob"])

        def arrived(path: str) -> set[str]:
            return {json.loads(h.body)["type"] for h in receiver.delivered(path)}

        wanted = {"media.ready", "recipient.opened"}
        await receiver.wait_for(lambda: all(wanted <= arrived(p) for p in ("/a", "/b")))
    for path, url in zip(("/a", "/b"), urls, strict=True):
        hits = receiver.delivered(path)
        bodies = [verified(hit) for hit in hits]
        for hit, body in zip(hits, bodies, strict=True):
            assert hit.headers["Content-Type"] == "application/json"
            assert tokens["bob"] not in hit.body.decode() and "lease" not in body["data"]
            assert body["data"]["media_id"] == media_id and body["data"]["tenant"] == "default"
            assert hit.wid == expected_id(settings, url, media_id, body["data"]["seq"])
        seqs = [body["data"]["seq"] for body in bodies]
        assert len(set(seqs)) == len(seqs)  # nothing failed, so each event came once
        ordered = [body["type"] for body in sorted(bodies, key=lambda b: b["data"]["seq"])]
        assert ordered.index("media.ready") < ordered.index("recipient.opened")
    # One id per (event, endpoint): the same event has another id at the other endpoint.
    ids = [{hit.wid for hit in receiver.delivered(path)} for path in ("/a", "/b")]
    assert len(ids[0]) == len(ids[1]) and not ids[0] & ids[1]


async def test_failures_retry_with_the_same_id_until_the_endpoint_recovers(
    settings: Settings, redis: Redis, receiver: Receiver, ca_file: Path
) -> None:
    settings = hooked(settings, hook_settings(receiver, ca_file, max_tries=8))
    receiver.answer(500)
    async with dispatching(settings):
        for seq in (1, 2, 3):
            await emit(redis, settings, "m_retry", seq)
        await receiver.wait_for(lambda: len(receiver.on("/hook")) >= 3 * 3)
        receiver.answer(200)
        await receiver.wait_for(lambda: len({h.wid for h in receiver.delivered()}) == 3)
        await eventually(lambda: redis.zcard(keys(settings).webhook_retries()), 0)
    hits = receiver.on("/hook")
    by_id = {wid: [h for h in hits if h.wid == wid] for wid in {h.wid for h in hits}}
    assert set(by_id) == {expected_id(settings, receiver.url(), "m_retry", s) for s in (1, 2, 3)}
    for tries in by_id.values():
        assert [h.status for h in tries][-1] == 200 and 500 in [h.status for h in tries]
        assert len({verified(h)["data"]["seq"] for h in tries}) == 1
    assert await dead_letters(redis, settings) == []


async def test_a_redirect_is_a_failure_and_is_not_followed(
    settings: Settings,
    redis: Redis,
    receiver: Receiver,
    ca_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy from the environment would break every delivery: it must be ignored.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    settings = hooked(settings, hook_settings(receiver, ca_file))
    receiver.answer(302)
    async with dispatching(settings):
        await emit(redis, settings, "m_moved", 1)
        await receiver.wait_for(lambda: len(receiver.on("/hook")) >= 2)
        receiver.answer(204)
        await receiver.wait_for(lambda: len(receiver.delivered()) == 1)
    assert receiver.on(REDIRECT_TARGET) == []
    assert [h.status for h in receiver.on("/hook")][:2] == [302, 302]
    assert len({h.wid for h in receiver.on("/hook")}) == 1


async def test_an_endpoint_that_never_recovers_gets_one_dead_letter(
    settings: Settings, redis: Redis, receiver: Receiver, ca_file: Path
) -> None:
    good, bad = receiver.url("/ok"), receiver.url("/down")
    settings = hooked(settings, hook_settings(receiver, ca_file, good, bad))
    receiver.answer(500, "/down")
    receiver.slow(0.15, "/down")
    async with dispatching(settings), dispatching(settings):  # still one send per try
        await emit(redis, settings, "m_dead", 7)
        await eventually(lambda: redis.llen(keys(settings).webhook_dead()), 1)
        await asyncio.sleep(2 * retry_delay(settings.webhooks, 3))  # time for a stray 5th try
    assert len(receiver.delivered("/ok")) == 1 and len(receiver.on("/ok")) == 1
    tries = receiver.on("/down")
    assert len(tries) == settings.webhooks.max_tries == 4
    assert {h.wid for h in tries} == {expected_id(settings, bad, "m_dead", 7)}
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(tries)]
    for gap, wait in zip(gaps, (0.2, 0.4, 0.8), strict=True):  # first_retry 0.2, factor 2
        assert 0.9 * wait <= gap <= 1.1 * wait + 0.5, gaps
    (record,) = await dead_letters(redis, settings)
    assert record["webhook_id"] == tries[0].wid and record["url"] == bad
    assert record["type"] == "recipient.opened" and record["media_id"] == "m_dead"
    assert record["attempts"] == 4 and record["last"] == "500" and record["at"]
    assert await redis.zcard(keys(settings).webhook_retries()) == 0
    assert 0 < await redis.pttl(keys(settings).webhook_dead())


def start_dispatcher(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = server_env(settings, 8080)  # the port is unused: no server runs
    w = settings.webhooks
    env.update(
        EPHEMERAL_WEBHOOKS_URLS=w.urls,
        EPHEMERAL_WEBHOOKS_SECRETS=w.secrets,
        EPHEMERAL_WEBHOOKS_CA_FILE=str(w.ca_file),
        EPHEMERAL_WEBHOOKS_TIMEOUT=str(w.timeout),
        EPHEMERAL_WEBHOOKS_FIRST_RETRY=str(w.first_retry),
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def alive(process: subprocess.Popen[bytes] | None) -> bool:
    assert process is not None and process.poll() is None, "the dispatcher process exited"
    return True


async def test_a_dispatcher_killed_mid_delivery_loses_nothing(
    settings: Settings, redis: Redis, receiver: Receiver, ca_file: Path, tmp_path: Path
) -> None:
    # A 2 s timeout: the first dispatcher is killed well before it could give up on a request.
    settings = hooked(settings, hook_settings(receiver, ca_file, timeout=2.0))
    media = [f"m_crash{i}" for i in range(6)]
    for seq, media_id in enumerate(media, start=1):
        await emit(redis, settings, media_id, seq)
    wanted = {expected_id(settings, receiver.url(), m, s) for s, m in enumerate(media, start=1)}
    log = output_path("dispatchers")  # scanned for secrets with every other log

    def delivered() -> set[str]:
        return {h.wid for h in receiver.delivered()}

    receiver.hold()
    first = start_dispatcher(settings, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        await receiver.wait_for(lambda: alive(first) and len(receiver.hits) == len(media), 20)
        os.killpg(first.pid, signal.SIGKILL)  # every request is in flight, none answered
        first.wait()
        killed_at = time.monotonic()
        # The held requests get their answer only now, from a receiver that failed them: had
        # it said 200 to the dead peer instead, the entries would still be unacknowledged.
        receiver.answer(503)
        receiver.release()
        await receiver.wait_for(lambda: all(h.status for h in receiver.hits))
        assert receiver.delivered() == []
        receiver.answer(200)
        second = start_dispatcher(settings, log)
        await receiver.wait_for(lambda: alive(second) and delivered() == wanted, 20)
        stream = keys(settings).tenant_events(settings.tenant)
        await eventually(lambda: redis.xpending_range(stream, GROUP, "-", "+", 100), [])
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    # Each event went out twice: once to the killed dispatcher, once from its successor.
    assert all(sum(h.wid == wid for h in receiver.hits) >= 2 for wid in wanted)
    assert all(h.at > killed_at for h in receiver.delivered())
    assert all(verified(h) for h in receiver.hits)
    assert await dead_letters(redis, settings) == []


async def test_plain_http_endpoints_are_refused_at_start(settings: Settings) -> None:
    env = {"EPHEMERAL_WEBHOOKS_URLS": "http://a.test/", "EPHEMERAL_WEBHOOKS_SECRETS": SECRETS[0]}
    with pytest.raises(ConfigError, match=r"webhooks\.urls"):
        load(env=env)
    # Settings built without validation are refused by the dispatcher itself.
    plain = hooked(settings, WebhookSettings(urls="http://127.0.0.1:9/hook", secrets=SECRETS[0]))
    async with open_services(plain) as svc:
        with pytest.raises(ValueError, match="https"):
            await run_webhooks(svc, asyncio.Event())


def test_the_default_schedule_spans_about_a_day() -> None:
    defaults = WebhookSettings()
    waits = [defaults.first_retry * defaults.backoff_factor**n for n in range(7)]
    assert defaults.max_tries == 8 and waits[:3] == [4.5, 22.5, 112.5]
    assert 23 * 3600 < sum(waits) < 25 * 3600
    for failed_try, wait in enumerate(waits, start=1):
        assert 0.9 * wait <= retry_delay(defaults, failed_try) <= 1.1 * wait
