"""Every hostile-corpus file through the real API: a 4xx, `failed` with a contract code, or
`ready` with clean output; never a 5xx, never stuck in processing, nothing leaked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ephemeral.config import Settings
from tests.api.helpers import lease_auth, redeemed
from tests.fixtures.core import auth, multipart, wait_state
from tests.fixtures.corpus import CASES, PASSWD

pytestmark = pytest.mark.slow
FAILURE_CODES = {
    "invalid-media",
    "too-long",
    "too-many-pixels",
    "no-media-stream",
    "processing-failed",
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_corpus_file_through_the_api(
    name: str, corpus: Path, client: TestClient[Any, Any], settings: Settings
) -> None:
    case = CASES[name]
    data = (corpus / name).read_bytes()
    response = await client.post(
        "/v1/media", data=multipart({"recipients": ["bob"]}, data, name), headers=auth(settings)
    )
    assert response.status < 500, await response.text()
    if response.status != 202:
        await response.read()
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert response.status in (413, 415) and "unsupported" in case.expect
        return
    created = await response.json()
    body = await wait_state(client, settings, created["id"], {"ready", "failed"}, timeout=90)
    if body["state"] == "failed":
        assert body["error"]["code"] in FAILURE_CODES and body["error"]["code"] in case.expect
        assert PASSWD.decode() not in body["error"]["detail"]
        return
    assert body["kind"] in case.expect
    view = await redeemed(client, created["recipients"][0]["token"])
    content = await client.get(f"/v1/views/{view['view_id']}/content", headers=lease_auth(view))
    output = await content.read()
    assert len(output) == view["size"] and PASSWD not in output
    for secret in case.secrets:
        assert secret.encode() not in output, secret
