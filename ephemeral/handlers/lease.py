"""Where a lease secret comes from: the Authorization: Lease header or the path-scoped cookie."""

from __future__ import annotations

import re

from aiohttp import web

LEASE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def lease_cookie_name(view_id: str) -> str:
    return f"__Secure-L_{view_id}"


def read_lease(request: web.Request, view_id: str) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    candidate = value.strip() if scheme.lower() == "lease" else None
    if candidate is None:
        candidate = request.cookies.get(lease_cookie_name(view_id))
    if candidate is None or not LEASE_RE.match(candidate):
        return None
    return candidate
