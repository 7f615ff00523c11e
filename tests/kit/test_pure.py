"""Pure helpers, tested without a database or a clock."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hermes_hub.identity import crypto, passwords, tokens
from hermes_hub.identity.errors import (
    InvalidPublicKeyError,
    InvalidSignatureError,
    WeakPasswordError,
)
from hermes_hub.kit.money import credits_to_units, units_to_credits
from hermes_hub.kit.text import clean_text
from hermes_hub.sdk.keys import public_key_b64, sign_b64

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = "k" * 64


def test_money_round_trip():
    assert credits_to_units(Decimal("5")) == 500
    assert credits_to_units(Decimal("0.01")) == 1
    assert units_to_credits(1234) == Decimal("12.34")
    with pytest.raises(ValueError, match="2 decimal"):
        credits_to_units(Decimal("0.001"))


def test_clean_text():
    assert clean_text("  Cafe\u0301 ") == "Café"
    assert clean_text("a\nb", multiline=True) == "a\nb"
    for bad in ("a\nb", "zero\u200bwidth", "nul\x00"):
        with pytest.raises(ValueError, match="disallowed"):
            clean_text(bad)


def test_password_policy_codes():
    passwords.check_password_policy("correct horse battery staple")
    with pytest.raises(WeakPasswordError) as raised:
        passwords.check_password_policy(
            "alice@example.com1", user_inputs=("alice@example.com", "alice")
        )
    assert raised.value.code == "password_too_common"


async def test_password_hash_is_argon2id_and_verifies(monkeypatch):
    monkeypatch.setattr(passwords, "_hasher", passwords.PasswordHasher())
    hashed = await passwords.hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert passwords._verify(hashed, "correct horse battery staple")
    assert not passwords._verify(hashed, "wrong")
    assert not passwords._verify(None, "anything")
    assert not passwords._verify("not-a-hash", "anything")


def test_access_token_round_trip_and_expiry():
    user_id = uuid.uuid4()
    token = tokens.issue_access_token(
        user_id=user_id,
        role="user",
        secret=SECRET,
        issuer="i",
        audience="a",
        now=datetime.now(UTC),
        ttl=timedelta(minutes=5),
    )
    claims = tokens.decode_access_token(token, secret=SECRET, issuer="i", audience="a")
    assert claims.user_id == user_id
    expired = tokens.issue_access_token(
        user_id=user_id,
        role="user",
        secret=SECRET,
        issuer="i",
        audience="a",
        now=NOW,
        ttl=timedelta(minutes=5),
    )
    with pytest.raises(tokens.InvalidTokenError):
        tokens.decode_access_token(expired, secret=SECRET, issuer="i", audience="a")


def test_api_keys_are_random_prefixed_and_hashed():
    first, second = tokens.generate_api_key(), tokens.generate_api_key()
    assert first.token != second.token
    assert first.token.startswith("hhk_")
    assert tokens.looks_like_api_key(first.token)
    assert first.token_hash == tokens.hash_api_key(first.token) != first.token
    assert len(first.token) > 40


def test_signature_verification():
    key = Ed25519PrivateKey.generate()
    public = crypto.parse_public_key(public_key_b64(key))
    crypto.verify_signature(public_key=public, message="héllo", signature=sign_b64(key, "héllo"))
    with pytest.raises(InvalidSignatureError):
        crypto.verify_signature(
            public_key=public, message="hello", signature=sign_b64(key, "héllo")
        )
    with pytest.raises(InvalidPublicKeyError):
        crypto.parse_public_key("@@@")
