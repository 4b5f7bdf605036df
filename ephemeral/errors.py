"""One error model: domain code raises ServiceError; the middleware renders problem+json."""

from __future__ import annotations

from typing import Any

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    417: "Expectation Failed",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ServiceError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str = "",
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}


class FieldErrors:
    """Collects validation problems so a 422 lists all of them with JSON pointers."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, pointer: str, detail: str, code: str = "invalid-field") -> None:
        self.items.append({"pointer": pointer, "code": code, "detail": detail})

    def raise_if_any(self) -> None:
        if self.items:
            raise ServiceError(
                422, "invalid-field", self.items[0]["detail"], errors=list(self.items)
            )


def not_found(detail: str = "no such resource") -> ServiceError:
    return ServiceError(404, "not-found", detail)


def unavailable(
    detail: str = "a backing service is unavailable; nothing was changed",
) -> ServiceError:
    return ServiceError(503, "unavailable", detail, headers={"Retry-After": "1"})
