"""A new media's per-recipient tokens and wrapped DEKs, and its caption, for both creates."""

from __future__ import annotations

from ephemeral.crypto import keys as kc
from ephemeral.meta import Meta
from ephemeral.services import Services
from ephemeral.state.media import NewRecipient


def wrap_recipients(
    svc: Services, meta: Meta, media_id: str, dek: bytes
) -> tuple[list[NewRecipient], list[dict[str, str]]]:
    """One token per recipient; the DEK wrapped under a key derived from each token secret.
    The first list goes to Redis (verifiers, wrapped keys), the second once to the creator."""
    recipients: list[NewRecipient] = []
    links: list[dict[str, str]] = []
    for rid in meta.recipients:
        lookup, secret = kc.new_token()
        wrapped = kc.wrap(
            kc.recipient_wrap_key(secret, media_id, rid), dek, kc.recipient_context(media_id, rid)
        )
        recipients.append(
            NewRecipient(rid, kc.token_verifier(secret, lookup), kc.b64(wrapped), lookup)
        )
        token = kc.format_token(lookup, secret)
        links.append(
            {
                "id": rid,
                "token": token,
                "url": f"{svc.settings.viewer_base_url}/v/{lookup}#{kc.b64(secret)}",
            }
        )
    return recipients, links


def wrap_caption(meta: Meta, media_id: str, dek: bytes) -> str:
    if not meta.caption:
        return ""
    return kc.b64(kc.wrap(dek, meta.caption.encode(), f"caption\x00{media_id}"))
