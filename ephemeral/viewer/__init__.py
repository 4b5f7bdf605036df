"""The recipient viewer: one static page for every link, its assets, and link-preview hints."""

from __future__ import annotations

from aiohttp import web

from ephemeral.abuse.http import per_address
from ephemeral.viewer.page import PREVIEW_AGENTS, asset, is_preview_agent, viewer_page

__all__ = ["PREVIEW_AGENTS", "is_preview_agent", "setup_viewer"]

# A lookup is exactly 22 base64url characters, so "/v/_/..." can never be taken for a page.
PAGE_ROUTE = "/v/{lookup:[A-Za-z0-9_-]{22}}"
ASSET_ROUTE = "/v/_/{name}"


def setup_viewer(app: web.Application) -> None:
    """Register GET/HEAD /v/{lookup} and the static assets; calling it twice changes nothing."""
    if any(r.canonical in ("/v/{lookup}", ASSET_ROUTE) for r in app.router.resources()):
        return
    # HEAD too: a HEAD is a preview, never a view
    app.router.add_get(PAGE_ROUTE, per_address(viewer_page))
    app.router.add_get(ASSET_ROUTE, per_address(asset))
