"""Video and voice through the API: playable output, ranges within one lease, lease length."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from ephemeral.config import Settings
from tests.api.helpers import lease_auth, problem, redeemed, status
from tests.fixtures.core import upload, wait_state


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    probed: dict[str, Any] = json.loads(out)
    return probed


async def test_a_video_plays_within_one_view_by_ranges(
    client: TestClient[Any, Any], settings: Settings, clips: dict[str, Path], tmp_path: Path
) -> None:
    created = await upload(client, settings, {"recipients": ["bob"]}, clips["short"].read_bytes())
    assert created["kind"] == "video"
    body = await wait_state(client, settings, created["id"], {"ready"}, timeout=60)
    assert body["kind"] == "video" and 1.5 < body["duration"] < 2.5
    view = await redeemed(client, created["recipients"][0]["token"])
    assert view["mime"] == "video/mp4" and (view["width"], view["height"]) == (320, 240)
    # The lease runs max(600 s, 4 x duration).
    assert view["lease_expires_in"] == max(600, int(4 * view["duration"]))
    url, size = f"/v1/views/{view['view_id']}/content", view["size"]

    async def get(range_: str | None) -> Any:
        headers = lease_auth(view) | ({"Range": range_} if range_ else {})
        return await client.get(url, headers=headers)

    whole = await (await get(None)).read()
    assert len(whole) == size
    probe = await get("bytes=0-1")  # Safari's first request
    assert probe.status == 206 and await probe.read() == whole[:2]
    assert probe.headers["Content-Range"] == f"bytes 0-1/{size}"
    middle = size // 2
    assert (
        await (await get(f"bytes={middle}-{middle + 999}")).read() == whole[middle : middle + 1000]
    )
    assert await (await get("bytes=-4096")).read() == whole[-4096:]
    assert await (await get(f"bytes={size - 10}-")).read() == whole[-10:]
    await problem(await get(f"bytes={size}-"), 416, "range-not-satisfiable")
    stored = tmp_path / "out.mp4"
    stored.write_bytes(whole)
    info = ffprobe(stored)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert video["codec_name"] == "h264" and video["profile"] == "High"
    assert video["pix_fmt"] == "yuv420p" and audio["codec_name"] == "aac"
    assert whole.find(b"moov") < whole.find(b"mdat")  # faststart: playable while it loads
    assert "location" not in json.dumps(info["format"].get("tags", {})).lower()


async def test_a_voice_note_becomes_aac_in_m4a(
    client: TestClient[Any, Any], settings: Settings, clips: dict[str, Path]
) -> None:
    created = await upload(client, settings, {"recipients": ["bob"]}, clips["voice"].read_bytes())
    assert created["kind"] == "audio"
    await wait_state(client, settings, created["id"], {"ready"}, timeout=60)
    body = await status(client, settings, created["id"])
    assert body["kind"] == "audio" and body["width"] is None
    view = await redeemed(client, created["recipients"][0]["token"])
    assert view["mime"] == "audio/mp4" and 2.5 < view["duration"] < 3.5
    data = await (
        await client.get(f"/v1/views/{view['view_id']}/content", headers=lease_auth(view))
    ).read()
    assert data[4:8] == b"ftyp" and len(data) == view["size"]
