"""Client SDK for Hermes Hub. Talks HTTP only; never imports server code beyond schemas."""

from hermes_hub.sdk.client import HubApiError, HubClient
from hermes_hub.sdk.keys import generate_private_key, load_private_key, public_key_b64, sign_b64

__all__ = [
    "HubApiError",
    "HubClient",
    "generate_private_key",
    "load_private_key",
    "public_key_b64",
    "sign_b64",
]
