"""/openapi.json is valid OpenAPI 3.1, says what docs/API.md says, and matches the routes."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

from aiohttp import web
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

from ephemeral.app import create_app
from ephemeral.config import Settings
from ephemeral.events import envelope
from ephemeral.openapi import SPEC, load_spec
from tests.fixtures.core import AppClient

API_MD = Path(__file__).parents[2] / "docs" / "API.md"
METHODS = ("get", "head", "post", "put", "patch", "delete", "options")


def spec_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in METHODS
        if method in item
    }


def app_operations(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, template) of every route; templates drop regexes: /v/{lookup:…} is /v/{lookup}."""
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }


def test_spec_is_valid_openapi_3_1() -> None:
    assert SPEC["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(SPEC).validate()  # raises with the first problem found
    assert load_spec() == SPEC


def test_spec_and_routes_match_in_both_directions(settings: Settings) -> None:
    in_app = app_operations(create_app(settings))
    in_spec = spec_operations(SPEC)
    # aiohttp answers HEAD for every GET; the spec lists HEAD only where it means something
    # (previews, content, tus), so a HEAD beside a documented GET needs no entry of its own.
    implied = {("HEAD", path) for method, path in in_spec if method == "GET"}
    undocumented = in_app - in_spec - implied
    assert not undocumented, f"routes missing from spec.yaml: {sorted(undocumented)}"
    missing = in_spec - in_app
    assert not missing, f"spec.yaml describes routes the app lacks: {sorted(missing)}"


def normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def contract_endpoints() -> set[tuple[str, str]]:
    """Every `METHOD /path` in the Endpoints table of docs/API.md."""
    table = API_MD.read_text().split("## Endpoints", 1)[1].split("\n### ", 1)[0]
    found = set()
    for row in table.splitlines():
        if not row.startswith("| `"):
            continue
        first_cell = row.split("|")[1]
        for method, path in re.findall(r"`([A-Z]+) ([^`?]+)", first_cell):
            found.add((method, normalise(path)))
    return found


def test_every_endpoint_of_the_contract_is_in_the_spec() -> None:
    endpoints = contract_endpoints()
    assert len(endpoints) >= 20, endpoints
    # The contract names the upload URL by its field; the spec by its template.
    endpoints = {(m, "/v1/uploads/{}" if p == "{}" else p) for m, p in endpoints}
    in_spec = {(m, normalise(p)) for m, p in spec_operations(SPEC)}
    assert endpoints - in_spec == set()


def test_every_error_code_and_event_type_of_the_contract_is_in_the_spec() -> None:
    text = API_MD.read_text()
    errors = text.split("## Errors", 1)[1].split("\n## ", 1)[0]
    rows = [row for row in errors.splitlines() if re.match(r"\| \d{3} \|", row)]
    spec_text = str(SPEC)
    statuses = {
        status
        for item in SPEC["paths"].values()
        for method in METHODS
        if method in item
        for status in item[method]["responses"]
    }
    for row in rows:
        status, codes = row.split("|")[1].strip(), row.split("|")[2]
        assert status in statuses, f"no operation answers {status}"
        for code in re.findall(r"`([a-z-]+)`", codes):
            assert code in spec_text, f"{status} {code} is not in spec.yaml"
    events = re.search(r"Types: (.+?)\. Envelope", text, re.S)
    assert events is not None
    types = set(re.findall(r"`([a-z_.]+)`", events.group(1)))
    assert len(types) == 12
    assert set(SPEC["webhooks"]) == types
    assert set(SPEC["components"]["schemas"]["EventType"]["enum"]) == types
    for event in SPEC["webhooks"].values():
        names = {p["$ref"].rsplit("/", 1)[1] for p in event["post"]["parameters"]}
        assert names == {"WebhookId", "WebhookTimestamp", "WebhookSignature"}


def test_headers_and_credentials_of_the_contract_are_described() -> None:
    headers = SPEC["components"]["headers"]
    for name in ("ETag", "IdempotentReplayed", "RetryAfter", "RateLimit", "RateLimitPolicy"):
        assert name in headers
    for name in ("Location", "ContentRange", "LeaseCookie"):
        assert name in headers
    assert SPEC["components"]["parameters"]["IdempotencyKey"]["name"] == "Idempotency-Key"
    schemes = SPEC["components"]["securitySchemes"]
    assert schemes["senderJwt"]["bearerFormat"] == "JWT"
    assert schemes["serviceKey"]["bearerFormat"].startswith("ek_")
    assert schemes["leaseHeader"]["scheme"] == "Lease"
    assert schemes["leaseCookie"]["in"] == "cookie"
    assert schemes["leaseCookie"]["name"].startswith("__Secure-L_")


async def test_served_json_is_the_spec_with_an_etag(
    make_client: AppClient, settings: Settings
) -> None:
    client = await make_client(settings, worker=False)
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == SPEC
    etag = response.headers["ETag"]
    again = await client.get("/openapi.json", headers={"If-None-Match": etag})
    assert again.status == 304 and again.headers["ETag"] == etag
    assert await again.read() == b""


async def test_docs_page_is_self_contained(make_client: AppClient, settings: Settings) -> None:
    client = await make_client(settings, worker=False)
    response = await client.get("/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script" not in csp
    # No script at all, nothing loaded from anywhere: no src=, no stylesheet link.
    assert "<script" not in html and " src=" not in html and "<link" not in html
    assert not re.search(r'href="(?!#|/openapi\.json")', html)
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp  # the one inline style the CSP allows
    for path, item in SPEC["paths"].items():
        assert f"<code>{path}</code>" in html
        for method in METHODS:
            if method in item:
                assert f'id="op-{item[method]["operationId"]}"' in html
    for event in SPEC["webhooks"]:
        assert f"<code>{event}</code>" in html
    for code in ("idempotency-key-in-flight", "lease-ended", "range-not-satisfiable"):
        assert f"<code>{code}</code>" in html  # each problem response names its codes
    for name in SPEC["components"]["schemas"]:
        assert f'id="schema-{name}"' in html
    cached = await client.get("/docs", headers={"If-None-Match": response.headers["ETag"]})
    assert cached.status == 304


def webhook_validator(event_type: str) -> OAS31Validator:
    body = SPEC["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]
    return OAS31Validator({**body["schema"], "components": SPEC["components"]})


def test_every_event_envelope_the_app_builds_matches_its_webhook() -> None:
    media = {"tenant": "default", "sender": "alice", "client_ref": "msg-7"}
    for event_type in SPEC["webhooks"]:
        entry = {"type": event_type, "ts": "1795680000000", "seq": "4", "counts": '{"sent": 1}'}
        if event_type.startswith("recipient."):
            entry.update(recipient="bob", status="opened", views_left="1", device="phone")
        entry["detail"] = {"recipient.screenshot": "recording", "recipient.reported": "spam"}.get(
            event_type, ""
        )
        event = envelope("m_abc", media, entry)
        errors = [e.message for e in webhook_validator(event_type).iter_errors(event)]
        assert errors == [], (event_type, errors)
    # The schemas do tell events apart: a screenshot without its kind is refused.
    screenshot = envelope("m_abc", media, {"type": "recipient.screenshot", "ts": "1", "seq": "1"})
    del screenshot["data"]["kind"]
    assert not webhook_validator("recipient.screenshot").is_valid(screenshot)
    assert not webhook_validator("media.ready").is_valid({**screenshot, "type": "media.purged"})
