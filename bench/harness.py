"""Repeats, medians and spreads; servers started on loopback and stopped afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))


@dataclass
class Figure:
    name: str
    unit: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        return (max(self.samples) - min(self.samples)) / self.median if self.median else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "median": self.median,
            "spread": self.spread,
            "samples": self.samples,
        }


def repeat(name: str, unit: str, once: Callable[[], float], repeats: int = REPEATS) -> Figure:
    once()  # warm-up, not counted
    figure = Figure(name, unit)
    for _ in range(repeats):
        figure.samples.append(once())
    return figure


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str], health: str | None) -> Iterator[None]:
    with spawned(argv, env, health):
        yield


def curl_seconds(args: list[str]) -> float:
    """Total transfer time as curl measures it: the same external client for us and baselines."""
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{http_code}", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not out[1].startswith("2"):
        raise RuntimeError(f"curl got HTTP {out[1]} for {args[-1]}")
    return float(out[0])


def python() -> str:
    return sys.executable


def file_of(path: Path, size: int) -> Path:
    if not path.exists() or path.stat().st_size != size:
        with path.open("wb") as handle:
            remaining = size
            while remaining:
                chunk = os.urandom(min(remaining, 1 << 20))
                handle.write(chunk)
                remaining -= len(chunk)
    return path


@contextlib.contextmanager
def spawned(
    argv: list[str], env: dict[str, str], health: str | None
) -> Iterator[subprocess.Popen[bytes]]:
    """Like `process`, but yields the child so its pid can be inspected (RSS, for one)."""
    proc = subprocess.Popen(
        argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if health:
            wait_http(health)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Current resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssPeak:
    """Samples a process's VmRSS every `interval` seconds in a thread; `growth` is the peak
    seen while running minus the idle value read on entry, in MiB."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.idle = self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __enter__(self) -> RssPeak:
        self.idle = self.peak = rss_mib(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(self.pid))

    @property
    def growth(self) -> float:
        return self.peak - self.idle


def percentile(samples: list[float], pct: int) -> float:
    """The pct-th percentile (1..99) by the inclusive method of `statistics.quantiles`."""
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def curl_upload_args(
    url: str, token: str, file: Path, recipients: tuple[str, ...] = ("bob",)
) -> list[str]:
    """A one-step upload as curl sends it: the meta part first, then the file."""
    meta = "meta=" + json.dumps({"recipients": list(recipients)}) + ";type=application/json"
    return [
        "-H",
        f"Authorization: Bearer {token}",
        "-F",
        meta,
        "-F",
        f"file=@{file}",
        f"{url}/v1/media",
    ]
