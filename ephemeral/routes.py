"""Every route of the API, in one table."""

from __future__ import annotations

from aiohttp import web

from ephemeral import openapi
from ephemeral.handlers import config, content, create, events, media, ops, views
from ephemeral.viewer import setup_viewer


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v1/config", config.config, allow_head=False)
    r.add_post("/v1/media", create.create, expect_handler=create.expect)
    r.add_get("/v1/media", media.list_media, allow_head=False)
    r.add_get("/v1/media/{media_id}", media.status, allow_head=False)
    r.add_get("/v1/media/{media_id}/recipients", media.recipients, allow_head=False)
    r.add_delete("/v1/media/{media_id}", media.unsend)
    r.add_delete("/v1/media/{media_id}/recipients/{recipient_id}", media.revoke)
    r.add_get("/v1/events", events.stream, allow_head=False)
    r.add_post("/v1/events/tickets", events.ticket)
    r.add_post("/v1/views/peek", views.peek)
    r.add_post("/v1/views", views.redeem)
    r.add_get("/v1/views/{view_id}/content", content.content)  # HEAD too
    r.add_post("/v1/views/{view_id}/keepalive", views.keepalive)
    r.add_post("/v1/views/{view_id}/screenshot", views.screenshot)
    r.add_post("/v1/views/{view_id}/report", views.report)
    r.add_delete("/v1/views/{view_id}", views.close)
    r.add_get("/healthz", ops.healthz)
    r.add_get("/readyz", ops.readyz)
    r.add_get("/openapi.json", openapi.openapi_json)
    r.add_get("/docs", openapi.docs_page)
    setup_viewer(app)
