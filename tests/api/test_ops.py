"""The ops listener of a real `ephemeral serve`, its JSON access lines, and the choice of the
metrics directory before prometheus-client loads."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from ephemeral.config import Settings
from ephemeral.metrics_dir import prepare_dir, use_metrics_dir
from tests.api.samples import parse, value
from tests.fixtures.logscan import output_path
from tests.fixtures.processes import free_port, server_env, wait_healthy


def test_the_ops_listener_takes_metrics_and_probes(settings: Settings) -> None:
    port, ops_port = free_port(), free_port()
    env = server_env(settings, port)
    env["EPHEMERAL_OPS_PORT"] = str(ops_port)
    log = output_path("serve-ops")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ephemeral", "serve", "--no-worker"],
            env=env,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    public, ops = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ops_port}"
    try:
        wait_healthy(ops, process)
        for path in ("/metrics", "/healthz", "/readyz"):
            assert fetch(ops + path)[0] == 200
            assert fetch(public + path)[0] == 404
        assert fetch(ops + "/v1/media")[0] == 404
        odd = urllib.request.Request(public + "/v1/media", method="PROPFIND")
        assert 400 <= fetch(odd)[0] < 500
        assert fetch(public + "/v/AAAAAAAAAAAAAAAAAAAAAA")[0] == 200  # the viewer page
        samples = parse(fetch(ops + "/metrics")[1])
        hit = value(
            samples,
            "ephemeral_http_requests_total",
            route="/v/{lookup}",
            method="GET",
            status="200",
        )
        assert hit == 1
        # Label values come from fixed sets, whatever the client sends.
        methods = {dict(labels).get("method") for _, labels in samples} - {None}
        assert "PROPFIND" not in methods and "other" in methods
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    access = [line for line in lines if line.get("route") == "/v/{lookup}"]
    assert len(access) == 1
    (line,) = access
    assert line["method"] == "GET" and line["status"] == 200 and len(line["request_id"]) == 16
    assert line["duration_ms"] >= 0 and line["bytes"] > 0
    assert "AAAAAAAAAAAAAAAAAAAAAA" not in log.read_text()  # the raw path is never logged


def fetch(url: str | urllib.request.Request) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_metrics_dir_is_chosen_before_prometheus_client_loads(tmp_path: Path) -> None:
    # The CLI picks the directory after reading the settings: nothing it imports may load
    # prometheus_client first, or every value would silently stay in one process.
    probe = "import sys, ephemeral.cli; print('prometheus_client' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout.strip() == "False", found.stderr
    with pytest.raises(RuntimeError, match="before the metrics dir"):
        use_metrics_dir(tmp_path / "metrics")  # this test process has loaded it already


def test_a_fresh_start_clears_stale_files_and_a_live_sibling_keeps_its_own(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (directory / f"counter_{dead.pid}.db").write_bytes(b"old")
    prepare_dir(directory)
    assert list(directory.iterdir()) == []
    with subprocess.Popen(["sleep", "30"]) as sibling:
        try:
            (directory / f"counter_{sibling.pid}.db").write_bytes(b"live")
            (directory / f"histogram_{dead.pid}.db").write_bytes(b"old")
            prepare_dir(directory)
            assert len(list(directory.iterdir())) == 2  # joined: nothing of a live run goes
        finally:
            sibling.kill()


async def test_a_stalled_redis_leaves_the_scrape_its_counters(
    make_client: Any, settings: Settings, redis: Redis
) -> None:
    """The backlog gauges read Redis; a Redis that stops answering must not hang the scrape."""
    client = await make_client(settings, worker=False)
    assert (await client.get("/healthz")).status == 200
    await redis.client_pause(2500, all=True)
    started = time.monotonic()
    response = await client.get("/metrics")
    waited = time.monotonic() - started
    body = await response.text()
    await asyncio.sleep(max(0.0, 2.6 - waited))  # let the pause end before the teardown
    assert response.status == 200
    assert waited < 2.5  # answered before Redis did
    assert "ephemeral_http_requests_total" in body
    assert "ephemeral_queue_depth" not in body
