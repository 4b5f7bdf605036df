"""DELETE /v1/subjects/{subject_id}: a backend erases a person's data (GDPR erasure)."""

from __future__ import annotations

import re

from aiohttp import web

from ephemeral.erasure import erase_subject
from ephemeral.errors import ServiceError
from ephemeral.web_keys import services

# A sender id is a JWT's sub (e.g. "auth0|5f7c…"), wider than a recipient id: any 1-256
# characters but control characters.
SUBJECT_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")


async def erase(request: web.Request) -> web.Response:
    """Backend only (a sender JWT gets 403); 204 every time, also for an unknown person."""
    svc = services(request)
    backend = svc.auth.backend(request)
    subject = request.match_info["subject_id"]
    if not SUBJECT_RE.match(subject):
        raise ServiceError(
            422,
            "invalid-field",
            "a person id is 1-256 characters, no control characters",
            errors=[{"pointer": "/subject_id", "code": "invalid-field", "detail": "bad id"}],
        )
    await erase_subject(svc, backend.tenant, subject)
    return web.Response(status=204)
