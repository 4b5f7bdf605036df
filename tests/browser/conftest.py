"""Browser tests: Debian's Chromium driven by Playwright against the app on a real socket."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import (
    Browser,
    BrowserContext,
    Dialog,
    FloatRect,
    Page,
    Request,
    ViewportSize,
    async_playwright,
)
from pytest_asyncio import is_async_test

from ephemeral.app import create_app
from ephemeral.config import Settings
from ephemeral.middleware import AccessLogger
from ephemeral.viewer import setup_viewer
from tests.fixtures.core import upload, wait_state
from workers.runtime import running_worker

CHROMIUM = os.environ.get("EPHEMERAL_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
DOC_SHOTS = Path(__file__).parents[2] / "docs" / "screenshots"
PHONE: ViewportSize = {"width": 390, "height": 780}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Async tests here share the session's loop: the browser and Playwright live on it."""
    here = Path(__file__).parent
    for item in items:
        if is_async_test(item) and here in Path(item.path).parents:
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


@dataclass
class Site:
    """One app on 127.0.0.1, reached by the browser as http://localhost so Secure cookies work."""

    client: TestClient[Any, Any]
    settings: Settings
    app: web.Application
    seen: list[str] = field(default_factory=list)  # each request's line and headers, server side

    @property
    def base(self) -> str:
        return f"http://localhost:{self.client.port}"


@dataclass
class Sent:
    media_id: str
    token: str

    @property
    def lookup(self) -> str:
        return self.token.split(".")[0]

    @property
    def secret(self) -> str:
        return self.token.split(".")[1]

    def link(self, site: Site) -> str:
        return f"{site.base}/v/{self.lookup}#{self.secret}"


@dataclass
class Tab:
    """A page in a fresh browser context, with every request URL and dialog it produced."""

    page: Page
    urls: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # errors and CSP reports land here

    async def state(self, state: str, timeout: float = 10_000) -> str:
        """Wait for the viewer to reach `state`; returns its heading."""
        await self.page.wait_for_selector(f'main[data-state="{state}"]', timeout=timeout)
        return await self.page.inner_text("#title")

    async def shoot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        box = await self.page.locator("main").bounding_box()
        assert box is not None
        # The card and a margin, not the empty viewport below it: smaller pictures for the README.
        clip: FloatRect = {"x": 0, "y": 0, "width": PHONE["width"], "height": 0}
        clip["height"] = min(PHONE["height"], box["y"] + box["height"] + 16)
        await self.page.screenshot(path=str(path), clip=clip)
        if os.environ.get("EPHEMERAL_DOC_SCREENSHOTS") == "1":  # refreshes the README's pictures
            DOC_SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOC_SHOTS / path.name)


def viewer_registered(app: web.Application) -> bool:
    return any(r.canonical == "/v/{lookup}" for r in app.router.resources())


SEEN = web.AppKey("test_seen", list)


async def _record(request: web.Request, response: web.StreamResponse) -> None:
    seen: list[str] = request.app[SEEN]
    headers = "".join(f"\n{k}: {v}" for k, v in request.headers.items())
    seen.append(f"{request.method} {request.raw_path}{headers}")


StartSite = Callable[..., Awaitable[Site]]


@pytest_asyncio.fixture(loop_scope="session")
async def start_site() -> AsyncIterator[StartSite]:
    """Starts apps on this test's settings; the app is served as `make_client` serves it."""
    clients: list[TestClient[Any, Any]] = []

    async def start(settings: Settings, worker: bool = True) -> Site:
        app = create_app(settings, background=[running_worker] if worker else [])
        if not viewer_registered(app):  # until routes.py calls setup_viewer itself
            setup_viewer(app)
        site_seen: list[str] = []
        app[SEEN] = site_seen
        app.on_response_prepare.append(_record)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server(access_log_class=AccessLogger)
        client: TestClient[Any, Any] = TestClient(server)
        await client.start_server()
        clients.append(client)
        return Site(client, settings, app, site_seen)

    yield start
    for client in reversed(clients):
        await client.close()


@pytest_asyncio.fixture(loop_scope="session")
async def site(start_site: StartSite, settings: Settings) -> Site:
    return await start_site(settings)


Send = Callable[..., Awaitable[Sent]]


@pytest_asyncio.fixture(loop_scope="session")
async def send(site: Site) -> Send:
    """Uploads `data` (a photo by default) to one recipient, waits for `ready` unless told not."""

    async def run(data: bytes | None = None, ready: bool = True, **meta: Any) -> Sent:
        meta.setdefault("recipients", ["bob"])
        created = await upload(site.client, site.settings, meta, data)
        if ready:
            await wait_state(site.client, site.settings, created["id"], {"ready"})
        return Sent(created["id"], created["recipients"][0]["token"])

    return run


@dataclass
class Attacker:
    """Another site on loopback (a fulfilled route would count as public and be refused)."""

    server: TestServer
    pages: dict[str, str]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest_asyncio.fixture(loop_scope="session")
async def attacker() -> AsyncIterator[Attacker]:
    pages: dict[str, str] = {}

    async def serve(request: web.Request) -> web.Response:
        return web.Response(
            text=pages.get(request.match_info["name"], ""), content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/{name}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield Attacker(server, pages)
    await server.close()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (make test does)")
    # Playwright's own browser download is never used: Debian's build, a fresh temp profile.
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=FLAGS, headless=True
        )
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport=PHONE, device_scale_factor=1)
    yield ctx
    await ctx.close()


@pytest_asyncio.fixture(loop_scope="session")
async def tab(context: BrowserContext) -> Tab:
    page = await context.new_page()
    opened = Tab(page)

    def on_request(request: Request) -> None:
        opened.urls.append(request.url)
        opened.headers.extend(f"{k}: {v}" for k, v in request.headers.items())

    async def on_dialog(dialog: Dialog) -> None:  # alert() from an injected caption, say
        opened.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("request", on_request)
    page.on("dialog", on_dialog)
    page.on("console", lambda message: opened.console.append(message.text))
    return opened
