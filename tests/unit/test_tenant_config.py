"""The tenants block: parsed from TOML, every bad value named at start; service-key hashes."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from ephemeral.auth import Authenticator
from ephemeral.config import ConfigError, load
from ephemeral.errors import ServiceError
from ephemeral.tenancy import SERVICE_KEY_RE, Tenants, new_service_key, service_key_hash

SECRET = "s" * 40


def tenants_toml(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def test_a_tenants_block_from_toml(tmp_path: Path) -> None:
    key_a, key_b = new_service_key(), new_service_key()
    pem = tmp_path / "b.key"
    pem.write_text("b" * 40 + "\n")
    path = tenants_toml(
        tmp_path / "c.toml",
        f"""
[tenants.chat]
service_key_hashes = ["{service_key_hash(key_a)}", "{service_key_hash(new_service_key())}"]
jwt_issuer = "https://auth.chat.example"
jwt_key = "{SECRET}"
webhook_urls = ["https://hooks.chat.example/in"]
webhook_secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
receipts_to_sender = "status_only"
max_recipients = 50

[tenants.other]
service_key_hashes = ["{service_key_hash(key_b)}"]
jwt_issuer = "https://auth.other.example"
jwt_key_file = "{pem}"
""",
    )
    settings = load(path, env={})
    assert [t.id for t in settings.tenants] == ["chat", "other"]
    tenants = Tenants.from_settings(settings, None)
    chat, other = tenants.all
    assert chat.status_only and chat.limits.max_recipients == 50
    assert chat.webhooks.url_list == ["https://hooks.chat.example/in"]
    assert other.jwt_key == "b" * 40 and not other.status_only
    assert other.limits.max_recipients == settings.limits.max_recipients
    assert tenants.by_service_key(key_a) is chat and tenants.by_service_key(key_b) is other
    assert tenants.by_service_key(new_service_key()) is None
    assert tenants.by_issuer("https://auth.other.example") is other
    token = Authenticator(settings, tenants=tenants).mint("alice", tenant="chat")
    tenant, claims = Authenticator(settings, tenants=tenants).verify_claims(token)
    assert tenant is chat and claims["sub"] == "alice"


def table(**fields: str) -> str:
    body = {"jwt_issuer": '"https://i.example"', "jwt_key": f'"{SECRET}"', **fields}
    return "[tenants.t]\n" + "".join(f"{k} = {v}\n" for k, v in body.items() if v)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (table(service_key_hashes='["md5:abc"]'), "tenants.t.service_key_hashes"),
        (
            table(service_key_hashes=str([service_key_hash(k) for k in "abc"])),
            "tenants.t.service_key_hashes",
        ),
        (table(jwt_issuer=""), "tenants.t.jwt_issuer"),
        (table(jwt_key=""), "tenants.t.jwt_key"),
        (table(jwt_key='"short"'), "tenants.t.jwt_key"),
        (table(jwt_algorithm='"none"'), "tenants.t.jwt_algorithm"),
        (table(webhook_urls='["http://plain.example"]'), "tenants.t.webhook_urls"),
        (table(webhook_urls='["https://h.example"]'), "tenants.t.webhook_secrets"),
        (table(receipts_to_sender='"never"'), "tenants.t.receipts_to_sender"),
        (table(max_recipients="0"), "tenants.t.max_recipients"),
        (table(colour='"blue"'), "tenants.t.colour"),
        ("[tenants.'bad id']\njwt_issuer = 'x'\n", "tenants.bad id"),
        ("tenants = 3\n", "tenants"),
        (
            table() + '[webhooks]\nurls = "https://h.example"\nsecrets = "whsec_abc"\n',
            "webhooks.urls",
        ),
        (
            table() + '[tenants.u]\njwt_issuer = "https://i.example"\njwt_key = "' + SECRET + '"\n',
            "tenants.u.jwt_issuer",
        ),
    ],
)
def test_bad_tenant_settings_name_the_setting(tmp_path: Path, body: str, named: str) -> None:
    path = tenants_toml(tmp_path / "c.toml", body)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load(path, env={})


def test_a_key_hash_belongs_to_one_tenant_and_keys_look_alike(tmp_path: Path) -> None:
    shared = service_key_hash(new_service_key())
    body = (
        f'[tenants.a]\njwt_issuer = "https://a"\njwt_key = "{SECRET}"\n'
        f'service_key_hashes = ["{shared}"]\n'
        f'[tenants.b]\njwt_issuer = "https://b"\njwt_key = "{SECRET}"\n'
        f'service_key_hashes = ["{shared}"]\n'
    )
    with pytest.raises(ConfigError, match=r"tenants\.b\.service_key_hashes"):
        load(tenants_toml(tmp_path / "c.toml", body), env={})
    keys = {new_service_key() for _ in range(50)}
    assert len(keys) == 50 and all(SERVICE_KEY_RE.match(k) for k in keys)


def test_an_unreadable_key_file_and_a_bad_default_hash_fail_at_start(tmp_path: Path) -> None:
    body = f'[tenants.a]\njwt_issuer = "https://a"\njwt_key_file = "{tmp_path / "nope"}"\n'
    settings = load(tenants_toml(tmp_path / "c.toml", body), env={})
    with pytest.raises(ConfigError, match=r"tenants\.a\.jwt_key_file"):
        Authenticator.load(settings, generate=False)
    settings = load(None, env={"EPHEMERAL_AUTH_SERVICE_KEY_HASHES": "sha256:xyz"})
    with pytest.raises(ConfigError, match=r"auth\.service_key_hashes"):
        Authenticator(settings, SECRET)


def test_an_eddsa_tenant_beside_an_hs256_one(tmp_path: Path) -> None:
    """Each tenant's own algorithm, given to the verifier explicitly: a token that claims HS256
    with the EdDSA tenant's public key as the HMAC secret is refused."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem_file = tmp_path / "c.pub.pem"
    pem_file.write_bytes(public_pem)
    body = (
        f'[tenants.a]\njwt_issuer = "https://a"\njwt_key = "{SECRET}"\n'
        f'[tenants.c]\njwt_issuer = "https://c"\njwt_algorithm = "EdDSA"\n'
        f'jwt_key_file = "{pem_file}"\n'
    )
    settings = load(tenants_toml(tmp_path / "c.toml", body), env={})
    auth = Authenticator.load(settings, generate=False)
    now = int(time.time())
    claims = {"sub": "carol", "aud": "ephemeral", "iss": "https://c", "iat": now, "exp": now + 60}
    tenant, verified = auth.verify_claims(jwt.encode(claims, private, algorithm="EdDSA"))
    assert tenant.id == "c" and verified["sub"] == "carol"
    confused = jwt.encode(claims, "x" * 40, algorithm="HS256")
    with pytest.raises(ServiceError) as refused:
        auth.verify_claims(confused)
    assert refused.value.status == 401
    with pytest.raises(ConfigError, match="HS256"):
        auth.mint("carol", tenant="c")


def test_a_short_secret_file_or_a_bad_pem_fails_at_start_not_at_the_first_token(
    tmp_path: Path,
) -> None:
    short = tmp_path / "short.key"
    short.write_text("too-short\n")
    body = f'[tenants.a]\njwt_issuer = "https://a"\njwt_key_file = "{short}"\n'
    settings = load(tenants_toml(tmp_path / "a.toml", body), env={})
    with pytest.raises(ConfigError, match=r"tenants\.a\.jwt_key_file: an HS256 secret"):
        Authenticator.load(settings, generate=False)
    garbage = tmp_path / "bad.pem"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    body = (
        f'[tenants.c]\njwt_issuer = "https://c"\njwt_algorithm = "EdDSA"\n'
        f'jwt_key_file = "{garbage}"\n'
    )
    settings = load(tenants_toml(tmp_path / "c.toml", body), env={})
    with pytest.raises(ConfigError, match=r"tenants\.c\.jwt_key_file: not a EdDSA key"):
        Authenticator.load(settings, generate=False)
