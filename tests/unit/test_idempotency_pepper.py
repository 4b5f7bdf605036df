"""The idempotency pepper lives outside Redis: from config, or one 0600 file all processes share."""

from __future__ import annotations

import dataclasses
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ephemeral.config import ConfigError, IdempotencySettings, Settings, load
from ephemeral.errors import ServiceError
from ephemeral.idempotency import PEPPER_FILE, fingerprint_material, load_pepper, parse_key
from ephemeral.meta import Meta


def test_the_pepper_file_is_made_once_0600_in_the_keyring_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with ThreadPoolExecutor(8) as pool:  # racing starts agree on one pepper
        peppers = set(pool.map(lambda _: load_pepper(settings), range(16)))
    assert len(peppers) == 1 and len(peppers.pop()) >= 43
    path = settings.keyring_path / PEPPER_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not (settings.data_dir / PEPPER_FILE).exists()  # a copy of the data dir lacks it
    assert sorted(p.name for p in settings.keyring_path.iterdir()) == [PEPPER_FILE]
    configured = dataclasses.replace(settings, idempotency=IdempotencySettings(pepper="p" * 40))
    assert load_pepper(configured) == b"p" * 40


def test_a_short_pepper_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"idempotency\.pepper"):
        load(None, env={"EPHEMERAL_IDEMPOTENCY_PEPPER": "short"})
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    with pytest.raises(ConfigError, match=r"idempotency\.pepper"):
        load_pepper(Settings(data_dir=tmp_path / "data", keyring_dir=blocked / "keyring"))


def test_key_format_and_canonical_fingerprint() -> None:
    assert parse_key(None) is None
    assert parse_key("0b9d3c2e-4b8e-4f57-9a7f-3c1e0d9a2b11")
    for bad in ("", "a" * 21, "a" * 256, "a b" * 10, "ключ" * 8):
        with pytest.raises(ServiceError):
            parse_key(bad)
    one = Meta(["bob"], 1, 60, 60, "", "link", "notify", "")
    assert fingerprint_material("multipart", one) == fingerprint_material("multipart", one)
    assert fingerprint_material("multipart", one) != fingerprint_material("json", one)
    other = dataclasses.replace(one, views=2)
    assert fingerprint_material("multipart", one) != fingerprint_material("multipart", other)
