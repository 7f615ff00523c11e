"""Password policy and Argon2id hashing.

Hashing is CPU- and memory-heavy by design, so callers run it in a worker thread.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from hermes_hub.identity.errors import WeakPasswordError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
# zxcvbn refuses longer input; the first 72 characters are plenty to judge guessability.
_STRENGTH_SAMPLE = 72
_MIN_STRENGTH_SCORE = 2

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("hermes-hub-timing-equaliser")


def check_password_policy(password: str, *, user_inputs: tuple[str, ...] = ()) -> None:
    """Raise ``WeakPasswordError`` with a stable code when the password is not acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(
            f"Password must be at least {MIN_PASSWORD_LENGTH} characters long.",
            code="password_too_short",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(
            f"Password must be at most {MAX_PASSWORD_LENGTH} characters long.",
            code="password_too_long",
        )
    result = zxcvbn(password[:_STRENGTH_SAMPLE], user_inputs=list(user_inputs))
    if result["score"] < _MIN_STRENGTH_SCORE:
        feedback = result.get("feedback") or {}
        hint = feedback.get("warning") or "it is a common or easily guessed password"
        raise WeakPasswordError(
            f"Password is too easy to guess: {hint.rstrip('.')}. Choose a longer, less common one.",
            code="password_too_common",
        )


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        # Unknown users are checked against a dummy hash so the response time does not
        # reveal whether an email is registered.
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, password_hash, password)
