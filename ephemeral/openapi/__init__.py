"""The contract as OpenAPI 3.1: spec.yaml, served as /openapi.json and rendered as /docs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from ephemeral.openapi.docs import STYLE_HASH, render_docs

SPEC_PATH = Path(__file__).with_name("spec.yaml")
# The page runs no script and loads nothing: only its own inline style, pinned by hash.
DOCS_CSP = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when libyaml is there
    document: dict[str, Any] = yaml.load(path.read_text("utf-8"), Loader=loader)  # noqa: S506
    return document


@dataclass(frozen=True)
class Rendered:
    """One fixed representation, with its strong validator computed once."""

    body: bytes
    content_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Rendered:
        return cls(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:20]}"')

    def respond(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        headers = {**headers, "ETag": self.etag, "Cache-Control": "no-cache"}
        wanted = {
            t.strip().removeprefix("W/")
            for t in request.headers.get("If-None-Match", "").split(",")
        }
        if self.etag in wanted or "*" in wanted:
            return web.Response(status=304, headers=headers)
        return web.Response(body=self.body, headers={**headers, "Content-Type": self.content_type})


# Parsed once at import, like the viewer's assets: a broken spec fails at start, not per request.
SPEC = load_spec()
SPEC_JSON = Rendered.of(json.dumps(SPEC, ensure_ascii=False).encode(), "application/json")
DOCS_HTML = Rendered.of(render_docs(SPEC).encode(), "text/html; charset=utf-8")


async def openapi_json(request: web.Request) -> web.Response:
    return SPEC_JSON.respond(request, {})


async def docs_page(request: web.Request) -> web.Response:
    headers = {
        "Content-Security-Policy": DOCS_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return DOCS_HTML.respond(request, headers)
