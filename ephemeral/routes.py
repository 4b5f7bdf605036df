"""Every route of the API, in one table."""

from __future__ import annotations

from aiohttp import web

from ephemeral import openapi, tus
from ephemeral.handlers import (
    config,
    content,
    create,
    events,
    media,
    ops,
    subjects,
    uploads,
    views,
)
from ephemeral.viewer import setup_viewer
from ephemeral.web_keys import SETTINGS


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v1/config", config.config, allow_head=False)
    r.add_post("/v1/media", create.create, expect_handler=create.expect)
    r.add_put("/v1/uploads/{upload_token}", uploads.put, expect_handler=uploads.expect)
    r.add_route("PATCH", "/v1/uploads/{upload_token}", tus.patch, expect_handler=uploads.expect)
    r.add_route("HEAD", "/v1/uploads/{upload_token}", tus.status)
    r.add_route("OPTIONS", "/v1/uploads/{upload_token}", tus.options)
    r.add_delete("/v1/uploads/{upload_token}", tus.terminate)
    r.add_get("/v1/media", media.list_media, allow_head=False)
    r.add_get("/v1/media/{media_id}", media.status, allow_head=False)
    r.add_get("/v1/media/{media_id}/recipients", media.recipients, allow_head=False)
    r.add_delete("/v1/media/{media_id}", media.unsend)
    r.add_delete("/v1/media/{media_id}/recipients/{recipient_id}", media.revoke)
    r.add_delete("/v1/subjects/{subject_id}", subjects.erase)
    r.add_get("/v1/events", events.stream, allow_head=False)
    r.add_post("/v1/events/tickets", events.ticket)
    r.add_post("/v1/views/peek", views.peek)
    r.add_post("/v1/views", views.redeem)
    r.add_get("/v1/views/{view_id}/content", content.content)  # HEAD too
    r.add_post("/v1/views/{view_id}/keepalive", views.keepalive)
    r.add_post("/v1/views/{view_id}/screenshot", views.screenshot)
    r.add_post("/v1/views/{view_id}/report", views.report)
    r.add_delete("/v1/views/{view_id}", views.close)
    if app[SETTINGS].ops.port is None:  # else they are on the ops listener (cli.py)
        ops.add_routes(r)
    r.add_get("/openapi.json", openapi.openapi_json)
    r.add_get("/docs", openapi.docs_page)
    setup_viewer(app)
