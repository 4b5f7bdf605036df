"""The viewer in a real browser: peek, view once, every state it can show, and no leaked secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from typing import Any

import pytest
from PIL import Image, ImageDraw
from playwright.async_api import expect

from ephemeral.crypto.keys import random_id
from ephemeral.web_keys import SERVICES
from tests.api.helpers import member, status
from tests.browser.conftest import ARTIFACTS, Send, Site, StartSite, Tab
from tests.fixtures.core import auth, upload
from workers.runtime import running_worker

XSS_CAPTION = "<img src=x onerror=alert(1)>"


def postcard() -> bytes:
    """A small, flat-coloured photo: it looks like a picture and keeps screenshots small."""
    image = Image.new("RGB", (480, 320), (122, 178, 221))
    draw = ImageDraw.Draw(image)
    draw.ellipse((330, 40, 410, 120), fill=(255, 214, 102))
    draw.polygon(
        [(0, 320), (0, 220), (160, 150), (300, 230), (480, 170), (480, 320)], (70, 130, 80)
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


async def test_photo_is_shown_once_and_the_secret_never_leaves_the_fragment(
    site: Site, send: Send, tab: Tab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    sent = await send(postcard(), caption=XSS_CAPTION, capture="block")
    page = tab.page
    await page.goto(sent.link(site))
    assert await tab.state("ready") == "Photo — view once"
    assert await page.evaluate("location.hash") == ""
    assert await page.evaluate("location.href") == f"{site.base}/v/{sent.lookup}"
    assert await page.evaluate(f"sessionStorage.getItem('eph:{sent.lookup}')") == sent.token
    await tab.shoot("ready")

    async with page.expect_response(lambda r: r.url.endswith("/v1/views")) as redeemed:
        await page.keyboard.press("Tab")  # the keyboard path: Tab to View, Enter
        assert await page.evaluate("document.activeElement.id") == "view"
        await page.keyboard.press("Enter")
    view: dict[str, Any] = await (await redeemed.value).json()
    assert await tab.state("open") == "Photo"
    # Functions, not expressions: polling an expression needs eval, which the CSP forbids.
    await page.wait_for_function("() => document.querySelector('#media img')?.naturalWidth > 0")
    assert await page.eval_on_selector("#media img", "i => i.src.startsWith('blob:')")
    assert await page.inner_text("#caption") == XSS_CAPTION
    assert await page.locator("img").count() == 1  # the caption made no element
    assert await page.is_visible("#notice")  # capture: block is shown, not enforced
    assert await page.inner_text("#timer") in ("Closes in 10:00", "Closes in 9:59")
    await tab.shoot("open")
    await page.click("#report")
    await expect(page.locator("#status")).to_have_text("Reported. Thank you.")
    await page.keyboard.press("PrintScreen")  # best effort: told to the sender once
    await until_screenshot_counted(site, sent.media_id)

    await page.reload()  # pagehide closes the view; the reload knows it was viewed
    assert await tab.state("gone") == "Viewed"
    assert "already been viewed" in await page.inner_text("#status")
    await tab.shoot("viewed")
    assert tab.dialogs == [] and tab.console == []  # no CSP violation, no script error
    assert await page.evaluate(f"sessionStorage.getItem('eph:{sent.lookup}')") is None

    row = member(await status(site.client, site.settings, sent.media_id), "bob")
    assert row["status"] == "opened" and row["views_left"] == 0
    await lease_is_ended(site, view)

    assert tab.urls and all(sent.secret not in url for url in tab.urls)
    assert all(sent.secret not in header for header in tab.headers)  # no Referer either
    assert all(sent.secret not in line for line in site.seen)  # what reached the server
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any("/v/{lookup}" in line for line in access)
    assert all(sent.secret not in line and sent.lookup not in line for line in access)


async def test_close_ends_the_view_and_the_link_can_replay(
    site: Site, send: Send, tab: Tab
) -> None:
    sent = await send(views=2)
    page = tab.page
    await page.goto(sent.link(site))
    assert await tab.state("ready") == "Photo — 1 replay left"
    async with page.expect_response(lambda r: r.url.endswith("/v1/views")) as redeemed:
        await page.click("#view")
    view: dict[str, Any] = await (await redeemed.value).json()
    await tab.state("open")
    await page.click("#close")
    assert await tab.state("gone") == "Closed"
    assert await page.evaluate("document.activeElement.id") == "title"
    assert await page.locator("#media > *").count() == 0
    await lease_is_ended(site, view)
    await page.reload()  # the token is gone from storage; how it ended is remembered
    assert await tab.state("gone") == "Closed"
    await page.goto(sent.link(site))  # the link itself still holds its replay
    assert await tab.state("ready") == "Photo — view once"
    row = member(await status(site.client, site.settings, sent.media_id), "bob")
    assert row["status"] == "opened" and row["views_left"] == 1


async def until_screenshot_counted(site: Site, media_id: str) -> None:
    deadline = time.monotonic() + 3
    while member(await status(site.client, site.settings, media_id), "bob")["screenshot_count"] < 1:
        assert time.monotonic() < deadline, "the PrintScreen key was not reported"
        await asyncio.sleep(0.1)


async def lease_is_ended(site: Site, view: dict[str, Any]) -> None:
    """The keepalive DELETE sent from pagehide ended the lease (it may land just after)."""
    url = f"/v1/views/{view['view_id']}/content"
    deadline = time.monotonic() + 3
    while True:
        response = await site.client.get(url, headers={"Authorization": f"Lease {view['lease']}"})
        if response.status == 410 or time.monotonic() > deadline:
            assert response.status == 410
            return
        await asyncio.sleep(0.1)


async def test_unknown_and_incomplete_links(site: Site, tab: Tab) -> None:
    await tab.page.goto(f"{site.base}/v/{random_id(16)}#{random_id(32)}")
    assert await tab.state("unknown") == "Invalid link"
    await tab.shoot("unknown")
    await tab.page.goto(f"{site.base}/v/{random_id(16)}")  # the fragment got lost on the way
    assert await tab.state("unknown") == "Invalid link"
    assert not any("/v1/views" in url for url in tab.urls[-3:])


async def test_expired_and_unsent_links(site: Site, send: Send, tab: Tab) -> None:
    expired = await send(expires_in=1, ready=False)  # it may expire before it is ready
    unsent = await send()
    response = await site.client.delete(f"/v1/media/{unsent.media_id}", headers=auth(site.settings))
    assert response.status == 204
    await asyncio.sleep(1.1)
    await tab.page.goto(expired.link(site))
    assert await tab.state("gone") == "Expired"
    await tab.shoot("expired")
    await tab.page.goto(unsent.link(site))
    assert await tab.state("gone") == "Unsent"
    await tab.shoot("revoked")


async def test_account_mode_says_open_it_in_the_app(site: Site, send: Send, tab: Tab) -> None:
    sent = await send(recipient_auth="account")
    await tab.page.goto(sent.link(site))
    assert await tab.state("app-only") == "Open this in the app"
    await tab.shoot("app-only")
    row = member(await status(site.client, site.settings, sent.media_id), "bob")
    assert row["status"] == "sent" and row["views_left"] == 1


async def test_processing_then_ready_without_a_reload(
    start_site: StartSite, settings: Any, tab: Tab
) -> None:
    site = await start_site(settings, worker=False)  # nothing processes the upload yet
    created = await upload(site.client, settings, {"recipients": ["bob"]}, postcard())
    token = created["recipients"][0]["token"]
    lookup, secret = token.split(".")
    await tab.page.goto(f"{site.base}/v/{lookup}#{secret}")
    assert await tab.state("processing") == "Almost ready"
    await tab.shoot("processing")
    async with running_worker(site.app[SERVICES]):  # the page retries by itself, with backoff
        assert await tab.state("ready", timeout=20_000) == "Photo — view once"


async def test_page_weight_and_paint_times(site: Site, send: Send, tab: Tab) -> None:
    sent = await send()
    await tab.page.goto(sent.link(site))
    await tab.state("ready")
    first = await tab.page.evaluate(PERFORMANCE)
    await tab.page.goto(f"{site.base}/v/{random_id(16)}")  # a second page: assets from cache
    await tab.state("unknown")
    second = await tab.page.evaluate(PERFORMANCE)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "metrics.json").write_text(
        json.dumps({"first": first, "second": second}, indent=2)
    )
    encoded = first["html"]["encoded"] + sum(a["encoded"] for a in first["assets"])
    assert len(first["assets"]) == 2 and encoded < 8192, first
    assert all(a["transfer"] == 0 for a in second["assets"]), second  # immutable, hashed names
    assert first["paint"].get("first-contentful-paint", 0) > 0, first


PERFORMANCE = """() => {
  const size = (e, name) => ({name: name || new URL(e.name).pathname, transfer: e.transferSize,
    encoded: e.encodedBodySize, decoded: e.decodedBodySize});
  const nav = performance.getEntriesByType('navigation')[0];
  const entries = (type) => performance.getEntriesByType(type);
  const assets = entries('resource').filter(e => e.name.includes('/v/_/viewer'));
  return {
    html: size(nav, '/v/{lookup}'),
    assets: assets.map(e => size(e)),
    paint: Object.fromEntries(entries('paint').map(p => [p.name, p.startTime])),
    dom_content_loaded: nav.domContentLoadedEventEnd,
  };
}"""
