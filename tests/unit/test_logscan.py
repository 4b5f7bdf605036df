"""The suite-wide log scan: what it calls a secret, and that a hit fails a pytest run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ephemeral.crypto import keys as kc
from tests.fixtures.keys import JWT_KEY
from tests.fixtures.logscan import mask, scan_line

ROOT = Path(__file__).resolve().parents[2]


def fake_token() -> str:
    return f"{kc.random_id(16)}.{kc.b64(os.urandom(32))}"


def fake_view_id() -> str:
    return "v_" + kc.random_id(16) + kc.random_id(16)


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (f"redeem {fake_token()} failed", "view token"),
        ("GET /v/" + kc.random_id(16) + " 200", "lookup in a path"),
        (f"lease of {fake_view_id()} ended", "view id"),
        # A fixed lease-like value: a random one could lack a digit or a capital.
        ("lease Xk3_9qPzLm2vTtR8wN4bHc7sYd1eFg5jAo6iUu0rKlQ ended", "bare 256-bit secret"),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlc2lnbmF0dXJl",
            "JWT",
        ),
        ("Authorization: Lease Xk3_9qPzLm2vTtR8wN4bHc7s", "Authorization value"),
        ("key ek_" + kc.random_id(24), "service key"),
        ("secret whsec_" + kc.b64(os.urandom(24)), "webhook secret"),
        (f"jwt key {JWT_KEY}", "the test JWT key"),
    ],
)
def test_each_kind_of_secret_is_found(line: str, kind: str) -> None:
    assert kind in scan_line(line)
    assert kind not in scan_line(mask(line))  # the report shows no secret either


@pytest.mark.parametrize(
    "line",
    [
        '{"msg": "GET /v/{lookup} 200 1.2ms 9f86d081884c7d65", "route": "/v/{lookup}"}',
        "purged m_" + "Ab3" * 7 + "x after 12 ms",  # media ids are not secrets
        "normalise:m_ie9j8fOhg9JQ8nZDIJJohA:normalise('m_ie9j8fOhg9JQ8nZDIJJohA')",
        "object m_ie9j8fOhg9JQ8nZDIJJohA/I7uhpC_Rw4yfqx2T written",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "/tmp/pytest-of-root/pytest-344/test_short_expiry_purges_unope0/data/blobs",
        "lease ended for the recipient after an idle period of sixty seconds",
    ],
)
def test_ordinary_lines_pass(line: str) -> None:
    assert scan_line(line) == []


TINY = """
import logging
from tests.fixtures.logscan import output_path

def test_logs():
    {logged}

def test_a_server_writes():
    {written}
"""


def run_pytest(
    tmp_path: Path, logged: str, written: str = "pass"
) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_tiny.py"
    test.write_text(TINY.format(logged=logged, written=written))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = ["-p", "tests.fixtures.logscan", "-p", "no:cacheprovider", str(test)]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_secret_logged_anywhere_fails_the_run(tmp_path: Path) -> None:
    token = fake_token()
    lease = "Xk3_9qPzLm2vTtR8wN4bHc7sYd1eFg5jAo6iUu0rKlQ"
    leaky = run_pytest(
        tmp_path,
        f'logging.getLogger("x").info("redeemed %s", "{token}")',
        f'output_path("serve").write_text("lease {lease} granted")',
    )
    assert leaky.returncode == 1, leaky.stdout
    assert "2 passed" in leaky.stdout  # the tests themselves passed: the scan failed the run
    report = leaky.stdout[leaky.stdout.index("secrets in logs") :]
    assert "test-process.log:1: view token" in report
    assert "serve-0.log:1: bare 256-bit secret" in report
    for secret in (token, *token.split("."), lease):
        assert secret not in leaky.stdout

    clean = run_pytest(tmp_path, 'logging.getLogger("x").info("GET /v/{lookup} 200")')
    assert clean.returncode == 0, clean.stdout
    assert "secrets in logs" not in clean.stdout
