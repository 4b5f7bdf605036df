"""Validation of the `meta` of a create: every problem reported at once, with JSON pointers."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from ephemeral.config import LimitSettings
from ephemeral.errors import FieldErrors

RECIPIENT_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
KNOWN = {
    "recipients",
    "views",
    "expires_in",
    "replay_window",
    "caption",
    "recipient_auth",
    "capture",
    "client_ref",
    "on_behalf_of",
    "size",
}


@dataclass(frozen=True)
class Meta:
    recipients: list[str]
    views: int
    expires_in: int
    replay_window: int
    caption: str
    recipient_auth: str
    capture: str
    client_ref: str


def _int_field(
    meta: dict[str, Any], name: str, default: int, low: int, high: int, errors: FieldErrors
) -> int:
    value = meta.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(f"/{name}", f"{name} must be an integer")
        return default
    if not low <= value <= high:
        errors.add(f"/{name}", f"{name} must be between {low} and {high}")
    return value


def _choice(meta: dict[str, Any], name: str, options: tuple[str, ...], errors: FieldErrors) -> str:
    value = meta.get(name, options[0])
    if value not in options:
        errors.add(f"/{name}", f"{name} must be one of {', '.join(options)}")
        return options[0]
    return str(value)


def _recipients(
    meta: dict[str, Any], limits: LimitSettings, sender: str, errors: FieldErrors
) -> list[str]:
    value = meta.get("recipients")
    if not isinstance(value, list) or not value:
        errors.add("/recipients", "recipients must be a non-empty array of recipient ids")
        return []
    if len(value) > limits.max_recipients:
        errors.add("/recipients", f"at most {limits.max_recipients} recipients")
    seen: set[str] = set()
    for index, rid in enumerate(value):
        pointer = f"/recipients/{index}"
        if not isinstance(rid, str) or not RECIPIENT_RE.match(rid):
            errors.add(pointer, "a recipient id is 1-128 characters of A-Z a-z 0-9 . _ : @ -")
        elif rid in seen:
            errors.add(pointer, f"duplicate recipient {rid!r}")
        elif rid == sender:
            errors.add(pointer, "the sender cannot be a recipient of their own media")
        else:
            seen.add(rid)
    return [r for r in value if isinstance(r, str)]


def parse_meta(raw: Any, limits: LimitSettings, sender: str) -> Meta:
    errors = FieldErrors()
    if not isinstance(raw, dict):
        errors.add("", "meta must be a JSON object")
        errors.raise_if_any()
    meta: dict[str, Any] = raw
    for name in sorted(set(meta) - KNOWN):
        errors.add(f"/{name}", f"unknown field {name!r}")
    if "on_behalf_of" in meta:
        errors.add("/on_behalf_of", "on_behalf_of is for backend service keys only")
    recipients = _recipients(meta, limits, sender, errors)
    views = _int_field(meta, "views", 1, 1, limits.max_views, errors)
    expires_in = _int_field(
        meta, "expires_in", limits.expires_default, limits.expires_min, limits.expires_max, errors
    )
    replay_window = _int_field(
        meta, "replay_window", limits.replay_window, limits.expires_min, limits.expires_max, errors
    )
    caption = meta.get("caption") or ""
    if not isinstance(caption, str):
        errors.add("/caption", "caption must be a string")
        caption = ""
    caption = unicodedata.normalize("NFC", caption)
    if len(caption) > limits.caption_max:
        errors.add("/caption", f"caption is at most {limits.caption_max} characters")
    client_ref = meta.get("client_ref") or ""
    if not isinstance(client_ref, str) or len(client_ref) > limits.client_ref_max:
        errors.add("/client_ref", f"client_ref is a string of at most {limits.client_ref_max}")
        client_ref = ""
    recipient_auth = _choice(meta, "recipient_auth", ("link", "account"), errors)
    capture = _choice(meta, "capture", ("notify", "block"), errors)
    errors.raise_if_any()
    return Meta(
        recipients, views, expires_in, replay_window, caption, recipient_auth, capture, client_ref
    )


def parse_upload_size(raw: Any, limits: LimitSettings) -> tuple[int, FieldErrors]:
    """`size` of a two-step create: required, 1..the largest kind's cap; the kind's own cap is
    checked again once the first bytes tell the kind. Problems are returned, to be reported
    with those of parse_meta."""
    errors = FieldErrors()
    largest = max(limits.max_image_bytes, limits.max_video_bytes, limits.max_audio_bytes)
    value = raw.get("size") if isinstance(raw, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add("/size", "size (the upload's byte size) is required for a JSON create")
        return 0, errors
    if not 1 <= value <= largest:
        errors.add("/size", f"size must be between 1 and {largest}")
    return value, errors
