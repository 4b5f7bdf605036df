"""Rendering of stored media and recipient records into the contract's JSON shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

STATUSES = ("sent", "delivered", "opened", "replayed", "expired", "revoked", "failed")
TERMINAL = frozenset({"expired", "revoked", "failed"})


def iso(ms: str | int | None) -> str | None:
    if ms in (None, ""):
        return None
    stamp = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int(value: str | None) -> int:
    return int(value) if value not in (None, "") else 0


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def counts(media: dict[str, str]) -> dict[str, int]:
    result = {status: _int(media.get(f"c:{status}")) for status in STATUSES}
    result["screenshot"] = _int(media.get("c:screenshot"))
    return result


def render_recipient(rid: str, r: dict[str, str], hide_times: bool = False) -> dict[str, Any]:
    views_left = _int(r.get("vl"))
    status = r.get("st", "sent")
    replay_open = views_left > 0 and status not in TERMINAL and r.get("rxp")

    def at(field: str) -> str | None:
        return None if hide_times else iso(r.get(field))

    return {
        "id": rid,
        "status": status,
        "views_used": _int(r.get("vu")),
        "views_left": views_left,
        "delivered_at": at("dat"),
        "opened_at": at("oat"),
        "replayed_at": at("rat"),
        "replay_expires_at": at("rxp") if replay_open else None,
        "screenshot_count": _int(r.get("sc")),
        "first_screenshot_at": at("fss"),
        "last_screenshot_at": at("lss"),
        "link_previewed_at": at("lpa"),
        "expired_at": at("xat"),
        "revoked_at": at("vat"),
        "revoked_reason": r.get("vr") or None,
    }


def render_media(media_id: str, m: dict[str, str]) -> dict[str, Any]:
    error = None
    if m.get("error"):
        error = {"code": m["error"], "detail": m.get("error_detail", "")}
    return {
        "id": media_id,
        "state": m.get("state"),
        "kind": m.get("kind") or None,
        "views": _int(m.get("views")),
        "duration": _float(m.get("duration")),
        "width": _int(m.get("width")) or None,
        "height": _int(m.get("height")) or None,
        "client_ref": m.get("client_ref") or None,
        "recipient_auth": m.get("rauth") or "link",
        "capture": m.get("capture") or "notify",
        "created_at": iso(m.get("created")),
        "expires_at": iso(m.get("expires")),
        "ready_at": iso(m.get("ready_at")),
        "revoked_at": iso(m.get("revoked_at")),
        "purged_at": iso(m.get("purged_at")),
        "error": error,
        "counts": counts(m),
    }
