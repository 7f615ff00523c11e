"""Ed25519 public keys and signatures, exchanged as base64 of the raw bytes."""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hermes_hub.identity.errors import InvalidPublicKeyError, InvalidSignatureError

ED25519_PUBLIC_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64


def _b64decode(value: str) -> bytes:
    return base64.b64decode(value.strip(), validate=True)


def parse_public_key(encoded: str) -> str:
    """Validate a base64 raw Ed25519 public key and return its canonical base64 form."""
    try:
        raw = _b64decode(encoded)
    except (binascii.Error, ValueError) as exc:
        raise InvalidPublicKeyError("public_key is not valid base64.") from exc
    if len(raw) != ED25519_PUBLIC_KEY_BYTES:
        raise InvalidPublicKeyError(
            f"public_key must be {ED25519_PUBLIC_KEY_BYTES} raw bytes (got {len(raw)})."
        )
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise InvalidPublicKeyError("public_key is not a valid Ed25519 key.") from exc
    return base64.b64encode(raw).decode("ascii")


def verify_signature(*, public_key: str, message: str, signature: str) -> None:
    """Raise ``InvalidSignatureError`` unless ``signature`` signs ``message`` (UTF-8)."""
    try:
        raw_signature = _b64decode(signature)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignatureError("signature is not valid base64.") from exc
    if len(raw_signature) != ED25519_SIGNATURE_BYTES:
        raise InvalidSignatureError(
            f"signature must be {ED25519_SIGNATURE_BYTES} raw bytes (got {len(raw_signature)})."
        )
    key = Ed25519PublicKey.from_public_bytes(_b64decode(public_key))
    try:
        key.verify(raw_signature, message.encode("utf-8"))
    except InvalidSignature as exc:
        raise InvalidSignatureError(
            "The signature does not verify against the enrolled public key."
        ) from exc
