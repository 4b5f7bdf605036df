"""Tokens, derivations and the keyring."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ephemeral.crypto import keys as kc
from ephemeral.crypto.keyring import Keyring


def test_token_shape_and_strict_parsing() -> None:
    lookup, secret = kc.new_token()
    token = kc.format_token(lookup, secret)
    assert len(lookup) == 22 and len(token.split(".")[1]) == 43
    assert kc.parse_token(token) == (lookup, secret)
    for bad in [
        "",
        token + "A",
        token[:-1],
        token.replace(".", "-"),
        "a" * 22 + "." + "=" * 43,
        lookup + "." + "_" * 43,
    ]:
        assert kc.parse_token(bad) is None, bad


def test_derivations_are_distinct_and_bound() -> None:
    secret = os.urandom(32)
    values = {
        kc.token_verifier(secret, "lookup"),
        kc.recipient_wrap_key(secret, "m_1", "bob").hex(),
        kc.recipient_wrap_key(secret, "m_1", "carol").hex(),
        kc.lease_secret(secret, "v_1"),
        kc.lease_secret(secret, "v_2"),
    }
    assert len(values) == 5
    assert kc.lease_secret(secret, "v_1") == kc.lease_secret(secret, "v_1")


def test_wrap_is_bound_to_its_context() -> None:
    kek, dek = os.urandom(32), os.urandom(32)
    blob = kc.wrap(kek, dek, "ctx-a")
    assert kc.unwrap(kek, blob, "ctx-a") == dek
    with pytest.raises(kc.UnwrapError):
        kc.unwrap(kek, blob, "ctx-b")
    with pytest.raises(kc.UnwrapError):
        kc.unwrap(os.urandom(32), blob, "ctx-a")


def test_keyring_agrees_across_instances_and_prunes(tmp_path: Path) -> None:
    directory = tmp_path / "keyring"
    a, b = Keyring(directory), Keyring(directory)
    epoch, key = a.current(now=10 * 3600)
    assert b.current(now=10 * 3600 + 5) == (epoch, key)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / f"{epoch}.key").stat().st_mode) == 0o600
    a.current(now=40 * 3600)
    assert a.prune(now=40 * 3600) == 1
    assert a.get(epoch) is None
