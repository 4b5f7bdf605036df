"""Structured logs: JSON lines on stderr (or plain text), with the request id of the request.

What goes into a line is decided where it is logged; this module only shapes it. Callers log
route templates, ids of media and error classes, never a token, lookup, view id, lease or
secret (tests/fixtures/logscan.py checks every line the test suite makes).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

from ephemeral.config import LogSettings

# Set by the error middleware for the request being handled; tasks started inside a request
# inherit it, background tasks started at boot do not.
REQUEST_ID_VAR: ContextVar[str | None] = ContextVar("request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = REQUEST_ID_VAR.get()
            if request_id is not None:
                record.request_id = request_id
        return True


def json_formatter() -> logging.Formatter:
    """ts, level, logger, msg, then whatever the call passed in `extra` (request_id, ...)."""
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger", "message": "msg"},
        timestamp="ts",
    )


def configure(settings: LogSettings) -> None:
    """Once per process, at start: one stderr handler on the root logger."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
