"""How the client commands show results: rich tables on a terminal, plain rows otherwise.

Plain output is tab-separated with a header row (lines starting with `#` are comments), so a
script can read it without parsing a table; `--json` prints the service's data as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from typing import Any

from rich.console import Console, Group
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from ephemeral.client.models import Event, MediaStatus, SentMedia, View

STATUS_STYLE = {
    "sent": "dim",
    "delivered": "cyan",
    "opened": "green",
    "replayed": "bold green",
    "expired": "yellow",
    "revoked": "red",
    "failed": "bold red",
}
STATUS_COLUMNS = (
    "recipient",
    "status",
    "views_left",
    "delivered_at",
    "opened_at",
    "replayed_at",
    "screenshots",
    "last_screenshot_at",
)


class Output:
    """stdout for results, stderr for progress and warnings; rich only on a terminal."""

    def __init__(self, as_json: bool) -> None:
        self.json = as_json
        self.tty = sys.stdout.isatty() and not as_json
        self.out = Console()
        self.err = Console(stderr=True)

    def result(self, rich: Any, plain: str) -> None:
        if self.tty:
            self.out.print(rich, soft_wrap=True)
        else:
            print(plain, flush=True)

    def note(self, text: str) -> None:
        self.err.print(text, highlight=False, markup=False, soft_wrap=True)


class TransferBar:
    """A rich progress bar for one upload or download; `update` is a Progress callback."""

    def __init__(self, console: Console, label: str, total: int | None = None) -> None:
        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = self._bar.add_task(label, total=total)

    def update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def __enter__(self) -> TransferBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()


def when(value: datetime | None) -> str:
    """Local time, to the second: what a person reading the table wants."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


def short(value: datetime | None) -> str:
    """A table cell: the time alone for today, with the date otherwise."""
    if value is None:
        return ""
    local = value.astimezone()
    today = datetime.now().astimezone().date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%b %d %H:%M")


def iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_json(value: Any) -> str:
    def default(item: Any) -> Any:
        if isinstance(item, datetime):
            return iso(item)
        raise TypeError(type(item).__name__)

    is_record = dataclasses.is_dataclass(value) and not isinstance(value, type)
    data = dataclasses.asdict(value) if is_record else value
    return json.dumps(data, default=default, ensure_ascii=False)


def sent_json(sent: SentMedia) -> str:
    """The links are secrets: they go to stdout, for the sender to hand over, and nowhere else."""
    body = dataclasses.asdict(sent)
    body["recipients"] = [{"id": r.id, "token": r.token, "url": r.url} for r in sent.recipients]
    return to_json(body)


def view_json(view: View) -> str:
    """What was saved; the lease, view id and content URL stay out (they are credentials)."""
    body = dataclasses.asdict(view)
    for secret in ("lease", "view_id", "content_url"):
        body.pop(secret)
    return to_json(body)


def sent_plain(sent: SentMedia) -> str:
    lines = [f"# {sent.id} {sent.state}", "recipient\turl"]
    lines += [f"{r.id}\t{r.url}" for r in sent.recipients]
    return "\n".join(lines)


def sent_table(sent: SentMedia) -> Text:
    """Links are printed whole, one a line, never folded: they are for copying."""
    text = Text(f"{sent.id}", style="bold")
    text.append(f"  {sent.state}", style="magenta")
    if sent.expires_at:
        text.append(f" · unopened links expire {when(sent.expires_at)}", style="dim")
    text.append("\none-shot links, shown only now; hand each to its recipient:\n", style="dim")
    width = max((len(r.id) for r in sent.recipients), default=0)
    for link in sent.recipients:
        text.append(f"  {link.id:<{width}}  ", style="bold")
        text.append(f"{link.url}\n")
    text.rstrip()
    return text


def status_rows(status: MediaStatus) -> list[tuple[str, ...]]:
    return [
        (
            m.id,
            m.status,
            str(m.views_left),
            iso(m.delivered_at),
            iso(m.opened_at),
            iso(m.replayed_at),
            str(m.screenshot_count),
            iso(m.last_screenshot_at),
        )
        for m in status.recipients
    ]


def status_plain(status: MediaStatus) -> str:
    kind = status.kind or "-"
    lines = [f"# {status.id} {status.state} {kind} views={status.views}", "\t".join(STATUS_COLUMNS)]
    lines += ["\t".join(row) for row in status_rows(status)]
    return "\n".join(lines)


def _headline(status: MediaStatus) -> Text:
    text = Text(f"{status.id}  ", style="bold")
    text.append(f"{status.kind or 'media'} · {status.state}", style="magenta")
    text.append(f" · {'view once' if status.views == 1 else f'{status.views} views'}")
    if status.capture == "block":
        text.append(" · screenshots blocked")
    if status.error is not None:
        text.append(f" · {status.error.code}: {status.error.detail}", style="red")
    elif status.purged_at:
        text.append(f" · content purged {when(status.purged_at)}", style="dim")
    elif status.expires_at:
        text.append(f" · unopened links expire {when(status.expires_at)}", style="dim")
    counts = ", ".join(f"{k} {v}" for k, v in status.counts.items() if v)
    if counts:
        text.append(f"\n{counts}", style="dim")
    return text


def status_table(status: MediaStatus) -> Group:
    table = Table()
    for name in ("recipient", "status", "left", "delivered", "opened", "replayed"):
        table.add_column(name, no_wrap=True)
    table.add_column("screenshots", no_wrap=True)
    for m in status.recipients:
        shots = f"{m.screenshot_count}, last {short(m.last_screenshot_at)}"
        table.add_row(
            m.id,
            Text(m.revoked_reason or m.status, style=STATUS_STYLE.get(m.status, "")),
            str(m.views_left),
            short(m.delivered_at),
            short(m.opened_at),
            short(m.replayed_at),
            shots if m.screenshot_count else "",
        )
    return Group(_headline(status), table)


def event_plain(event: Event) -> str:
    """One line per event while watching without a terminal."""
    return "\t".join(
        (
            iso(event.timestamp),
            event.type,
            event.recipient or "",
            str(event.data.get("status") or ""),
            str(event.data.get("views_left", "")),
        )
    )
