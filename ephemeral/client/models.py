"""Typed results: frozen dataclasses read from the contract's JSON (docs/API.md).

Within v1 the service may add fields; these readers take the fields they know and ignore the
rest, so an older client keeps working against a newer server.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")

TERMINAL_STATES = frozenset({"purged", "revoked", "failed"})
TERMINAL_STATUSES = frozenset({"expired", "revoked", "failed"})


def parse_time(value: Any) -> datetime | None:
    """The contract's timestamps are ISO 8601 in UTC with a `Z`."""
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _build(cls: type[T], data: dict[str, Any], **converted: Any) -> T:
    """Known fields only, `*_at` fields as datetimes, missing fields at their defaults."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name in converted:
            values[field.name] = converted[field.name]
        elif field.name in data:
            value = data[field.name]
            values[field.name] = parse_time(value) if field.name.endswith("_at") else value
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class RecipientLink:
    """One recipient's one-shot link, returned once, at create."""

    id: str
    token: str = dataclasses.field(repr=False)
    url: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class SentMedia:
    """The answer to a create: the media id and every recipient's link."""

    id: str
    state: str
    kind: str | None = None
    views: int = 1
    client_ref: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    recipients: tuple[RecipientLink, ...] = ()
    idempotent_replayed: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any], replayed: bool = False) -> SentMedia:
        links = tuple(_build(RecipientLink, r) for r in data.get("recipients") or ())
        return _build(cls, data, recipients=links, idempotent_replayed=replayed)


@dataclasses.dataclass(frozen=True)
class MemberStatus:
    """One recipient's receipts, as the sender sees them."""

    id: str
    status: str
    views_used: int = 0
    views_left: int = 0
    delivered_at: datetime | None = None
    opened_at: datetime | None = None
    replayed_at: datetime | None = None
    replay_expires_at: datetime | None = None
    screenshot_count: int = 0
    first_screenshot_at: datetime | None = None
    last_screenshot_at: datetime | None = None
    link_previewed_at: datetime | None = None
    expired_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclasses.dataclass(frozen=True)
class MediaError:
    code: str
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class MediaStatus:
    """`GET /v1/media/{id}`: the media's state, counts per status and the members' receipts."""

    id: str
    state: str
    kind: str | None = None
    views: int = 1
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    client_ref: str | None = None
    recipient_auth: str = "link"
    capture: str = "notify"
    created_at: datetime | None = None
    expires_at: datetime | None = None
    ready_at: datetime | None = None
    revoked_at: datetime | None = None
    purged_at: datetime | None = None
    error: MediaError | None = None
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    recipients: tuple[MemberStatus, ...] = ()
    recipients_next_cursor: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediaStatus:
        error = data.get("error")
        return _build(
            cls,
            data,
            error=_build(MediaError, error) if isinstance(error, dict) else None,
            counts={str(k): int(v) for k, v in (data.get("counts") or {}).items()},
            recipients=tuple(_build(MemberStatus, r) for r in data.get("recipients") or ()),
        )

    @property
    def terminal(self) -> bool:
        """Nothing more will happen to this media: purged, unsent or failed."""
        return self.state in TERMINAL_STATES or self.purged_at is not None

    def member(self, recipient_id: str) -> MemberStatus:
        return next(m for m in self.recipients if m.id == recipient_id)


@dataclasses.dataclass(frozen=True)
class Event:
    """One Server-Sent Event of `/v1/events`: a `snapshot` or a contract event type."""

    id: str | None
    type: str
    timestamp: datetime | None = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    snapshot: MediaStatus | None = None

    @property
    def media_id(self) -> str | None:
        if self.snapshot is not None:
            return self.snapshot.id
        value = self.data.get("media_id")
        return value if isinstance(value, str) else None

    @property
    def recipient(self) -> str | None:
        value = self.data.get("recipient")
        return value if isinstance(value, str) and value else None

    @property
    def seq(self) -> int | None:
        value = self.data.get("seq")
        return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


@dataclasses.dataclass(frozen=True)
class Peek:
    """`POST /v1/views/peek`: what a link is, without consuming it."""

    state: str
    kind: str | None = None
    views_left: int = 0
    duration: float | None = None
    expires_in: int | None = None
    recipient_auth: str = "link"
    capture: str | None = None  # None: a server older than this field

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Peek:
        return _build(cls, data)


@dataclasses.dataclass(frozen=True)
class View:
    """A redeemed view: what is being shown, and the lease that streams it."""

    view_id: str = dataclasses.field(repr=False)
    content_url: str = dataclasses.field(repr=False)
    lease: str = dataclasses.field(repr=False)
    kind: str | None = None
    mime: str | None = None
    size: int = 0
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    caption: str | None = None
    capture: str = "notify"
    views_left: int = 0
    lease_idle: int | None = None
    lease_expires_in: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> View:
        return _build(cls, data)
