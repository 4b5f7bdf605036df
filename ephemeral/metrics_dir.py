"""prometheus-client's multiprocess mode for `serve` and `worker`: one directory per host.

prometheus-client decides at import whether values go to per-process files, so the CLI calls
`use_metrics_dir` before anything imports it (this module must not import it either). The API
and worker processes sharing a data dir share the directory, and a scrape of any of them sums
every process's files. A process joining live siblings keeps their files; the first process of
a fresh start clears what dead processes left, so counters start again from zero.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from ephemeral.processes import alive

ENV = "PROMETHEUS_MULTIPROC_DIR"
_PID_RE = re.compile(r"_(\d+)\.db$")


def use_metrics_dir(path: Path) -> None:
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the metrics dir was chosen")
    prepare_dir(path)
    os.environ[ENV] = str(path)


def prepare_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = [(f, _PID_RE.search(f.name)) for f in path.glob("*.db")]
    owners = {int(m.group(1)) for _, m in files if m is not None}
    if not any(alive(pid) for pid in owners if pid != os.getpid()):
        # Only the files listed now: a sibling starting this very moment keeps its new ones.
        for file, _ in files:
            file.unlink(missing_ok=True)
