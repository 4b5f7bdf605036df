"""Video and voice notes in the browser: played on the lease cookie, kept alive while paused."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from ephemeral.config import Settings
from tests.browser.conftest import Send, Site, StartSite, Tab
from tests.browser.test_viewer import lease_is_ended
from tests.fixtures.core import upload, wait_state

pytest.importorskip("tests.fixtures.clips", reason="video and voice clips land with the AV work")


async def test_a_paused_video_keeps_its_lease_until_closed(
    start_site: StartSite, settings: Settings, tab: Tab, clips: dict[str, Path]
) -> None:
    # A 2 s idle lease: without the page's keepalive beat it would end while paused.
    short = dataclasses.replace(settings, lease=dataclasses.replace(settings.lease, idle=2))
    site = await start_site(short)
    created = await upload(site.client, short, {"recipients": ["bob"]}, clips["short"].read_bytes())
    await wait_state(site.client, short, created["id"], {"ready"})
    lookup, secret = created["recipients"][0]["token"].split(".")
    page = tab.page
    await page.goto(f"{site.base}/v/{lookup}#{secret}")
    assert await tab.state("ready") == "Video — view once"
    async with page.expect_response(lambda r: r.url.endswith("/v1/views")) as redeemed:
        await page.click("#view")
    view: dict[str, Any] = await (await redeemed.value).json()
    await tab.state("open")
    # The element's requests carry no Authorization header: the path-scoped cookie is enough.
    await page.wait_for_function("() => document.querySelector('video')?.readyState >= 2")
    video = await page.eval_on_selector(
        "video",
        """v => ({width: v.videoWidth, inline: v.playsInline, pip: v.disablePictureInPicture,
                 list: v.getAttribute('controlslist'), download: v.hasAttribute('download')})""",
    )
    assert video == {
        "width": 320,
        "inline": True,
        "pip": True,
        "list": "nodownload noplaybackrate noremoteplayback",
        "download": False,
    }
    streams = [r for r in site.seen if r.startswith(f"GET /v1/views/{view['view_id']}/content")]
    assert streams and all("Cookie: __Secure-L_" in r for r in streams)
    assert not any("Authorization" in r for r in streams)
    # It plays, seeks, pauses past lease_idle and resumes, all within the one view.
    await page.evaluate(
        "() => { const v = document.querySelector('video'); v.muted = true; v.play(); }"
    )
    await page.wait_for_function("() => document.querySelector('video').currentTime > 0.2")
    await page.evaluate("() => { document.querySelector('video').currentTime = 1.2; }")
    await page.wait_for_function(
        "() => { const v = document.querySelector('video');"
        " return !v.seeking && v.currentTime >= 1.2; }"
    )
    await page.evaluate("() => document.querySelector('video').pause()")
    paused_at = await page.evaluate("() => document.querySelector('video').currentTime")
    await asyncio.sleep(3.5)  # well past lease_idle
    assert sum(url.endswith("/keepalive") for url in tab.urls) >= 2
    alive = await site.client.post(
        f"/v1/views/{view['view_id']}/keepalive",
        headers={"Authorization": f"Lease {view['lease']}"},
    )
    assert alive.status == 200
    await page.evaluate(
        "() => { const v = document.querySelector('video'); v.currentTime = 0.1; v.play(); }"
    )
    await page.wait_for_function(
        "() => { const v = document.querySelector('video');"
        " return !v.paused && v.currentTime > 0.3; }"
    )
    assert paused_at >= 1.2
    await page.click("#close")
    assert await tab.state("gone") == "Viewed"
    await lease_is_ended(site, view)


async def test_a_voice_note_plays_in_an_audio_element(
    site: Site, send: Send, tab: Tab, clips: dict[str, Path]
) -> None:
    sent = await send(clips["voice"].read_bytes())
    await tab.page.goto(sent.link(site))
    assert await tab.state("ready") == "Voice note — view once"
    await tab.page.click("#view")
    await tab.state("open")
    await tab.page.wait_for_function("() => document.querySelector('audio')?.readyState >= 1")
    assert await tab.page.eval_on_selector("audio", "a => a.duration") > 2
