"""Small HTTP helpers for the API tests."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from ephemeral.config import Settings
from tests.fixtures.core import auth


async def redeem(client: TestClient[Any, Any], token: str, **extra: Any) -> Any:
    return await client.post("/v1/views", json={"token": token, **extra})


async def redeemed(client: TestClient[Any, Any], token: str, **extra: Any) -> dict[str, Any]:
    response = await redeem(client, token, **extra)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def lease_auth(view: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Lease {view['lease']}"}


async def status(
    client: TestClient[Any, Any], settings: Settings, media_id: str, sub: str = "alice"
) -> dict[str, Any]:
    response = await client.get(f"/v1/media/{media_id}", headers=auth(settings, sub))
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def member(body: dict[str, Any], rid: str) -> dict[str, Any]:
    row: dict[str, Any] = next(r for r in body["recipients"] if r["id"] == rid)
    return row


async def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = await response.json()
    assert body["code"] == code and body["status"] == status
    assert body["type"].endswith("/" + code) and body["instance"]
    return body
