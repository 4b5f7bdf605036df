"""The page leaks nothing: same bytes everywhere, previews burn nothing, no framing, no CSRF."""

from __future__ import annotations

import html
import re

import pytest

from ephemeral.crypto.keys import random_id
from ephemeral.middleware import RECIPIENT_HEADERS
from ephemeral.viewer import is_preview_agent
from tests.api.helpers import member, redeemed, status
from tests.browser.conftest import Attacker, Send, Sent, Site, Tab

SLACK = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
TELEGRAM = "TelegramBot (like TwitterBot)"
CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)


@pytest.mark.parametrize(
    ("agent", "preview"),
    [
        (SLACK, True),
        (TELEGRAM, True),
        ("Twitterbot/1.0", True),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
        ("WhatsApp/2.23.20.0 A", True),
        ("Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", True),
        ("Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5", True),
        (
            "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
            True,
        ),
        ("Mozilla/5.0 (X11; Linux x86_64) (KHTML, like Gecko; Google-PageRenderer Google)", True),
        ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.12026; Pro)", True),
        ("Mozilla/4.0 (compatible; ms-office; MSOffice 16)", True),
        ("Microsoft-WebDAV-MiniRedir/10.0.19045", True),
        ("Mozilla/5.0 (Macintosh) Version/17.0 Safari/605.1.15 (Applebot/0.1)", True),
        (CHROME, False),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Version/17.5 Safari/604.1", False),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", False),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0.0.0 Safari/537.36 Edg/126", False),
        ("", False),
    ],
)
def test_preview_agents(agent: str, preview: bool) -> None:
    assert is_preview_agent(agent) is preview


async def page_bytes(site: Site, lookup: str, agent: str = CHROME) -> bytes:
    response = await site.client.get(f"/v/{lookup}", headers={"User-Agent": agent})
    assert response.status == 200
    return await response.read()


async def untouched(site: Site, sent: Sent) -> None:
    """Nothing consumed, nothing delivered: then a peek still offers the one view."""
    row = member(await status(site.client, site.settings, sent.media_id), "bob")
    assert row["status"] == "sent" and row["views_used"] == 0 and row["views_left"] == 1
    peek = await site.client.post("/v1/views/peek", json={"token": sent.token})
    body = await peek.json()
    assert body["state"] == "ready" and body["views_left"] == 1


async def test_previews_and_head_consume_nothing(site: Site, send: Send) -> None:
    sent = await send()
    fresh = await page_bytes(site, sent.lookup)
    assert await page_bytes(site, sent.lookup, SLACK) == fresh
    assert await page_bytes(site, sent.lookup, TELEGRAM) == fresh
    head = await site.client.head(f"/v/{sent.lookup}")
    assert head.status == 200 and head.headers["Content-Type"] == "text/html; charset=utf-8"
    await untouched(site, sent)


async def test_previews_set_link_previewed_at_once(site: Site, send: Send) -> None:
    sent, browsed, headed = await send(), await send(), await send()
    await page_bytes(site, browsed.lookup)  # a browser's GET is not a preview
    assert (await site.client.head(f"/v/{headed.lookup}")).status == 200
    assert member(await status(site.client, site.settings, headed.media_id), "bob")[
        "link_previewed_at"
    ]
    await page_bytes(site, sent.lookup, SLACK)
    first = member(await status(site.client, site.settings, sent.media_id), "bob")
    assert first["link_previewed_at"]
    await page_bytes(site, sent.lookup, TELEGRAM)
    assert (await site.client.head(f"/v/{sent.lookup}")).status == 200
    again = member(await status(site.client, site.settings, sent.media_id), "bob")
    assert again["link_previewed_at"] == first["link_previewed_at"] and again["status"] == "sent"
    other = member(await status(site.client, site.settings, browsed.media_id), "bob")
    assert other["link_previewed_at"] is None
    assert (await site.client.head(f"/v/{random_id(16)}")).status == 200  # unknown: no-op


async def test_the_page_is_the_same_for_every_lookup(site: Site, send: Send) -> None:
    fresh, viewed = await send(), await send()
    await redeemed(site.client, viewed.token)
    pages = []
    for lookup in (fresh.lookup, viewed.lookup, random_id(16)):
        response = await site.client.get(f"/v/{lookup}")
        kept = ("Content-Type", "Content-Length", "Cache-Control", "Content-Security-Policy")
        pages.append((await response.read(), [response.headers.get(h) for h in kept]))
    assert pages[0] == pages[1] == pages[2]
    assert (await site.client.get("/v/tooShort")).status == 404
    assert (await site.client.get(f"/v/{random_id(16)}x")).status == 404


async def test_headers_csp_and_asset_caching(site: Site) -> None:
    response = await site.client.get(f"/v/{random_id(16)}")
    page = await response.text()
    for name, value in RECIPIENT_HEADERS.items():
        assert response.headers[name] == value
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert '<meta name="referrer" content="no-referrer">' in page
    assert '<meta name="robots" content="noindex, nofollow">' in page
    assert not re.search(r"og:|twitter:|<style|style=|<script>|\son\w+=", page)
    assets = re.findall(r'(?:src|href)="(/v/_/[^"]+)"', page)
    assert len(assets) == 3
    for url in assets:
        asset = await site.client.get(url, auto_decompress=False)
        assert asset.status == 200 and asset.headers["Content-Encoding"] == "gzip"
        for name, value in RECIPIENT_HEADERS.items():
            assert asset.headers[name] == value
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        etag = asset.headers["ETag"]
        cached = await site.client.get(url, headers={"If-None-Match": etag})
        assert cached.status == 304 and cached.headers["ETag"] == etag
        plain = await site.client.get(url.split(".")[0] + "." + url.rsplit(".", 1)[1])
        assert plain.status == 200 and plain.headers["Cache-Control"] == "public, max-age=300"
        assert await plain.read() == await (await site.client.get(url)).read()
    missing = await site.client.get("/v/_/nothing.js")
    assert missing.status == 404 and "frame-ancestors" in missing.headers["Content-Security-Policy"]


async def test_the_page_cannot_be_framed(
    site: Site, send: Send, tab: Tab, attacker: Attacker
) -> None:
    sent = await send()
    target = f"{site.base}/v/{sent.lookup}"
    attacker.pages["frame"] = f'<iframe src="{target}#{sent.secret}"></iframe>'
    async with tab.page.expect_response(lambda r: r.url.startswith(target)) as framed:
        await tab.page.goto(f"{attacker.base}/frame")
    response = await framed.value
    assert "frame-ancestors 'none'" in (await response.all_headers())["content-security-policy"]
    await tab.page.wait_for_timeout(300)
    assert not any("/v/_/" in url or "/v1/" in url for url in tab.urls)  # no script ran in it
    child = tab.page.frames[1]
    assert not child.url.startswith(site.base)
    assert any("frame-ancestors" in message for message in tab.console), tab.console
    await untouched(site, sent)


@pytest.mark.parametrize("enctype", ["text/plain", "application/x-www-form-urlencoded"])
async def test_cross_site_form_posts_are_refused(
    site: Site, send: Send, tab: Tab, attacker: Attacker, enctype: str
) -> None:
    sent = await send()
    # The classic JSON-over-text/plain trick: the body reads {"token": "...", "x": "="}.
    name = html.escape(f'{{"token": "{sent.token}", "x": "')
    form = (
        f'<form method="post" action="{site.base}/v1/views" enctype="{enctype}">'
        f'<input name="{name}" value="&quot;}}"></form>'
        "<script>document.forms[0].submit()</script>"
    )
    attacker.pages["csrf"] = form
    async with tab.page.expect_response(lambda r: r.url == f"{site.base}/v1/views") as answer:
        await tab.page.goto(f"{attacker.base}/csrf")
    response = await answer.value
    assert response.request.method == "POST" and response.status == 415
    assert sent.token in (response.request.post_data or "")  # the attack really carried it
    await untouched(site, sent)
