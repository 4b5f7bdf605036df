"""Config: defaults, TOML, env on top, and bad values named at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from ephemeral.config import ConfigError, load


def test_defaults_toml_then_env(tmp_path: Path) -> None:
    path = tmp_path / "ephemeral.toml"
    path.write_text('port = 9000\n[limits]\nmax_recipients = 10\n[storage]\nbackend = "fs"\n')
    settings = load(path, env={"EPHEMERAL_LIMITS_MAX_RECIPIENTS": "20"})
    assert settings.port == 9000
    assert settings.limits.max_recipients == 20
    assert settings.limits.max_views == 2
    assert settings.base_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"EPHEMERAL_PORT": "eighty"}, "port"),
        ({"EPHEMERAL_LIMITS_MAX_RECIPIENTS": "0"}, "limits.max_recipients"),
        ({"EPHEMERAL_STORAGE_BACKEND": "ftp"}, "storage.backend"),
        ({"EPHEMERAL_STORAGE_BACKEND": "s3"}, "storage.s3_bucket"),
        ({"EPHEMERAL_AUTH_JWT_KEY": "short"}, "auth.jwt_key"),
        ({"EPHEMERAL_EMBEDDED_WORKER": "maybe"}, "embedded_worker"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load(None, env=env)


def test_unknown_toml_setting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[limits]\nmax_recipient = 3\n")
    with pytest.raises(ConfigError, match=r"limits\.max_recipient"):
        load(path, env={})
