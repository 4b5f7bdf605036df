"""`ephemeral open LINK -o FILE`: a recipient saves a view to a file, with the sender's rules.

Saving turns view-once media into a permanent copy, so this refuses media sent with
`capture: block` (before anything is consumed: peek tells) and warns for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from ephemeral.client import display
from ephemeral.client.display import Output
from ephemeral.client.errors import ClientError
from ephemeral.client.models import View
from ephemeral.client.recipient import RecipientClient, ViewReader

WHY_NOT = {
    "viewed": "this link has already been viewed",
    "expired": "this link has expired",
    "revoked": "the sender unsent this media",
    "failed": "this media could not be processed",
}
BLOCKED = (
    "the sender asked that this media not be captured (capture: block); a command-line "
    "client cannot honour that, so it does not save it. Open the link in the app."
)


class Refused(Exception):
    """The command will not do this; nothing was consumed unless the message says so."""


async def save_view(
    recipient: RecipientClient, link: str, output: Path, force: bool, wait: float, out: Output
) -> View:
    if not force and await asyncio.to_thread(output.exists):
        raise Refused(f"{output} exists (pass --force to overwrite); the link was not used")
    peek = await recipient.peek(link)
    if peek.state in WHY_NOT:
        raise ClientError(f"{WHY_NOT[peek.state]}; nothing was saved")
    if peek.capture == "block":
        raise Refused(BLOCKED + " The link was not used.")
    out.note(
        f"warning: {output} will be a permanent copy of media the sender meant to be seen "
        f"{'once' if peek.views_left <= 1 else 'twice'}; keep it to yourself."
    )
    partial = output.with_name(f".{output.name}.part")
    try:
        async with recipient.open(link, wait_processing=wait) as view:
            if view.info.capture == "block":  # an older server, whose peek did not say
                raise Refused(BLOCKED + " A view was used, and the lease is now ended.")
            await _write(view, partial, out)
        os.replace(partial, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    info = view.info
    what = f"{info.kind or 'media'} ({info.mime}, {info.size} bytes)"
    left = f"; {info.views_left} view left" if info.views_left else ""
    out.note(f"saved {what} to {output}{left}")
    if info.caption:
        out.note(f"caption: {info.caption}")
    return info


async def _write(view: ViewReader, partial: Path, out: Output) -> None:
    size = view.info.size
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    bar = display.TransferBar(out.err, "receiving", size) if out.tty else None
    with os.fdopen(fd, "wb") as handle, bar or contextlib.nullcontext():
        done = 0
        async for chunk in view.chunks():
            handle.write(chunk)
            done += len(chunk)
            if bar is not None:
                bar.update(done, size)
