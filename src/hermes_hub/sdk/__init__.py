"""Client SDK for Hermes Hub. Talks HTTP only; never imports server code beyond schemas."""

from hermes_hub.sdk.agent import Agent, AgentHandle, Bid, Contract
from hermes_hub.sdk.errors import (
    AgentUnavailable,
    ApprovalRequired,
    AuthenticationError,
    Conflict,
    HermesError,
    HubUnavailable,
    InsufficientFunds,
    NotFound,
    PermissionDenied,
    RateLimited,
    ValidationFailed,
    error_from_response,
)
from hermes_hub.sdk.events import EventStream
from hermes_hub.sdk.hermes import HermesClient, SyncHermesClient
from hermes_hub.sdk.keys import generate_private_key, load_private_key, public_key_b64, sign_b64

__all__ = [
    "Agent",
    "AgentHandle",
    "AgentUnavailable",
    "ApprovalRequired",
    "AuthenticationError",
    "Bid",
    "Conflict",
    "Contract",
    "EventStream",
    "HermesClient",
    "HermesError",
    "HubUnavailable",
    "InsufficientFunds",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "SyncHermesClient",
    "ValidationFailed",
    "error_from_response",
    "generate_private_key",
    "load_private_key",
    "public_key_b64",
    "sign_b64",
]
