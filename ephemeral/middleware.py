"""Request ids, problem+json for every error, and the headers recipient routes must carry."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ephemeral import metrics
from ephemeral.errors import TITLES, ServiceError
from ephemeral.logs import REQUEST_ID_VAR
from storage.base import StorageError

log = logging.getLogger("ephemeral.http")
REQUEST_ID = web.RequestKey("request_id", str)
PROBLEM_CODE = web.ResponseKey("problem_code", str)  # for the metrics of errors by code
ERROR_BASE = "https://ephemeral.dev/errors/"

RECIPIENT_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_template(request: web.Request) -> str:
    """The route's template, never the raw path: paths carry lookups and view ids."""
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "<unmatched>"


def is_recipient_route(template: str) -> bool:
    return template.startswith(("/v1/views", "/v/"))


def problem(error: ServiceError, request_id: str) -> web.Response:
    body: dict[str, Any] = {
        "type": ERROR_BASE + error.code,
        "title": TITLES.get(error.status, "Error"),
        "status": error.status,
        "code": error.code,
        "detail": error.detail,
        "instance": request_id,
    }
    if error.errors:
        body["errors"] = error.errors
    body.update(error.extra)
    response = web.Response(
        status=error.status,
        text=json.dumps(body),
        content_type="application/problem+json",
        headers=error.headers,
    )
    response[PROBLEM_CODE] = error.code
    return response


def http_exception_problem(exc: web.HTTPException) -> ServiceError:
    codes = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}
    code = codes.get(exc.status, "bad-request")
    status = exc.status if exc.status in codes else 400
    return ServiceError(status, code, exc.reason or code)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = os.urandom(8).hex()
    request[REQUEST_ID] = request_id
    REQUEST_ID_VAR.set(request_id)
    try:
        response = await handler(request)
    except ServiceError as exc:
        response = problem(exc, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem(http_exception_problem(exc), request_id)
    except (RedisConnectionError, RedisTimeoutError, StorageError) as exc:
        log.warning("backend unavailable: %s", type(exc).__name__)
        response = problem(
            ServiceError(
                503,
                "unavailable",
                "a backing service is unavailable; try again",
                headers={"Retry-After": "1"},
            ),
            request_id,
        )
    except Exception:
        log.exception("unhandled error in %s %s", request.method, route_template(request))
        response = problem(ServiceError(500, "internal", "internal error"), request_id)
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
        if is_recipient_route(route_template(request)):
            response.headers.update(RECIPIENT_HEADERS)
            response.headers.setdefault("Cache-Control", "no-store")
    return response


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, route template, status, time, bytes, request id. Nothing
    else: the raw path carries lookups and view ids. The request metrics are counted here too."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        template = "<unmatched>"
        if isinstance(request, web.Request):
            template = route_template(request)
        request_id = request.get(REQUEST_ID, "-")
        metrics.observe_request(
            template, request.method, response.status, time, response.get(PROBLEM_CODE, "")
        )
        self.logger.info(
            "%s %s %s %.1fms %s",
            request.method,
            template,
            response.status,
            time * 1000,
            request_id,
            extra={
                "request_id": request_id,
                "method": request.method,
                "route": template,
                "status": response.status,
                "duration_ms": round(time * 1000, 1),
                "bytes": response.body_length,
            },
        )
