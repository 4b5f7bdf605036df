"""DELETE /v1/subjects/{subject_id}: a backend erases a person's data (GDPR erasure)."""

from __future__ import annotations

from aiohttp import web

from ephemeral.erasure import erase_subject
from ephemeral.errors import ServiceError
from ephemeral.meta import RECIPIENT_RE
from ephemeral.web_keys import services


async def erase(request: web.Request) -> web.Response:
    """Backend only (a sender JWT gets 403); 204 every time, also for an unknown person."""
    svc = services(request)
    backend = svc.auth.backend(request)
    subject = request.match_info["subject_id"]
    if not RECIPIENT_RE.match(subject):
        raise ServiceError(
            422,
            "invalid-field",
            "a person id is 1-128 characters of A-Z a-z 0-9 . _ : @ -",
            errors=[{"pointer": "/subject_id", "code": "invalid-field", "detail": "bad id"}],
        )
    await erase_subject(svc, backend.tenant, subject)
    return web.Response(status=204)
