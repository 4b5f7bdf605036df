"""Two tenants for the multi-tenant tests: keys, tokens and a polling helper."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from aiohttp.test_utils import TestClient

from ephemeral.auth import Authenticator
from ephemeral.config import Settings
from ephemeral.tenancy import new_service_key, service_key_hash
from ephemeral.tenant_config import TenantSettings
from tests.fixtures.core import jpeg_bytes, multipart

KEY_A = "tenant-a-secret-key-that-is-long-enough-0123"
KEY_B = "tenant-b-secret-key-that-is-long-enough-4567"
# Generated once per test run: two keys for A (a rotation in progress), one for B.
A1, A2, B1 = new_service_key(), new_service_key(), new_service_key()


def two_tenants(settings: Settings, b_receipts: str = "full") -> Settings:
    a = TenantSettings(
        id="a",
        service_key_hashes=(service_key_hash(A1), service_key_hash(A2)),
        jwt_issuer="https://auth.a.example",
        jwt_key=KEY_A,
    )
    b = TenantSettings(
        id="b",
        service_key_hashes=(service_key_hash(B1),),
        jwt_issuer="https://auth.b.example",
        jwt_key=KEY_B,
        receipts_to_sender=b_receipts,  # type: ignore[arg-type]
        max_recipients=3,
    )
    return dataclasses.replace(settings, tenants=(a, b))


def jwt_for(settings: Settings, tenant: str, sub: str) -> dict[str, str]:
    token = Authenticator(settings).mint(sub, tenant=tenant)
    return {"Authorization": f"Bearer {token}"}


def key(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def create(
    client: TestClient[Any, Any], headers: dict[str, str], meta: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post("/v1/media", data=multipart(meta, jpeg_bytes()), headers=headers)
    assert response.status == 202, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def ready(
    client: TestClient[Any, Any], headers: dict[str, str], media_id: str, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/v1/media/{media_id}", headers=headers)
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        if body["state"] == "ready":
            return body
        assert time.monotonic() < deadline, f"media stayed {body['state']}"
        await asyncio.sleep(0.05)
