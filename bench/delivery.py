"""Delivery against its physical baselines (issue #8): views vs nginx and vs raw boto3 ranged
GETs on moto, time to first byte, peak RSS growth for 1 GiB vs 10 MiB, and throughput by size.

`measure(work)` starts everything itself on 127.0.0.1 (redis, our server, nginx, moto, the bare
aiohttp baseline) and stops it again; big files live in `work/delivery` and are removed after.
Every object viewed is sealed directly with the worker's own vault code (bench.flows.seal_large),
since normalisation would shrink a real photo."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import aiohttp

from bench.delivery_flows import (
    boto3_figure,
    curl_figure,
    rss_upload_figures,
    rss_view_figures,
    stored_object,
    ttfb_figures,
    view_figure,
)
from bench.delivery_servers import (
    S3_BUCKET,
    running_moto,
    running_nginx,
    running_ours,
    s3_client,
    settings_for,
)
from bench.flows import JWT_KEY, Api
from bench.harness import REPEATS, Figure, cpu_seconds, file_of, free_port, process, python
from ephemeral.auth import Authenticator
from ephemeral.embedded_redis import EmbeddedRedis

MiB = 1 << 20
SIZES = (1, 10, 100, 1000)  # MiB, the throughput-by-size points
BIG = 1024  # MiB, the memory points
SMALL = 10
TTFB_SIZE, TTFB_COUNT = 1, 50
VIEW_SIZE = 100  # MiB, the nginx and S3 comparisons
CHART = Path(__file__).parent / "results" / "throughput.png"
JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"


def repeats_for(size_mib: int) -> int:
    return min(3, REPEATS) if size_mib >= 1000 else REPEATS


def measure(work: Path) -> dict[str, Figure]:
    """All delivery figures, keyed: view_nginx/baseline_nginx, view_s3/baseline_s3 (MiB/s);
    ttfb/baseline_ttfb (ms, every sample, p99 in the name), ttfb_p99/baseline_ttfb_p99;
    rss_upload_1g/_10m, rss_view_1g/_10m (growth, MiB) and each with _peak (peak RSS, MiB);
    view_cpu (ms of our process's CPU per MiB viewed); size_{1,10,100,1000}_{ours,nginx,aiohttp}
    (MiB/s). Also writes the throughput-by-size chart to bench/results/throughput.png."""
    root = work / "delivery"
    (root / "files").mkdir(parents=True, exist_ok=True)
    try:
        figures = asyncio.run(_measure(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    chart(figures, CHART)
    return figures


async def _measure(root: Path) -> dict[str, Figure]:
    files = root / "files"
    plains = {n: file_of(files / f"plain_{n}.bin", n * MiB) for n in SIZES}
    figures: dict[str, Figure] = {}
    base_port = free_port()
    base_url = f"http://127.0.0.1:{base_port}"
    baseline = [python(), "-m", "bench.baselines", str(files), str(base_port)]
    with (
        process(baseline, dict(os.environ), f"{base_url}/healthz"),
        running_nginx(root, files, plains[1].name) as nginx_url,
    ):
        async with EmbeddedRedis(root / "redis") as redis:
            settings = settings_for(root / "data", redis.url)
            bearer = Authenticator(settings, JWT_KEY).mint("bench")
            limit = (BIG + 1) * MiB
            with running_ours(settings, limit) as (url, pid):
                async with aiohttp.ClientSession() as session:
                    api = Api(url, session, bearer)
                    for n, plain in plains.items():
                        reps = repeats_for(n)
                        cpu_before = cpu_seconds(pid)
                        figures[f"size_{n}_ours"] = await view_figure(
                            f"our view (redeem + decrypt + stream), {n} MiB, fs",
                            api,
                            settings,
                            plain,
                            reps,
                        )
                        if n == VIEW_SIZE:  # the warm-up view counts too: reps + 1 views
                            used = cpu_seconds(pid) - cpu_before
                            figures["view_cpu"] = Figure(
                                f"our API process's CPU per MiB viewed ({n} MiB, fs, all threads)",
                                "ms",
                                [used * 1000 / ((reps + 1) * n)],
                            )
                        figures[f"size_{n}_nginx"] = curl_figure(
                            f"nginx sendfile, {n} MiB", f"{nginx_url}/{plain.name}", n * MiB, reps
                        )
                        figures[f"size_{n}_aiohttp"] = curl_figure(
                            f"bare aiohttp static file, {n} MiB",
                            f"{base_url}/files/{plain.name}",
                            n * MiB,
                            reps,
                        )
                    figures["view_nginx"] = figures[f"size_{VIEW_SIZE}_ours"]
                    figures["baseline_nginx"] = figures[f"size_{VIEW_SIZE}_nginx"]
                    figures.update(
                        await ttfb_figures(api, settings, plains[TTFB_SIZE], base_url, TTFB_COUNT)
                    )
                    for n in SIZES:
                        if n not in (TTFB_SIZE, VIEW_SIZE):
                            plains[n].unlink()  # disk: only what is still measured stays
                    for n, key in ((SMALL, "rss_view_10m"), (BIG, "rss_view_1g")):
                        plain = file_of(files / f"rss_{n}.bin", n * MiB)
                        figures[key], figures[f"{key}_peak"] = await rss_view_figures(
                            f"API process, a {n} MiB view",
                            api,
                            settings,
                            plain,
                            pid,
                            repeats_for(n),
                        )
            with running_ours(settings, limit, worker=False) as (url, pid):
                for n, key in ((SMALL, "rss_upload_10m"), (BIG, "rss_upload_1g")):
                    photo = jpeg_of(files / f"rss_{n}.bin", files / f"photo_{n}.jpg")
                    figures[key], figures[f"{key}_peak"] = rss_upload_figures(
                        f"API process (no worker), a {n} MiB upload",
                        url,
                        bearer,
                        photo,
                        pid,
                        repeats_for(n),
                    )
                    photo.unlink()
                    (files / f"rss_{n}.bin").unlink()
    shutil.rmtree(root / "data", ignore_errors=True)
    figures.update(await _s3_figures(root, plains[VIEW_SIZE]))
    return figures


async def _s3_figures(root: Path, plain: Path) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    with running_moto() as endpoint:
        async with EmbeddedRedis(root / "redis_s3") as redis:
            settings = settings_for(root / "data_s3", redis.url, endpoint)
            bearer = Authenticator(settings, JWT_KEY).mint("bench")
            with running_ours(settings, plain.stat().st_size + MiB) as (url, _):
                async with aiohttp.ClientSession() as session:
                    api = Api(url, session, bearer)
                    n = plain.stat().st_size // MiB
                    figures["view_s3"] = await view_figure(
                        f"our view (redeem + decrypt + stream), {n} MiB, S3 on moto",
                        api,
                        settings,
                        plain,
                        REPEATS,
                    )
            client = s3_client(endpoint)
            try:
                key, size = stored_object(client, S3_BUCKET)
                figures["baseline_s3"] = await boto3_figure(
                    f"raw boto3, one ranged GET streamed, same object on moto ({key})",
                    client,
                    S3_BUCKET,
                    key,
                    size,
                    REPEATS,
                )
            finally:
                client.close()
    return figures


def jpeg_of(source: Path, target: Path) -> Path:
    """`source` with a JPEG header over its first bytes; uploads are measured before decoding."""
    with source.open("rb") as src, target.open("wb") as out:
        src.seek(len(JPEG_HEAD))
        out.write(JPEG_HEAD)
        while chunk := src.read(8 * MiB):
            out.write(chunk)
    return target


def chart(figures: dict[str, Figure], path: Path) -> None:
    """Throughput against file size, log-x, one line per server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for suffix, label in (
        ("ours", "ephemeral view (redeem + decrypt + stream)"),
        ("nginx", "nginx (sendfile)"),
        ("aiohttp", "bare aiohttp static file"),
    ):
        keys = [(n, f"size_{n}_{suffix}") for n in SIZES]
        points = [(n, figures[k].median) for n, k in keys if k in figures]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xticks(list(SIZES), [f"{n} MiB" for n in SIZES])
    ax.set_xlabel("object size")
    ax.set_ylabel("MiB/s (median, curl, loopback)")
    ax.set_title("Delivery throughput by size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
