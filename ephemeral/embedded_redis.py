"""A private redis-server for the embedded default: unix socket in a 0700 dir, AOF, fsync always."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from types import TracebackType

from redis.asyncio import Redis

from ephemeral.config import ConfigError


def redis_config(directory: Path, socket: Path) -> str:
    return "\n".join(
        [
            "port 0",
            f"unixsocket {socket}",
            "unixsocketperm 700",
            f"dir {directory}",
            "appendonly yes",
            "appendfsync always",  # a redemption is acknowledged only once it is on disk
            'save ""',
            "maxmemory-policy noeviction",
            "daemonize no",
            "protected-mode yes",
            "loglevel warning",
            "",
        ]
    )


class EmbeddedRedis:
    """Starts redis-server as a child process and stops it on exit (SIGTERM, then SIGKILL)."""

    def __init__(self, directory: Path, executable: str = "redis-server") -> None:
        # Absolute: redis-server changes into `dir` before it binds the socket.
        self.directory = directory.resolve()
        self.executable = executable
        self.socket = self.directory / "run" / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        binary = shutil.which(self.executable)
        if binary is None:
            raise ConfigError(
                f"setting redis.redis_server: {self.executable!r} not found; install redis-server "
                "(make run does) or set EPHEMERAL_REDIS_URL to an external Redis"
            )
        for path in (self.directory, self.socket.parent):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path, 0o700)
        config = self.directory / "redis.conf"
        config.write_text(redis_config(self.directory, self.socket))
        os.chmod(config, 0o600)
        self.socket.unlink(missing_ok=True)
        # Its own output (warnings only) goes to ours, so a failed start explains itself.
        self.process = subprocess.Popen([binary, str(config)], start_new_session=True)

    async def wait_ready(self, limit_seconds: float = 20.0) -> None:
        client = Redis(unix_socket_path=str(self.socket))
        try:
            async with asyncio.timeout(limit_seconds):
                while True:
                    if self.process is not None and self.process.poll() is not None:
                        raise RuntimeError(
                            "redis-server exited at start; its reason is printed above"
                        )
                    try:
                        if await client.ping():
                            # Loading the AOF answers PING with an error until done.
                            return
                    except Exception:
                        await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def __aenter__(self) -> EmbeddedRedis:
        self.start()
        try:
            await self.wait_ready()
        except BaseException:
            self.stop(kill=True)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
