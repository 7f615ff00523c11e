"""User access tokens (JWT) and agent API keys."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "hhk_"
_API_KEY_DISPLAY_CHARS = 12


@dataclass(frozen=True)
class AccessTokenClaims:
    user_id: uuid.UUID
    role: str
    expires_at: datetime


class InvalidTokenError(Exception):
    """The bearer token is not a valid, current access token."""


def issue_access_token(
    *,
    user_id: uuid.UUID,
    role: str,
    secret: str,
    issuer: str,
    audience: str,
    now: datetime,
    ttl: timedelta,
) -> str:
    payload = {
        "sub": str(user_id),
        "role": role,
        "iss": issuer,
        "aud": audience,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM)


def decode_access_token(
    token: str, *, secret: str, issuer: str, audience: str
) -> AccessTokenClaims:
    try:
        payload = jwt.decode(
            token,
            secret,
            # One fixed algorithm: tokens claiming "none" or an asymmetric algorithm are refused.
            algorithms=[JWT_ALGORITHM],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
        return AccessTokenClaims(
            user_id=uuid.UUID(str(payload["sub"])),
            role=str(payload["role"]),
            expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
        )
    except (jwt.PyJWTError, KeyError, ValueError) as exc:
        raise InvalidTokenError(str(exc)) from exc


@dataclass(frozen=True)
class NewApiKey:
    token: str
    prefix: str
    token_hash: str


def generate_api_key() -> NewApiKey:
    token = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return NewApiKey(
        token=token, prefix=token[:_API_KEY_DISPLAY_CHARS], token_hash=hash_api_key(token)
    )


def hash_api_key(token: str) -> str:
    # API keys carry 256 random bits, so a fast hash is enough: nothing to brute-force,
    # and the lookup by hash stays cheap on every request.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)
