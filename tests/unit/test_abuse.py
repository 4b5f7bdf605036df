"""The abuse controls' pure parts: client addresses, published policies, header syntax."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from ephemeral.abuse.address import client_address, parse_trusted
from ephemeral.abuse.content import load_pepper, recipient_tag
from ephemeral.abuse.memory import over
from ephemeral.abuse.policy import (
    DRAFT,
    Policies,
    Usage,
    headers,
    policies,
    published,
    rate_limited,
)
from ephemeral.config import ConfigError, RateLimitSettings, Settings, load


def address(peer: str, forwarded: str | None, trusted: str) -> str:
    request = make_mocked_request(
        "GET", "/", headers={"X-Forwarded-For": forwarded} if forwarded is not None else {}
    )
    return client_address(request.clone(remote=peer), parse_trusted(trusted))


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.5", "1.1.1.1", "", "203.0.113.5"),  # nobody trusted: the header is noise
        ("10.0.0.2", "1.1.1.1", "127.0.0.1", "10.0.0.2"),  # the peer is not our proxy
        ("10.0.0.2", "1.1.1.1", "10.0.0.0/8", "1.1.1.1"),
        ("10.0.0.2", "6.6.6.6, 1.1.1.1, 10.0.0.9", "10.0.0.0/8", "1.1.1.1"),  # rightmost untrusted
        ("10.0.0.2", "10.0.0.7, 10.0.0.9", "10.0.0.0/8", "10.0.0.7"),  # all ours: the first
        ("10.0.0.2", "junk, 10.0.0.9", "10.0.0.0/8", "10.0.0.9"),  # garbage stops the walk
        ("10.0.0.2", "1.1.1.1:4711", "10.0.0.0/8", "1.1.1.1"),  # a port is not an address
        ("10.0.0.2", "[2001:db8:1:2:3::4]:443", "10.0.0.0/8", "2001:db8:1:2::/64"),
        ("2001:db8::1", None, "", "2001:db8::/64"),  # one subscriber's /64 is one client
        ("::ffff:192.0.2.1", None, "", "192.0.2.1"),
        ("10.0.0.2", "", "10.0.0.0/8", "10.0.0.2"),
    ],
)
def test_client_address(peer: str, forwarded: str | None, trusted: str, expected: str) -> None:
    assert address(peer, forwarded, trusted) == expected


def test_bad_trusted_proxies_fail_at_start_with_the_setting_name() -> None:
    with pytest.raises(ConfigError, match=r"ratelimit\.trusted_proxies"):
        load(env={"EPHEMERAL_RATELIMIT_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"})
    with pytest.raises(ConfigError, match=r"ratelimit\.uploads_per_minute"):
        load(env={"EPHEMERAL_RATELIMIT_UPLOADS_PER_MINUTE": "-1"})
    with pytest.raises(ConfigError, match=r"ratelimit\.memory_alarm_fraction"):
        load(env={"EPHEMERAL_RATELIMIT_MEMORY_ALARM_FRACTION": "1.5"})
    settings = load(env={"EPHEMERAL_RATELIMIT_TRUSTED_PROXIES": "unix, ::1, 10.0.0.0/8"})
    assert parse_trusted(settings.ratelimit.trusted_proxies).unix


def test_defaults_are_the_contract_and_all_are_published() -> None:
    r = RateLimitSettings()
    body = published(r)
    assert body["headers"] == DRAFT == "draft-ietf-httpapi-ratelimit-headers-10"
    quotas = {p["name"]: (p["quota"], p["window"], p["per"]) for p in body["policies"]}
    assert quotas == {
        "uploads": (60, 60, "sender"),
        "recipients": (5_000, 86_400, "sender"),
        "inflight": (4, None, "sender"),
        "stored": (2 << 30, None, "sender"),
        "fanout": (50, 3_600, "content"),
        "redeem-misses": (30, 60, "client-address"),
        "viewer": (300, 60, "client-address"),
    }
    assert policies(Settings()) == body
    off = published(RateLimitSettings(uploads_per_minute=0, viewer_per_minute=0))
    assert {p["name"] for p in off["policies"]} == set(quotas) - {"uploads", "viewer"}


def test_header_fields_follow_the_pinned_draft() -> None:
    p = Policies.of(RateLimitSettings())
    assert p.uploads.field_item() == '"uploads";q=60;w=60'
    assert p.stored.field_item() == f'"stored";q={2 << 30};qu="content-bytes"'
    assert p.recipients.field_item() == '"recipients";q=5000;eph-unit="recipients";w=86400'
    both = headers([Usage(p.uploads, 59, 60), Usage(p.recipients, 4_990, 86_400)])
    assert both["RateLimit"] == '"uploads";r=59;t=60, "recipients";r=4990;t=86400'
    error = rate_limited(Usage(p.fanout, 3, 0), "too many")
    assert error.status == 429 and error.code == "rate-limited"
    assert error.headers["Retry-After"] == "1"  # never 0: that invites a storm
    assert error.headers["RateLimit"] == '"fanout";r=0;t=1'
    assert error.extra == {"violated-policies": ["fanout"]}


def test_memory_alarm_thresholds() -> None:
    """The decision alone; the reading of INFO memory is tested over HTTP."""
    assert not over(10**9, 0, 0.9, 0)  # no maxmemory, no absolute threshold: never
    assert not over(899, 1000, 0.9, 0) and over(900, 1000, 0.9, 0)
    assert over(500, 0, 0.9, 500) and not over(499, 0, 0.9, 500)
    assert over(600, 1000, 0.5, 10**9)  # either threshold is enough


def test_the_pepper_is_made_once_0600_and_shared(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = load_pepper(settings)
    assert len(first) >= 43 and load_pepper(settings) == first
    path = tmp_path / "data.keyring" / "abuse.pepper"  # beside the epoch keys, not in the data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["abuse.pepper"]  # no draft left over
    assert not (tmp_path / "data").exists()
    configured = Settings(
        data_dir=tmp_path / "other",
        ratelimit=RateLimitSettings(pepper="x" * 32),
    )
    assert load_pepper(configured) == b"x" * 32 and not (tmp_path / "other.keyring").exists()
    assert recipient_tag(first, "bob") != recipient_tag(b"x" * 32, "bob")
    blocked = Settings(ratelimit=RateLimitSettings(pepper_file=path / "under-a-file"))
    with pytest.raises(ConfigError, match=r"ratelimit\.pepper"):
        load_pepper(blocked)
