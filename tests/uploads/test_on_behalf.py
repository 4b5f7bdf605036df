"""The recommended integration: the backend creates on behalf of alice and keeps the tokens;
alice's device gets only the upload URL, uploads, and follows the status with her own JWT."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from ephemeral.config import Settings
from tests.api.helpers import problem, redeemed
from tests.api.tenant_helpers import A1, B1, jwt_for, key, two_tenants
from tests.fixtures.core import jpeg_bytes
from tests.uploads.helpers import upload_path


async def seen(response: ClientResponse, log: list[str]) -> ClientResponse:
    """Everything the device was told: status line, headers and body, kept for the check."""
    log.append(f"{response.status} {dict(response.headers)} {await response.text()}")
    return response


async def test_the_sender_device_uploads_and_follows_without_ever_holding_a_token(
    make_client: Any, settings: Settings
) -> None:
    settings = two_tenants(settings)
    client: TestClient[Any, Any] = await make_client(settings)
    photo = jpeg_bytes((96, 64))
    meta = {"recipients": ["bob", "carol"], "on_behalf_of": "alice", "size": len(photo)}
    response = await client.post("/v1/media", json=meta, headers=key(A1))  # the backend
    assert response.status == 201, await response.text()
    created = await response.json()
    media_id, url = created["id"], upload_path(created)
    tokens = {r["id"]: r["token"] for r in created["recipients"]}
    secrets = [*tokens.values(), *(t.split(".")[0] for t in tokens.values())]
    secrets += [t.split(".")[1] for t in tokens.values()]

    # Alice's device: only the upload URL, then her own JWT for everything else.
    device: list[str] = []
    alice = jwt_for(settings, "a", "alice")
    put = await seen(await client.put(url, data=photo), device)
    assert put.status == 202, await put.text()
    for _ in range(300):
        body = await (
            await seen(await client.get(f"/v1/media/{media_id}", headers=alice), device)
        ).json()
        if body["state"] == "ready":
            break
    assert body["state"] == "ready" and body["counts"]["sent"] == 2
    await seen(await client.get(f"/v1/media/{media_id}/recipients", headers=alice), device)
    await seen(await client.get("/v1/media", headers=alice), device)
    await problem(await seen(await client.put(url, data=photo), device), 409, "upload-used")
    assert not [s for s in secrets if any(s in line for line in device)]

    # The recipients (through the backend) view it; alice sees who opened, and when.
    view = await redeemed(client, tokens["bob"])
    assert view["kind"] == "image" and (view["width"], view["height"]) == (96, 64)
    members = (await (await client.get(f"/v1/media/{media_id}", headers=alice)).json())[
        "recipients"
    ]
    bob = next(m for m in members if m["id"] == "bob")
    assert bob["status"] == "opened" and bob["opened_at"]

    # Another tenant's backend, and another sender of alice's tenant: 404, as for any stranger.
    for stranger in (key(B1), jwt_for(settings, "a", "mallory")):
        await problem(await client.get(f"/v1/media/{media_id}", headers=stranger), 404, "not-found")
    # A forwarded token is refused to alice's JWT on the recipient routes, nothing consumed.
    await problem(
        await client.post("/v1/views/peek", json={"token": tokens["carol"]}, headers=alice),
        403,
        "forbidden",
    )
    after = (await (await client.get(f"/v1/media/{media_id}", headers=alice)).json())["recipients"]
    assert next(m for m in after if m["id"] == "carol")["status"] == "sent"
