"""Agent Cards: fetch an agent's card safely, validate it, and derive the hub's own card.

The card is parsed with ``a2a-sdk`` (which also reads the 0.3 layout: ``url``,
``preferredTransport``, ``additionalInterfaces``). The hub forwards over JSON-RPC, so a card
must offer a JSON-RPC interface on an http(s) URL.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from a2a.client.card_resolver import parse_agent_card
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.types.a2a_pb2 import (
    AgentCard,
    AgentInterface,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
)
from google.protobuf.json_format import ParseError

from hermes_hub.errors import HubError
from hermes_hub.kit.safe_http import (
    BadStatusError,
    FetchError,
    OutboundBlockedError,
    OutboundPolicy,
    fetch_json,
)

CARD_PATH = "/.well-known/agent-card.json"
LEGACY_CARD_PATH = "/.well-known/agent.json"
JSONRPC_BINDING = "JSONRPC"
HUB_SECURITY_SCHEME = "hermes_bearer"
# The protocol versions the hub serves on its JSON-RPC endpoint (a2a-sdk's dispatcher with
# 0.3 compatibility on).
HUB_PROTOCOL_VERSIONS = ("1.0", "0.3")
MAX_DERIVED_CAPABILITIES = 64
_CAPABILITY_CHARS = re.compile(r"[^a-z0-9._:/+-]+")


class CardError(HubError):
    """The agent's card could not be fetched or is not a usable A2A Agent Card."""

    status = 502
    code = "invalid_agent_card"


@dataclass(frozen=True)
class FetchedCard:
    raw: dict[str, Any]
    card: AgentCard
    card_url: str
    rpc_url: str
    protocol_version: str


def card_urls(endpoint_url: str) -> list[str]:
    """Where an agent at ``endpoint_url`` publishes its card: the A2A 1.0 path first, then
    the legacy ``agent.json``. A URL that already names a ``.json`` file is used as is."""
    if urlsplit(endpoint_url).path.endswith(".json"):
        return [endpoint_url]
    base = endpoint_url.rstrip("/")
    return [base + CARD_PATH, base + LEGACY_CARD_PATH]


def _fetch_problem(exc: FetchError, url: str) -> HubError:
    if isinstance(exc, OutboundBlockedError):
        return HubError(
            f"The agent's endpoint is not allowed: {exc}.", status=422, code="endpoint_not_allowed"
        )
    if exc.code == "timeout":
        return CardError(
            f"The agent card at {url} did not arrive in time.", status=504, code="card_timeout"
        )
    if exc.code == "unreachable":
        return CardError(f"The agent card at {url} is unreachable: {exc}.", code="card_unreachable")
    return CardError(f"The agent card at {url} could not be read: {exc}.")


async def fetch_card(
    client: httpx.AsyncClient, endpoint_url: str, *, policy: OutboundPolicy
) -> FetchedCard:
    """Fetch and validate the card; raise ``HubError`` (422 for a forbidden address, 502 or
    504 for a card that is missing, too big, slow or malformed)."""
    urls = card_urls(endpoint_url)
    for index, url in enumerate(urls):
        try:
            data, _ = await fetch_json(
                client, url, policy=policy, headers={"Accept": "application/json"}
            )
        except BadStatusError as exc:
            # Only a missing card sends us on to the legacy path.
            if exc.response.status_code == 404 and index + 1 < len(urls):
                continue
            raise _fetch_problem(exc, url) from exc
        except FetchError as exc:
            raise _fetch_problem(exc, url) from exc
        return validate_card(data, card_url=url)
    raise AssertionError("unreachable")  # pragma: no cover - the last URL returns or raises


def validate_card(data: Any, *, card_url: str) -> FetchedCard:
    """Parse a card's JSON (1.0 or 0.3 layout) and pick the JSON-RPC interface to call."""
    if not isinstance(data, dict):
        raise CardError(f"The agent card at {card_url} is not a JSON object.")
    raw = dict(data)
    try:
        # parse_agent_card rewrites legacy fields in place; keep the published form intact.
        card = parse_agent_card(_deep_copy(raw))
    except (ParseError, ValueError, TypeError) as exc:
        raise CardError(
            f"The agent card at {card_url} is not a valid A2A Agent Card: {exc}."
        ) from exc
    if not card.name.strip():
        raise CardError(f"The agent card at {card_url} has no name.")
    interface = choose_interface(card)
    if interface is None:
        raise CardError(
            f"The agent card at {card_url} offers no JSON-RPC interface on an http(s) URL; "
            "the hub forwards calls over JSON-RPC."
        )
    return FetchedCard(
        raw=raw,
        card=card,
        card_url=card_url,
        rpc_url=interface.url,
        protocol_version=interface.protocol_version or "0.3",
    )


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return -1


def choose_interface(card: AgentCard) -> AgentInterface | None:
    """The JSON-RPC interface with the newest protocol version, or None."""
    usable = [
        interface
        for interface in card.supported_interfaces
        if interface.protocol_binding.upper() == JSONRPC_BINDING
        and urlsplit(interface.url).scheme in {"http", "https"}
        and urlsplit(interface.url).hostname
    ]
    if not usable:
        return None
    best: AgentInterface = max(
        usable, key=lambda interface: _major(interface.protocol_version or "0.3")
    )
    return best


def _capability_slug(text: str) -> str:
    slug = _CAPABILITY_CHARS.sub("-", text.strip().lower()).strip("-._:/+")
    return slug[:64].rstrip("-._:/+")


def derived_capabilities(card: AgentCard) -> list[str]:
    """Capabilities from the card's skills: each skill's id and tags, as capability slugs."""
    found: list[str] = []
    for skill in card.skills:
        for text in (skill.id, *skill.tags):
            slug = _capability_slug(text)
            if slug and slug not in found:
                found.append(slug)
    return found[:MAX_DERIVED_CAPABILITIES]


def merge_capabilities(declared: list[str], derived: list[str]) -> list[str]:
    merged = list(dict.fromkeys([*declared, *derived]))
    return merged[:MAX_DERIVED_CAPABILITIES]


def gateway_url(public_url: str, agent_id: uuid.UUID) -> str:
    return f"{public_url}/a2a/agents/{agent_id}"


def hub_card(card: AgentCard, *, public_url: str, agent_id: uuid.UUID) -> dict[str, Any]:
    """The card the hub serves for an agent: the agent's own description and skills, with
    interfaces that point at the hub and the hub's bearer authentication. Signatures are
    dropped: they covered the agent's original card, not this one."""
    served = AgentCard()
    served.CopyFrom(card)
    del served.supported_interfaces[:]
    del served.signatures[:]
    served.security_schemes.clear()
    del served.security_requirements[:]
    for version in HUB_PROTOCOL_VERSIONS:
        served.supported_interfaces.append(
            AgentInterface(
                url=gateway_url(public_url, agent_id),
                protocol_binding=JSONRPC_BINDING,
                protocol_version=version,
            )
        )
    # The hub does not relay push notifications or serve an extended card.
    served.capabilities.push_notifications = False
    served.capabilities.extended_agent_card = False
    served.security_schemes[HUB_SECURITY_SCHEME].CopyFrom(
        SecurityScheme(
            http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="bearer",
                bearer_format="Hermes Hub user access token (JWT) or agent API key",
                description="Authenticate as a Hermes Hub user or agent; the hub checks "
                "the agent's ACL and rate limit for every call.",
            )
        )
    )
    requirement = SecurityRequirement()
    requirement.schemes[HUB_SECURITY_SCHEME].SetInParent()
    served.security_requirements.append(requirement)
    return agent_card_to_dict(served)
