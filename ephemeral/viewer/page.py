"""GET /v/{lookup}: the same bytes for every lookup, its static assets, link-preview detection."""

from __future__ import annotations

import gzip
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from redis.exceptions import RedisError

from ephemeral.errors import not_found
from ephemeral.web_keys import services

log = logging.getLogger("ephemeral.viewer")
STATIC = Path(__file__).parent / "static"
ASSET_PREFIX = "/v/_/"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=300"  # the unhashed names, for tools and old bookmarks

# Agents that fetch a link to draw a preview card. Matched case-insensitively as substrings: a
# false positive only sets an unauthenticated hint, and the page is the same bytes either way.
PREVIEW_AGENTS = (
    "slackbot",
    "slack-imgproxy",
    "twitterbot",
    "facebookexternalhit",
    "facebot",
    "telegrambot",
    "whatsapp",
    "discordbot",
    "skypeuripreview",
    "linkedinbot",
    "google-pagerenderer",
    "microsoft office",
    "msoffice",
    "ms-office",
    "microsoft-",
    "bingpreview",
    "applebot",
    "embedly",
    "iframely",
    "redditbot",
    "pinterestbot",
    "vkshare",
)


def is_preview_agent(user_agent: str) -> bool:
    agent = user_agent.lower()
    return any(name in agent for name in PREVIEW_AGENTS)


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes  # precompressed once: these bytes never carry a secret, so no BREACH concern
    content_type: str
    digest: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Asset:
        digest = hashlib.sha256(body).hexdigest()[:16]
        return cls(body, gzip.compress(body, 9, mtime=0), content_type, digest)

    def etag(self, gzipped: bool) -> str:
        """One strong validator per representation: identity and gzip bytes differ."""
        return f'"{self.digest}-gz"' if gzipped else f'"{self.digest}"'


def _load(name: str, content_type: str) -> Asset:
    return Asset.of((STATIC / name).read_bytes(), content_type)


def _hashed(name: str, asset: Asset) -> str:
    stem, _, ext = name.rpartition(".")
    return f"{stem}.{asset.digest}.{ext}"


SCRIPT = _load("viewer.js", "text/javascript; charset=utf-8")
STYLE = _load("viewer.css", "text/css; charset=utf-8")
ICON = _load("icon.svg", "image/svg+xml")  # else browsers ask for /favicon.ico and get a 404
FILES = {"viewer.js": SCRIPT, "viewer.css": STYLE, "icon.svg": ICON}
HASHED = {name: _hashed(name, item) for name, item in FILES.items()}
PAGE = Asset.of(
    (STATIC / "viewer.html")
    .read_text("utf-8")
    .replace("{{css}}", ASSET_PREFIX + HASHED["viewer.css"])
    .replace("{{js}}", ASSET_PREFIX + HASHED["viewer.js"])
    .replace("{{icon}}", ASSET_PREFIX + HASHED["icon.svg"])
    .encode(),
    "text/html; charset=utf-8",
)
ASSETS: dict[str, tuple[Asset, str]] = {
    **{HASHED[name]: (item, IMMUTABLE) for name, item in FILES.items()},
    **{name: (item, REVALIDATE) for name, item in FILES.items()},
}


def accepts_gzip(header: str) -> bool:
    for item in header.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() == "gzip":
            q = params.replace(" ", "").lower().removeprefix("q=")
            try:
                return not q or float(q) > 0
            except ValueError:
                return False
    return False


def _send(
    request: web.Request, asset: Asset, cache_control: str, etag: bool = False
) -> web.Response:
    headers = {"Content-Type": asset.content_type, "Cache-Control": cache_control}
    headers["Vary"] = "Accept-Encoding"
    gzipped = accepts_gzip(request.headers.get("Accept-Encoding", ""))
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    if etag:
        headers["ETag"] = asset.etag(gzipped)
    return web.Response(body=asset.gzipped if gzipped else asset.body, headers=headers)


async def viewer_page(request: web.Request) -> web.Response:
    """No state is read for a normal GET: the page must not tell a fresh link from a dead one."""
    if request.method == "HEAD" or is_preview_agent(request.headers.get("User-Agent", "")):
        await _mark_previewed(request, request.match_info["lookup"])
    return _send(request, PAGE, "no-store")


async def _mark_previewed(request: web.Request, lookup: str) -> None:
    """Sets link_previewed_at once and emits recipient.link_previewed; unknown lookups: no-op."""
    try:
        await services(request).views.mark_previewed(lookup)
    except RedisError as exc:  # a hint is not worth failing the page for
        log.warning("link preview not recorded: %s", type(exc).__name__)


async def asset(request: web.Request) -> web.Response:
    found = ASSETS.get(request.match_info["name"])
    if found is None:
        raise not_found("no such file")
    item, cache_control = found
    wanted = {
        tag.strip().removeprefix("W/")
        for tag in request.headers.get("If-None-Match", "").split(",")
    }
    for tag in (item.etag(False), item.etag(True)):
        if tag in wanted:
            headers = {"ETag": tag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
            return web.Response(status=304, headers=headers)
    return _send(request, item, cache_control, etag=True)
