"""The log formats of `serve` and `worker`: JSON lines by default, plain text on request."""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAM = """
import logging, sys
from ephemeral.config import LogSettings
from ephemeral.logs import REQUEST_ID_VAR, configure
configure(LogSettings(format=sys.argv[1]))
logging.getLogger("ephemeral.test").info("outside a request")
REQUEST_ID_VAR.set("0123456789abcdef")
logging.getLogger("ephemeral.test").warning("inside %s", "a request", extra={"route": "/x"})
logging.getLogger("ephemeral.test").debug("below the level")
"""


def run(fmt: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, fmt], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_json_lines_carry_the_fields_and_the_request_id() -> None:
    first, second = (json.loads(line) for line in run("json"))
    assert first["level"] == "INFO" and first["logger"] == "ephemeral.test"
    assert first["msg"] == "outside a request" and "request_id" not in first and first["ts"]
    assert second["msg"] == "inside a request" and second["route"] == "/x"
    assert second["request_id"] == "0123456789abcdef"


def test_text_lines_on_request() -> None:
    first, second = run("text")
    assert first.endswith("INFO ephemeral.test outside a request")
    assert second.endswith("WARNING ephemeral.test inside a request")
