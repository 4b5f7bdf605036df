"""The client commands of `ephemeral`: send, status, unsend, revoke, open (on the SDK)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import aiohttp

from ephemeral.client import display
from ephemeral.client.display import Output
from ephemeral.client.errors import ClientError, ProblemError
from ephemeral.client.recipient import RecipientClient
from ephemeral.client.saving import Refused, save_view
from ephemeral.client.sender import Client
from ephemeral.client.watching import watch_status

COMMANDS = frozenset({"send", "status", "unsend", "revoke", "open"})
DEFAULT_SERVER = "http://127.0.0.1:8080"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
WAIT_LIMIT = 900  # seconds `send --wait` waits for processing
EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 1, 2, 3


def duration(text: str) -> int:
    """`3600`, `45s`, `30m`, `12h`, `1d`, `2w` → seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 3600, 30m, 12h or 1d)")
    return int(match[1]) * UNITS[match[2] or "s"]


def _members(text: str) -> list[str]:
    members = [m.strip() for m in text.split(",") if m.strip()]
    if not members:
        raise argparse.ArgumentTypeError("name at least one recipient")
    return members


def _common(p: argparse.ArgumentParser, sender: bool = True) -> None:
    p.add_argument("--server", help=f"service URL (or EPHEMERAL_SERVER; default {DEFAULT_SERVER})")
    if sender:
        p.add_argument("--token", help="sender JWT (or EPHEMERAL_TOKEN)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def add_client_commands(sub: Any) -> None:
    """Register the client commands on the `ephemeral` parser's subcommands."""
    send = sub.add_parser("send", help="send a photo, video or voice note to recipients")
    send.add_argument("file", type=Path)
    send.add_argument("--to", type=_members, required=True, help="recipients: bob,carol")
    send.add_argument("--replay", action="store_true", help="allow one replay (views = 2)")
    send.add_argument("--expires", type=duration, help="unopened links expire: 1d, 12h, 3600")
    send.add_argument("--caption")
    send.add_argument("--capture", choices=["notify", "block"], help="screenshots: default notify")
    send.add_argument("--account", action="store_true", help="recipients must sign in to view")
    send.add_argument("--wait", action="store_true", help="wait until the media is ready")
    _common(send)
    status = sub.add_parser("status", help="per-member status of a media you sent")
    status.add_argument("media_id")
    status.add_argument("--watch", action="store_true", help="live updates until it is done")
    _common(status)
    unsend = sub.add_parser("unsend", help="revoke every link of a media and purge it now")
    unsend.add_argument("media_id")
    _common(unsend)
    revoke = sub.add_parser("revoke", help="remove one recipient from a media")
    revoke.add_argument("media_id")
    revoke.add_argument("recipient")
    _common(revoke)
    view = sub.add_parser("open", help="open a link as its recipient and save the media")
    view.add_argument("link", help="the link (…/v/<lookup>#<secret>) or a bare token")
    view.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    view.add_argument("--force", action="store_true", help="overwrite the output file")
    view.add_argument("--jwt", help="recipient JWT, for media sent to accounts")
    view.add_argument("--wait", type=float, default=30.0, help="seconds to wait for processing")
    _common(view, sender=False)


def _server(args: argparse.Namespace) -> str:
    return str(args.server or os.environ.get("EPHEMERAL_SERVER") or DEFAULT_SERVER)


def _sender(args: argparse.Namespace) -> Client:
    token = args.token or os.environ.get("EPHEMERAL_TOKEN")
    if not token:
        raise UsageError("set EPHEMERAL_TOKEN or pass --token (dev: `ephemeral token SUB`)")
    return Client(_server(args), token)


class UsageError(Exception):
    pass


async def _send(args: argparse.Namespace, out: Output) -> int:
    if not args.file.is_file():
        raise UsageError(f"no such file: {args.file}")
    async with _sender(args) as client:
        size = args.file.stat().st_size
        progress = display.TransferBar(out.err, "uploading", size) if out.tty else None
        with progress or contextlib.nullcontext():
            sent = await client.send(
                args.file,
                args.to,
                views=2 if args.replay else 1,
                expires_in=args.expires,
                caption=args.caption,
                capture=args.capture,
                recipient_auth="account" if args.account else None,
                progress=progress.update if progress else None,
            )
        if args.wait:
            async with asyncio.timeout(WAIT_LIMIT):
                ready = await client.wait_ready(sent.id)
            if ready.state != "ready":
                detail = f"{ready.error.code}: {ready.error.detail}" if ready.error else ""
                out.note(f"ephemeral: {sent.id} {ready.state} {detail}".rstrip())
                return EXIT_FAILED
            sent = dataclasses.replace(sent, state=ready.state, kind=ready.kind)
    if out.json:
        print(display.sent_json(sent), flush=True)
    else:
        out.result(display.sent_table(sent), display.sent_plain(sent))
    return 0


async def _status(args: argparse.Namespace, out: Output) -> int:
    async with _sender(args) as client:
        if args.watch:
            return await watch_status(client, args.media_id, out)
        status = await client.status(args.media_id)
        if status.recipients_next_cursor:
            everyone = tuple([m async for m in client.members(args.media_id)])
            status = dataclasses.replace(status, recipients=everyone)
    if out.json:
        print(display.to_json(status), flush=True)
    else:
        out.result(display.status_table(status), display.status_plain(status))
    return 0


async def _unsend(args: argparse.Namespace, out: Output) -> int:
    async with _sender(args) as client:
        await client.unsend(args.media_id)
    out.result(f"unsent {args.media_id}", f"unsent\t{args.media_id}")
    return 0


async def _revoke(args: argparse.Namespace, out: Output) -> int:
    async with _sender(args) as client:
        await client.revoke(args.media_id, args.recipient)
    out.result(
        f"revoked {args.recipient} from {args.media_id}",
        f"revoked\t{args.media_id}\t{args.recipient}",
    )
    return 0


async def _open(args: argparse.Namespace, out: Output) -> int:
    server = args.server or os.environ.get("EPHEMERAL_SERVER")
    async with RecipientClient(server, jwt=args.jwt, device="ephemeral-cli") as recipient:
        view = await save_view(recipient, args.link, args.output, args.force, args.wait, out)
    if out.json:
        print(display.view_json(view), flush=True)
    return 0


HANDLERS = {"send": _send, "status": _status, "unsend": _unsend, "revoke": _revoke, "open": _open}


def run(args: argparse.Namespace) -> int:
    """Run one client command; problems from the service are one line on stderr."""
    out = Output(getattr(args, "json", False))
    try:
        return asyncio.run(HANDLERS[args.command](args, out))
    except UsageError as exc:
        out.note(f"ephemeral: {exc}")
        return EXIT_USAGE
    except Refused as exc:
        out.note(f"ephemeral: refused: {exc}")
        return EXIT_REFUSED
    except ProblemError as exc:
        out.note(f"ephemeral: {exc.status} {exc.code}: {exc.detail}")
        return EXIT_FAILED
    except ClientError as exc:
        out.note(f"ephemeral: {exc}")
        return EXIT_FAILED
    except aiohttp.ClientError as exc:  # named by type only: URLs may hold ids
        out.note(f"ephemeral: the connection failed ({type(exc).__name__})")
        return EXIT_FAILED
    except TimeoutError:
        out.note("ephemeral: gave up waiting for the service")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
