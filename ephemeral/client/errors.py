"""Typed exceptions for the client: each problem+json answer becomes one class per status."""

from __future__ import annotations

import json
from typing import Any

import aiohttp


class ClientError(Exception):
    """Anything the client could not do; the base of every exception it raises."""


class ConnectionFailed(ClientError):
    """The service could not be reached, or the connection broke before an answer."""


class ProblemError(ClientError):
    """The service answered with an RFC 9457 problem (or an error status without one).

    `code` is the contract's machine-readable code (`already-viewed`, `not-found`, ...), `detail`
    the human sentence, `errors` the per-field problems of a 422, `retry_after` the seconds the
    service asked to wait (429, 409 media-processing, 503), when it said so.
    """

    status = 0

    def __init__(
        self,
        status: int,
        code: str,
        detail: str = "",
        *,
        title: str = "",
        instance: str = "",
        errors: tuple[dict[str, Any], ...] = (),
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}" if detail else f"{status} {code}")
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.instance = instance
        self.errors = errors
        self.retry_after = retry_after
        self.body = body or {}


class BadRequest(ProblemError):
    status = 400


class Unauthorized(ProblemError):
    status = 401


class Forbidden(ProblemError):
    status = 403


class NotFound(ProblemError):
    status = 404


class RequestTimeout(ProblemError):
    status = 408


class Conflict(ProblemError):
    """409: `media-processing` (retry later), `upload-used`, `idempotency-key-in-flight`."""

    status = 409


class Gone(ProblemError):
    """410: `already-viewed`, `expired`, `revoked`, `media-failed`, `lease-ended`."""

    status = 410


class PayloadTooLarge(ProblemError):
    status = 413


class UnsupportedMediaType(ProblemError):
    status = 415


class RangeNotSatisfiable(ProblemError):
    status = 416


class InvalidField(ProblemError):
    """422: `invalid-field` (see `errors` for the JSON pointers), `idempotency-key-reused`."""

    status = 422


class RateLimited(ProblemError):
    status = 429


class Unavailable(ProblemError):
    """503: nothing was half-written; the same request may be retried."""

    status = 503


class ServerError(ProblemError):
    """Any other 5xx: a bug in the service, by the contract's own rule."""

    status = 500


BY_STATUS: dict[int, type[ProblemError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        RequestTimeout,
        Conflict,
        Gone,
        PayloadTooLarge,
        UnsupportedMediaType,
        RangeNotSatisfiable,
        InvalidField,
        RateLimited,
        Unavailable,
    )
}


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: not used by this service
        return None


def problem_from(status: int, headers: Any, text: str) -> ProblemError:
    """Build the typed exception from a response's status, headers and body text."""
    body: dict[str, Any] = {}
    try:
        parsed = json.loads(text) if text else {}
        body = parsed if isinstance(parsed, dict) else {}
    except ValueError:
        body = {}
    cls = BY_STATUS.get(status) or (ServerError if status >= 500 else ProblemError)
    raw_errors = body.get("errors")
    errors = (
        tuple(e for e in raw_errors if isinstance(e, dict)) if isinstance(raw_errors, list) else ()
    )
    return cls(
        status,
        str(body.get("code") or f"http-{status}"),
        str(body.get("detail") or text[:200] or ""),
        title=str(body.get("title") or ""),
        instance=str(body.get("instance") or ""),
        errors=errors,
        retry_after=_retry_after(headers.get("Retry-After")),
        body=body,
    )


async def raise_for_problem(response: aiohttp.ClientResponse) -> None:
    """Raise the typed exception for an error response; return quietly for a success."""
    if response.status < 400:
        return
    text = await response.text(errors="replace")
    raise problem_from(response.status, response.headers, text)
