"""Events: from a media's outbox entry to the contract's envelope, and the owner streams."""

from __future__ import annotations

import json
from typing import Any

from ephemeral.state.records import iso

RETENTION_MS = 24 * 3600 * 1000  # SSE resume window, published at /v1/config
SENDER_HIDDEN = frozenset({"recipient.reported"})  # for the messaging backend only


def envelope(media_id: str, media: dict[str, str], entry: dict[str, str]) -> dict[str, Any]:
    """The Standard Webhooks envelope of API.md; never a token, lease or content."""
    views_left = entry.get("views_left", "")
    data: dict[str, Any] = {
        "media_id": media_id,
        "tenant": media.get("tenant", ""),
        "sender": media.get("sender", ""),
        "recipient": entry.get("recipient") or None,
        "status": entry.get("status") or None,
        "views_left": int(views_left) if views_left.lstrip("-").isdigit() else None,
        "seq": int(entry.get("seq", "0")),
        "counts": json.loads(entry.get("counts") or "{}"),
        "client_ref": media.get("client_ref") or None,
        "device": entry.get("device") or None,
    }
    etype = entry.get("type", "")
    if etype == "recipient.screenshot":
        data["kind"] = entry.get("detail") or "screenshot"
    elif etype == "recipient.reported":
        data["reason"] = entry.get("detail") or None
    return {"type": etype, "timestamp": iso(entry.get("ts")), "data": data}
