"""Who may act on a media, and who owns a new one (`on_behalf_of` for backends)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ephemeral.auth import Backend, Caller, Sender
from ephemeral.config import LimitSettings
from ephemeral.errors import FieldErrors, ServiceError
from ephemeral.meta import RECIPIENT_RE, Meta, parse_meta
from ephemeral.services import Services
from ephemeral.state import typed
from ephemeral.tenancy import Tenants

# Never a recipient id (those have no spaces): the scripts then answer 403, nothing consumed.
ANOTHER_TENANT = " another-tenant"


def may_act_on(caller: Caller, owner: tuple[str, str]) -> bool:
    """A media belongs to (tenant, sender); a backend acts on any media of its own tenant."""
    if isinstance(caller, Backend):
        return owner[0] == caller.tenant
    return owner == (caller.tenant, caller.id)


def hides_times(tenants: Tenants, caller: Caller) -> bool:
    """receipts_to_sender = status_only: a sender's credential sees statuses, never times."""
    return isinstance(caller, Sender) and tenants.status_only(caller.tenant)


def owned_meta(
    tenants: Tenants, fallback: LimitSettings, caller: Caller, raw: Any
) -> tuple[Sender, Meta]:
    """The owner of a new media and its validated meta, every problem reported at once.

    A sender owns what it creates and must not name anyone in `on_behalf_of`; a backend must
    name the sender there (an id of the recipient id syntax, scoped to the backend's tenant).
    """
    limits = tenants.limits(caller.tenant, fallback)
    if isinstance(caller, Sender):
        return caller, parse_meta(raw, limits, caller.id)
    errors = FieldErrors()
    owner = ""
    if isinstance(raw, dict):
        raw = dict(raw)
        value = raw.pop("on_behalf_of", None)
        if value is None:
            errors.add("/on_behalf_of", "a service key creates on_behalf_of a sender id")
        elif not isinstance(value, str) or not RECIPIENT_RE.match(value):
            errors.add("/on_behalf_of", "a sender id is 1-128 characters of A-Z a-z 0-9 . _ : @ -")
        else:
            owner = value
    try:
        meta = parse_meta(raw, limits, owner)
    except ServiceError as exc:
        errors.items.extend(exc.errors or [])
        errors.raise_if_any()
        raise
    errors.raise_if_any()
    return Sender(caller.tenant, owner, caller.expires_at), meta


async def recipient_subject(svc: Services, request: web.Request, media_id: str) -> str:
    """The `sub` a recipient route compares with the recipient id. Ids are scoped by tenant:
    a JWT of another tenant is someone else, whatever its sub says."""
    found = svc.auth.optional_recipient(request)
    if found is None:
        return ""
    tenant, subject = found
    if svc.auth.tenants.single is not None:
        return subject  # one tenant: nothing to compare (and no extra read)
    owner = await typed.hget(svc.redis, svc.keys.media(media_id), "tenant")
    return subject if owner == tenant else ANOTHER_TENANT
