"""`ephemeral status ID --watch`: the member table, live, until the media is done."""

from __future__ import annotations

import contextlib

from rich.live import Live

from ephemeral.client import display
from ephemeral.client.display import Output
from ephemeral.client.models import Event, MediaStatus
from ephemeral.client.sender import Client


async def watch_status(client: Client, media_id: str, out: Output) -> int:
    """Redraw on every event (a terminal) or print one line per event (a pipe, or JSON lines).

    The stream opens with a snapshot, so nothing between "now" and the first event is missed;
    after each event the status is read again, because events carry statuses but not times.
    Ends at the media's purge (which follows an unsend or a failure too), or at Ctrl-C.
    """
    live = Live(console=out.out, refresh_per_second=4, auto_refresh=False) if out.tty else None
    with live or contextlib.nullcontext():
        async for event in client.watch(media_id):
            status = await _current(client, media_id, event)
            if live is not None:
                live.update(display.status_table(status), refresh=True)
            elif out.json:
                print(display.to_json(event), flush=True)
            elif event.snapshot is not None:
                print(display.status_plain(status), flush=True)
            else:
                print(display.event_plain(event), flush=True)
            # The last event of every media is media.purged (unsend and failure purge too);
            # ending on a status read instead could skip events still on their way.
            if event.type == "media.purged" or (event.snapshot is not None and status.terminal):
                return 0
    return 0


async def _current(client: Client, media_id: str, event: Event) -> MediaStatus:
    if event.snapshot is not None:
        return event.snapshot
    return await client.status(media_id)
