"""The command line: `ephemeral serve | worker | token SUB`, and the client commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError

from ephemeral.auth import Authenticator, load_key
from ephemeral.client import cli as client_cli
from ephemeral.config import ConfigError, Settings, load
from ephemeral.embedded_redis import EmbeddedRedis
from ephemeral.media.box import harden_process
from ephemeral.middleware import AccessLogger


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ephemeral", description="view-once media service")
    p.add_argument("--config", type=Path, help="TOML config file (or EPHEMERAL_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API (embedded Redis + worker by default)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir", type=Path)
    serve.add_argument("--redis-url", help="external Redis; default: a private redis-server")
    serve.add_argument("--storage", choices=["fs", "s3"])
    serve.add_argument("--no-worker", action="store_true", help="run the API alone")
    sub.add_parser("worker", help="run jobs and the sweeper against an external Redis")
    token = sub.add_parser("token", help="mint a development sender JWT (HS256)")
    token.add_argument("sub")
    token.add_argument("--lifetime", type=int, default=3600)
    client_cli.add_client_commands(sub)
    return p


def apply_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    changes: dict[str, object] = {}
    for flag, name in (("host", "host"), ("port", "port"), ("data_dir", "data_dir")):
        value = getattr(args, flag, None)
        if value is not None:
            changes[name] = value
    if getattr(args, "redis_url", None):
        changes["redis"] = dataclasses.replace(settings.redis, url=args.redis_url)
    if getattr(args, "storage", None):
        changes["storage"] = dataclasses.replace(settings.storage, backend=args.storage)
    if getattr(args, "no_worker", False):
        changes["embedded_worker"] = False
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(settings: Settings) -> None:
    from workers.runtime import running_worker  # the composition root may know the worker

    embedded = not settings.redis.url
    async with contextlib.AsyncExitStack() as stack:
        if embedded:
            redis = EmbeddedRedis(settings.data_dir / "redis", settings.redis.redis_server)
            await stack.enter_async_context(redis)
            settings = dataclasses.replace(
                settings, redis=dataclasses.replace(settings.redis, url=redis.url)
            )
        background = [running_worker] if settings.embedded_worker else []
        from ephemeral.app import create_app

        app = create_app(settings, embedded=embedded, background=background)
        runner = web.AppRunner(app, access_log_class=AccessLogger)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, settings.host, settings.port).start()
        mode = "embedded redis-server" if embedded else "external Redis"
        worker = "in-process worker" if settings.embedded_worker else "no worker"
        logging.getLogger("ephemeral").info(
            "serving on %s (%s, %s storage, %s)",
            settings.base_url,
            mode,
            settings.storage.backend,
            worker,
        )
        await _wait_for_signal()


async def worker(settings: Settings) -> None:
    from workers.runtime import run_standalone

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_standalone(settings, stop)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command in client_cli.COMMANDS:
        return client_cli.run(args)  # a client of a service: no server settings, no logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    harden_process()  # no core dumps, not dumpable: keys live in this process's memory
    try:
        settings = apply_flags(load(args.config), args)
        if args.command == "token":
            key = load_key(settings, generate=not settings.redis.url)
            print(Authenticator(settings, key).mint(args.sub, args.lifetime))
            return 0
        if args.command == "worker" and not settings.redis.url:
            raise ConfigError("setting redis.url: `ephemeral worker` needs EPHEMERAL_REDIS_URL")
        asyncio.run(serve(settings) if args.command == "serve" else worker(settings))
    except ConfigError as exc:
        print(f"ephemeral: {exc}", file=sys.stderr)
        return 2
    except RedisConnectionError as exc:
        print(f"ephemeral: cannot reach Redis: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
