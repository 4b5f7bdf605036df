"""Baselines: a bare aiohttp server that streams uploads to a file and serves files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aiohttp import web


async def ingest(request: web.Request) -> web.Response:
    """The issue's baseline; with ?fsync=1 it also makes the file durable before answering,
    as our store does, to show how much of the gap is the fsync."""
    target = Path(request.app["dir"]) / "upload.bin"
    reader = await request.multipart()
    with target.open("wb") as handle:
        while (part := await reader.next()) is not None:
            while chunk := await part.read_chunk(256 * 1024):  # type: ignore[union-attr]
                handle.write(chunk)
        if request.query.get("fsync"):
            handle.flush()
            os.fsync(handle.fileno())
    return web.Response(status=202)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    directory, port = sys.argv[1], int(sys.argv[2])
    app = web.Application(client_max_size=2**40)
    app["dir"] = directory
    app.router.add_post("/ingest", ingest)
    app.router.add_static("/files", directory)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
