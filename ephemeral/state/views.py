"""Recipient-side state: token lookup, peek, exactly-once redeem, and leases."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from ephemeral.config import LeaseSettings
from ephemeral.crypto.keys import LeaseKeys
from ephemeral.state import typed
from ephemeral.state.keys import Keys
from ephemeral.state.media import MediaRepo
from ephemeral.state.scripts import Scripts

VIEW_PREFIX = "v_"
NOTE_GRACE_MS = 600_000  # screenshots and reports are accepted 10 minutes after a lease ends
MEDIA_PREFIX = "m_"
ID_CHARS = 22


def view_media_id(view_id: str) -> str | None:
    """View ids embed the media id, so lease calls land on the media's hash slot."""
    if len(view_id) != 2 + 2 * ID_CHARS or not view_id.startswith(VIEW_PREFIX):
        return None
    core = view_id[2 : 2 + ID_CHARS]
    if not all(c.isalnum() or c in "-_" for c in view_id[2:]):
        return None
    return MEDIA_PREFIX + core


@dataclass(frozen=True)
class Redeemed:
    outcome: str  # ok | replayed | not-found | forbidden | unauthorized | <410 code> | ...
    view_id: str = ""
    views_left: int = 0
    lease_max_ms: int = 0
    opened_at: str = ""
    shown: dict[str, str] = field(default_factory=dict)  # what the viewer needs to show it
    recipient_wrapped: str = ""  # the recipient's wrapped DEK, for the caption


SHOWN = ("kind", "mime", "size", "width", "height", "duration", "caption", "capture")


@dataclass(frozen=True)
class LeaseGrant:
    outcome: str  # ok | not-found | ended | budget | busy
    keys: LeaseKeys = field(default_factory=LeaseKeys)
    object_key: str = ""
    header: str = ""
    size: int = 0
    mime: str = ""
    remaining_ms: int = 0


class ViewRepo:
    def __init__(
        self, redis: Redis, scripts: Scripts, keys: Keys, media: MediaRepo, lease: LeaseSettings
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.keys = keys
        self.media = media
        self.lease = lease

    async def resolve(self, lookup: str) -> tuple[str, str] | None:
        value = await self.redis.get(self.keys.lookup(lookup))
        if not value:
            return None
        media_id, recipient = value.split(" ", 1)
        return media_id, recipient

    async def shown(self, media_id: str) -> dict[str, str]:
        values = await typed.hmget(self.redis, self.keys.media(media_id), list(SHOWN))
        return {name: value or "" for name, value in zip(SHOWN, values, strict=True)}

    def _keys(self, media_id: str, recipient: str) -> list[str]:
        k = self.keys
        return [
            k.media(media_id),
            k.recipient(media_id, recipient),
            k.timers(media_id),
            k.outbox(media_id),
        ]

    async def peek(self, media_id: str, recipient: str, verifier: str, sub: str) -> list[str]:
        result = await self.scripts.run(
            "peek",
            self._keys(media_id, recipient),
            [verifier, sub, recipient, self.keys.lease_prefix(media_id)],
        )
        await self.media.notify(media_id)
        return result

    async def mark_previewed(self, lookup: str) -> None:
        """A preview bot or a HEAD: set the recipient's link_previewed_at hint once."""
        found = await self.resolve(lookup)
        if found is None:
            return
        media_id, recipient = found
        result = await self.scripts.run("preview", self._keys(media_id, recipient), [recipient])
        if result[0] == "ok":
            await self.media.notify(media_id)

    async def note(
        self, media_id: str, view_id: str, lease_verifier: str, kind: str, detail: str = ""
    ) -> str:
        """A screenshot, recording or report told on a lease: ok | duplicate | too-late | ..."""
        k = self.keys
        result = await self.scripts.run(
            "lease_note",
            [k.media(media_id), k.lease(media_id, view_id), k.timers(media_id), k.outbox(media_id)],
            [lease_verifier, k.recipient_prefix(media_id), kind, NOTE_GRACE_MS, detail],
        )
        if result[0] == "ok":
            await self.media.notify(media_id)
        return result[0]

    async def redeem(
        self,
        media_id: str,
        recipient: str,
        verifier: str,
        sub: str,
        view_id: str,
        lease_verifier: str,
        lease_wrapped_key: str,
        redeem_id: str,
        device: str,
    ) -> Redeemed:
        result = await self.scripts.run(
            "redeem",
            self._keys(media_id, recipient),
            [
                verifier,
                sub,
                recipient,
                self.keys.lease_prefix(media_id),
                view_id,
                lease_verifier,
                lease_wrapped_key,
                redeem_id,
                device,
                self.lease.idle * 1000,
                self.lease.max_floor * 1000,
                self.lease.max_duration_factor,
                self.lease.byte_budget_factor,
            ],
        )
        outcome = result[0]
        if outcome == "ok":
            await self.media.schedule(media_id, result[4], result[5])
            shown = dict(zip(SHOWN, result[6:14], strict=True))
            return Redeemed(
                "ok",
                result[1],
                int(result[2]),
                int(result[3]),
                shown=shown,
                recipient_wrapped=result[14],
            )
        if outcome == "replayed":
            return Redeemed("replayed", result[1])
        if outcome == "already-viewed":
            return Redeemed(outcome, opened_at=result[1] if len(result) > 1 else "")
        return Redeemed(outcome)

    async def lease_state(self, media_id: str, view_id: str) -> dict[str, str]:
        return await typed.hgetall(self.redis, self.keys.lease(media_id, view_id))

    @staticmethod
    def lease_keys(row: dict[str, str]) -> LeaseKeys:
        """The keys of a lease row read with lease_state."""
        return LeaseKeys(
            row.get("rid", ""), row.get("rk", ""), row.get("dk", ""), row.get("wk", "")
        )

    async def open_stream(
        self, media_id: str, view_id: str, lease_verifier: str, stream_id: str
    ) -> LeaseGrant:
        k = self.keys
        result = await self.scripts.run(
            "lease_open",
            [
                k.media(media_id),
                k.lease(media_id, view_id),
                k.streams(media_id, view_id),
                k.timers(media_id),
            ],
            [
                lease_verifier,
                stream_id,
                self.lease.idle * 1000,
                self.lease.max_streams,
                int(self.lease.recheck_interval * 5000),
                view_id,
            ],
        )
        if result[0] != "ok":
            return LeaseGrant(result[0])
        keys = LeaseKeys(result[8], result[9], result[7], result[1])
        return LeaseGrant(
            "ok", keys, result[2], result[3], int(result[4]), result[5], int(result[6])
        )

    async def touch(
        self,
        media_id: str,
        view_id: str,
        lease_verifier: str,
        stream_id: str = "",
        sent: int = 0,
        release: bool = False,
    ) -> list[str]:
        k = self.keys
        return await self.scripts.run(
            "lease_touch",
            [k.lease(media_id, view_id), k.streams(media_id, view_id), k.timers(media_id)],
            [lease_verifier, stream_id, sent, self.lease.idle * 1000, int(release), view_id],
        )

    async def end(self, media_id: str, view_id: str, lease_verifier: str) -> bool | None:
        """End a lease; None when unknown, else whether the media is now due for purge."""
        k = self.keys
        result = await self.scripts.run(
            "lease_end",
            [k.media(media_id), k.lease(media_id, view_id), k.timers(media_id)],
            [lease_verifier, k.recipient_prefix(media_id), k.lease_prefix(media_id), view_id],
        )
        if result[0] != "ok":
            return None
        await self.media.schedule(media_id, result[2], result[3])
        return result[1] == "1"
