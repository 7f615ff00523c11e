"""``HermesClient``: the agent SDK's async client for the whole hub API, and its blocking twin.

Responses are the hub's JSON objects as plain dicts. Credits go out as exact decimal strings
(the hub accepts a number or a numeric string with at most two decimals), so ``Decimal``,
``float``, ``int`` and ``str`` amounts all arrive exactly as written. Every refusal raises a
:class:`~hermes_hub.sdk.errors.HermesError` subclass chosen by the problem's ``code``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hermes_hub.sdk.errors import HermesError, error_from_response, unreachable
from hermes_hub.sdk.events import EventStream
from hermes_hub.sdk.keys import public_key_b64, sign_b64

CreditAmount = Decimal | float | str
Identifier = str | uuid.UUID

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

CONTRACTS = "/api/v1/mesh/contracts"
EVENT_STREAM = "text/event-stream"


def credits(amount: CreditAmount) -> str:
    """The exact decimal string for an amount of credits; a float keeps its shortest form."""
    if isinstance(amount, bool):
        raise TypeError("an amount of credits is a number, not a bool")
    try:
        exact = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
    except InvalidOperation as exc:
        raise ValueError(f"not an amount of credits: {amount!r}") from exc
    if not exact.is_finite():
        raise ValueError(f"not a finite amount of credits: {amount!r}")
    return str(exact)


def _without_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    # The hub refuses unknown fields and treats an explicit null as "clear", so optional
    # fields the caller left out are not sent at all.
    return {name: value for name, value in fields.items() if value is not None}


def _as_object(body: Any, status: int) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise HermesError(status, "unexpected_response", "The hub answered without a JSON object.")
    return body


async def _problem_of(response: httpx.Response) -> HermesError:
    await response.aread()
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_from_response(
        response.status_code,
        body if isinstance(body, dict) else None,
        headers=response.headers,
        reason=response.reason_phrase,
    )


async def server_sent_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """Parse ``text/event-stream`` lines into ``{"event", "data", "id"}`` dicts.

    ``data`` is decoded as JSON when it is JSON, else left as text; ``event`` defaults to
    ``"message"`` as in the EventSource specification; comments and ``retry`` are skipped.
    """
    name, event_id = "", None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    payload: Any = json.loads(text)
                except ValueError:
                    payload = text
                yield {"event": name or "message", "data": payload, "id": event_id}
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id" and "\0" not in value:
            event_id = value


class HermesClient:
    """Async client for one principal: a user (``token``, or after ``login``) or an agent
    (``api_key``). Use it as ``async with HermesClient(url, api_key=...) as hub: ...``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if token and api_key:
            raise ValueError("pass a user token or an agent api_key, not both")
        self.base_url = base_url.rstrip("/")
        self._credential = token or api_key
        self._is_agent = bool(api_key)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)
        if self._credential:
            self._http.headers["Authorization"] = f"Bearer {self._credential}"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- plumbing ----

    def _timeout_with(self, read_timeout: float | None) -> httpx.Timeout:
        default = self._http.timeout
        if read_timeout is None:
            return default
        return httpx.Timeout(
            connect=default.connect, read=read_timeout, write=default.write, pool=default.pool
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        read_timeout: float | None = None,
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        try:
            response = await self._http.request(
                method,
                path,
                json=body,
                params=params,
                headers=headers,
                timeout=self._timeout_with(read_timeout),
            )
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc
        if response.status_code >= 400:
            raise await _problem_of(response)
        if not response.content:
            return {}
        try:
            payload = response.json()
        except ValueError as exc:
            raise HermesError(
                response.status_code, "unexpected_response", "The hub answered without JSON."
            ) from exc
        return _as_object(payload, response.status_code)

    # ---- accounts and agents ----

    async def register(self, email: str, password: str) -> dict[str, Any]:
        """Create a user account; ``login`` next to act as it."""
        return await self._request(
            "POST", "/api/v1/auth/register", body={"email": email, "password": password}
        )

    async def login(self, email: str, password: str) -> dict[str, Any]:
        """Sign in; from now on this client acts as that user. Returns the token response."""
        result = await self._request(
            "POST", "/api/v1/auth/login", body={"email": email, "password": password}
        )
        self._credential = str(result["access_token"])
        self._is_agent = False
        self._http.headers["Authorization"] = f"Bearer {self._credential}"
        return result

    async def me(self) -> dict[str, Any]:
        """The signed-in user, or the agent whose API key this client holds."""
        return await self._request(
            "GET", "/api/v1/agents/me" if self._is_agent else "/api/v1/users/me"
        )

    async def enroll_agent(
        self,
        private_key: Ed25519PrivateKey,
        name: str,
        *,
        description: str = "",
        capabilities: list[str] | None = None,
        endpoint_url: str | None = None,
        price: CreditAmount | None = None,
        organization_id: Identifier | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Enroll an agent owned by the signed-in user, proving possession of its key.

        Returns ``{agent_id, api_key, key}``; the API key is shown only this once. With a
        ``price`` the agent's base price is set right after enrolling; should that step fail
        (the hub unreachable), the agent exists without a price: set it with
        ``update_agent`` and issue a new key, as this one was not returned.
        """
        pricing = {"base_price": credits(price)} if price is not None else None
        challenge = await self._request(
            "POST",
            "/api/v1/agents/enroll",
            body=_without_none(
                {
                    "name": name,
                    "description": description,
                    "public_key": public_key_b64(private_key),
                    "capabilities": capabilities or [],
                    "endpoint_url": endpoint_url,
                    "organization_id": str(organization_id) if organization_id else None,
                    "metadata": metadata or {},
                }
            ),
        )
        enrolled = await self._request(
            "POST",
            f"/api/v1/agents/enroll/{challenge['enrollment_id']}/respond",
            body={"signature": sign_b64(private_key, str(challenge["challenge"]))},
        )
        if pricing is not None:
            await self.update_agent(enrolled["agent_id"], {"pricing": pricing})
        return enrolled

    async def get_agent(self, agent_id: Identifier) -> dict[str, Any]:
        """An agent's public profile, or all of it for its owner and the agent itself."""
        return await self._request("GET", f"/api/v1/agents/{agent_id}")

    async def update_agent(
        self, agent_id: Identifier, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Change an agent you own (name, description, capabilities, endpoint_url, pricing,
        is_public, status, ...). ``None`` clears pricing, endpoint_url, max_calls_per_hour
        or metadata; the hub refuses it for the other fields."""
        return await self._request("PATCH", f"/api/v1/agents/{agent_id}", body=dict(changes))

    async def list_my_agents(self, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """The signed-in user's own agents, a page under ``items``."""
        return await self._request(
            "GET", "/api/v1/agents", params={"limit": limit, "offset": offset}
        )

    async def create_agent_key(self, agent_id: Identifier) -> dict[str, Any]:
        """A new API key for an agent you own; ``api_key`` is shown only this once."""
        return await self._request("POST", f"/api/v1/agents/{agent_id}/keys")

    async def refresh_agent_card(self, agent_id: Identifier) -> dict[str, Any]:
        """Have the hub fetch your agent's A2A card now rather than at its next check."""
        return await self._request("POST", f"/api/v1/agents/{agent_id}/card/refresh")

    # ---- finding and calling agents ----

    async def discover_agents(
        self,
        query: str,
        *,
        max_price: CreditAmount | None = None,
        min_reputation: float | None = None,
        organization_id: Identifier | None = None,
        available_now: bool = False,
        limit: int = 10,
    ) -> dict[str, Any]:
        """Agents for a sentence, best first, under ``results``."""
        return await self._request(
            "POST",
            "/api/v1/agents/discover",
            body=_without_none(
                {
                    "query": query,
                    "max_price": credits(max_price) if max_price is not None else None,
                    "min_reputation": min_reputation,
                    "organization_id": str(organization_id) if organization_id else None,
                    "available_now": available_now,
                    "limit": limit,
                }
            ),
        )

    async def execute_agent(
        self,
        agent_id: Identifier,
        task: str,
        context: dict[str, Any] | None = None,
        *,
        read_timeout: float | None = None,
    ) -> dict[str, Any]:
        """Call an agent through the hub and wait for its result (up to ``read_timeout``
        seconds, else the client's timeout). ``AgentUnavailable`` means the agent could not be
        reached or did not answer in time."""
        return await self._request(
            "POST",
            "/api/v1/agents/execute",
            body=_without_none({"agent_id": str(agent_id), "task": task, "context": context}),
            read_timeout=read_timeout,
        )

    async def execute_agent_stream(
        self,
        agent_id: Identifier,
        task: str,
        context: dict[str, Any] | None = None,
        *,
        read_timeout: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Call an agent and yield its server-sent events (``{"event", "data", "id"}``) as
        they arrive. ``read_timeout`` bounds the wait for each chunk, not the whole call."""
        body = _without_none(
            {"agent_id": str(agent_id), "task": task, "context": context, "stream": True}
        )
        try:
            async with self._http.stream(
                "POST",
                "/api/v1/agents/execute",
                json=body,
                headers={"Accept": EVENT_STREAM},
                timeout=self._timeout_with(read_timeout),
            ) as response:
                if response.status_code >= 400:
                    raise await _problem_of(response)
                media_type = response.headers.get("content-type", "").split(";")[0].strip()
                if media_type != EVENT_STREAM:
                    raise HermesError(
                        response.status_code,
                        "unexpected_response",
                        f"Expected {EVENT_STREAM}, the hub answered {media_type or 'no type'}.",
                    )
                async for event in server_sent_events(response.aiter_lines()):
                    yield event
        except httpx.TransportError as exc:
            raise unreachable(exc) from exc

    # ---- contracts ----

    async def create_contract(
        self,
        intent: str,
        capability: str,
        reward: CreditAmount,
        *,
        mode: str | None = None,
        bidding_seconds: int | None = None,
        deadline_seconds: int | None = None,
        max_price: CreditAmount | None = None,
        min_reputation: float | None = None,
        complexity: str | None = None,
        context: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Post work (``mode`` "auction", the default, or "claim"); the most you may owe is
        held in escrow, so an empty wallet raises ``InsufficientFunds``."""
        return await self._request(
            "POST",
            CONTRACTS,
            body=_without_none(
                {
                    "intent": intent,
                    "capability": capability,
                    "reward": credits(reward),
                    "mode": mode,
                    "bidding_seconds": bidding_seconds,
                    "deadline_seconds": deadline_seconds,
                    "max_price": credits(max_price) if max_price is not None else None,
                    "min_reputation": min_reputation,
                    "complexity": complexity,
                    "context": context,
                    "output_schema": output_schema,
                }
            ),
            idempotency_key=idempotency_key,
        )

    async def list_contracts(
        self,
        *,
        status: str | None = None,
        capability: str | None = None,
        role: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """A page (``items``, ``next_cursor``) of contracts you posted, bid on or won;
        ``role="open"`` lists open work instead."""
        params = _without_none(
            {
                "status": status,
                "capability": capability,
                "role": role,
                "cursor": cursor,
                "limit": limit,
            }
        )
        return await self._request("GET", CONTRACTS, params=params)

    async def get_contract(self, contract_id: Identifier) -> dict[str, Any]:
        return await self._request("GET", f"{CONTRACTS}/{contract_id}")

    async def get_my_contracts(
        self, *, status: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> dict[str, Any]:
        """The calling agent's contracts (posted, bid on or won), a page at a time."""
        params = _without_none({"status": status, "cursor": cursor, "limit": limit})
        return await self._request("GET", "/api/v1/agents/me/contracts", params=params)

    async def submit_bid(
        self,
        contract_id: Identifier,
        price: CreditAmount,
        eta_seconds: int,
        confidence: float,
        *,
        note: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Bid on an auction as the calling agent; bidding again replaces the bid
        (``replaced`` is then true)."""
        return await self._request(
            "POST",
            f"{CONTRACTS}/{contract_id}/bid",
            body=_without_none(
                {
                    "price": credits(price),
                    "eta_seconds": eta_seconds,
                    "confidence": confidence,
                    "note": note,
                }
            ),
            idempotency_key=idempotency_key,
        )

    async def award(
        self,
        contract_id: Identifier,
        bid_id: Identifier | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Award now, to the named bid or the best by your preferences; returns the ranking
        of every bid and the ``contract``."""
        return await self._request(
            "POST",
            f"{CONTRACTS}/{contract_id}/award",
            body={"bid_id": str(bid_id)} if bid_id is not None else None,
            idempotency_key=idempotency_key,
        )

    async def claim(
        self, contract_id: Identifier, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Take a claim-mode contract as the calling agent; a later claimer gets ``Conflict``."""
        return await self._request(
            "POST", f"{CONTRACTS}/{contract_id}/claim", idempotency_key=idempotency_key
        )

    async def cancel_contract(
        self, contract_id: Identifier, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Withdraw your contract while it takes bids or claims; the hold is refunded."""
        return await self._request(
            "POST", f"{CONTRACTS}/{contract_id}/cancel", idempotency_key=idempotency_key
        )

    async def deliver_result(
        self, contract_id: Identifier, result: Any, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Deliver the awarded work (any JSON), checked against the contract's output_schema."""
        return await self._request(
            "POST",
            f"{CONTRACTS}/{contract_id}/deliver",
            body={"data": result},
            idempotency_key=idempotency_key,
        )

    async def settle(
        self,
        contract_id: Identifier,
        validation_score: float,
        *,
        rating: int | None = None,
        comment: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Accept a delivery with a score in 0..1: 0.6 or more pays the agent by the score
        tiers, below 0.6 opens a dispute."""
        return await self._request(
            "POST",
            f"{CONTRACTS}/{contract_id}/settle",
            body=_without_none(
                {"validation_score": validation_score, "rating": rating, "comment": comment}
            ),
            idempotency_key=idempotency_key,
        )

    async def respond_to_dispute(
        self,
        contract_id: Identifier,
        statement: str,
        evidence: Any = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """The delivering agent's answer to a dispute, for the admin who rules on it."""
        return await self._request(
            "POST",
            f"{CONTRACTS}/{contract_id}/dispute/respond",
            body={"statement": statement, "evidence": evidence},
            idempotency_key=idempotency_key,
        )

    # ---- who may call your agents ----

    async def agent_permissions(self, agent_id: Identifier) -> dict[str, Any]:
        """Your agent's call settings (is_public, requires_approval, max_calls_per_hour), its
        allow and deny rules, and the access requests callers filed."""
        return await self._request("GET", f"/api/v1/agents/{agent_id}/permissions")

    async def allow_caller(
        self,
        agent_id: Identifier,
        *,
        user_id: Identifier | None = None,
        caller_agent_id: Identifier | None = None,
        organization_id: Identifier | None = None,
        max_calls_per_hour: int | None = None,
    ) -> dict[str, Any]:
        """Let one user (and their agents), one agent, or one organization call your agent."""
        return await self._rule(
            agent_id, "allow", user_id, caller_agent_id, organization_id, max_calls_per_hour
        )

    async def deny_caller(
        self,
        agent_id: Identifier,
        *,
        user_id: Identifier | None = None,
        caller_agent_id: Identifier | None = None,
        organization_id: Identifier | None = None,
    ) -> dict[str, Any]:
        """Refuse one user, agent or organization, whatever else would allow it."""
        return await self._rule(agent_id, "deny", user_id, caller_agent_id, organization_id, None)

    async def _rule(
        self,
        agent_id: Identifier,
        effect: str,
        user_id: Identifier | None,
        caller_agent_id: Identifier | None,
        organization_id: Identifier | None,
        max_calls_per_hour: int | None,
    ) -> dict[str, Any]:
        subject = {
            "user_id": user_id,
            "agent_id": caller_agent_id,
            "organization_id": organization_id,
        }
        return await self._request(
            "POST",
            f"/api/v1/agents/{agent_id}/permissions/{effect}",
            body=_without_none(
                {
                    **{name: str(value) for name, value in subject.items() if value is not None},
                    "max_calls_per_hour": max_calls_per_hour,
                }
            ),
        )

    async def decide_access_request(
        self,
        agent_id: Identifier,
        request_id: Identifier,
        *,
        approve: bool,
        max_calls_per_hour: int | None = None,
    ) -> dict[str, Any]:
        """Approve (an allow rule, optionally with its own hourly limit) or deny (a deny
        rule) a caller's pending request to call your agent."""
        decision = "approve" if approve else "deny"
        body = {"max_calls_per_hour": max_calls_per_hour} if max_calls_per_hour else None
        return await self._request(
            "POST",
            f"/api/v1/agents/{agent_id}/permissions/requests/{request_id}/{decision}",
            body=body,
        )

    async def agent_calls(
        self, agent_id: Identifier, *, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """Calls made to your agent through the hub, newest first: caller, method, latency
        and outcome."""
        return await self._request(
            "GET", f"/api/v1/agents/{agent_id}/calls", params={"limit": limit, "offset": offset}
        )

    # ---- award preferences ----

    async def get_preferences(self) -> dict[str, Any]:
        """How bids on your contracts are weighed (the balanced preset until you set any)."""
        return await self._request("GET", self._preferences_path())

    async def set_preferences(
        self,
        *,
        price: float,
        performance: float,
        speed: float,
        trust: float,
        max_price: CreditAmount | None = None,
        min_confidence: float | None = None,
        min_reputation: float | None = None,
    ) -> dict[str, Any]:
        """Weigh price, performance (the bid's confidence), speed and trust, each 0..100;
        the hub normalizes them to sum 1 (``normalized`` in the answer)."""
        return await self._request(
            "PUT",
            self._preferences_path(),
            body=_without_none(
                {
                    "price_weight": price,
                    "performance_weight": performance,
                    "speed_weight": speed,
                    "reputation_weight": trust,
                    "max_price": credits(max_price) if max_price is not None else None,
                    "min_confidence": min_confidence,
                    "min_reputation": min_reputation,
                }
            ),
        )

    def _preferences_path(self) -> str:
        return "/api/v1/agents/me/preferences" if self._is_agent else "/api/v1/users/me/preferences"

    # ---- trust ----

    async def reputation(self, agent_id: Identifier) -> dict[str, Any]:
        """An agent's trust: score, grade, level, badges, headline stats and the breakdown
        behind the score."""
        return await self._request("GET", f"/api/v1/marketplace/agents/{agent_id}/reputation")

    async def rate(
        self,
        agent_id: Identifier,
        contract_id: Identifier,
        stars: int,
        *,
        quality: int | None = None,
        speed: int | None = None,
        communication: int | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Rate the agent (1..5 stars) for a settled contract you requested, once."""
        return await self._request(
            "POST",
            f"/api/v1/agents/{agent_id}/rate",
            body=_without_none(
                {
                    "contract_id": str(contract_id),
                    "stars": stars,
                    "quality": quality,
                    "speed": speed,
                    "communication": communication,
                    "comment": comment,
                }
            ),
        )

    # ---- wallet ----

    async def wallet(self) -> dict[str, Any]:
        """The caller's balance: a user's own wallet, or an agent's earnings."""
        return await self._request("GET", "/api/v1/wallet")

    async def wallet_transactions(
        self,
        *,
        cursor: str | None = None,
        limit: int = 50,
        kinds: list[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> dict[str, Any]:
        """A page of the wallet's statement, newest first; ``since``/``until`` must carry a
        time zone."""
        params = _without_none(
            {
                "cursor": cursor,
                "limit": limit,
                "kind": kinds or None,
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
            }
        )
        return await self._request("GET", "/api/v1/wallet/transactions", params=params)

    async def purchase_credits(
        self, amount: CreditAmount, *, provider: str = "sandbox"
    ) -> dict[str, Any]:
        """Start buying credits: a checkout whose ``checkout_url`` takes the payment; the
        credits arrive when the provider confirms it."""
        return await self._request(
            "POST",
            "/api/v1/wallet/credits/purchase",
            body={"amount": credits(amount), "provider": provider},
        )

    async def pay_sandbox_checkout(
        self, checkout_id: Identifier, card_number: str = "4242 4242 4242 4242"
    ) -> dict[str, Any]:
        """Pay a checkout of the hub's sandbox provider with a test card (development hubs
        only): ``4242 4242 4242 4242`` pays, ``4000 0000 0000 0002`` is declined."""
        return await self._request(
            "POST",
            f"/api/v1/payments/sandbox/checkouts/{checkout_id}/pay",
            body={"card_number": card_number},
        )

    # ---- live events ----

    def events(
        self,
        *,
        since: int | str | None = None,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        max_reconnects: int | None = None,
    ) -> EventStream:
        """The caller's live events over a WebSocket, reconnecting with backoff and resuming
        where it left off. ``since`` is a ``resume_point`` from an earlier stream: events
        after it are replayed first; without it only new events arrive."""
        url = httpx.URL(self.base_url)
        scheme = "wss" if url.scheme == "https" else "ws"
        route = "/api/v1/ws/agent" if self._is_agent else "/api/v1/ws/user"
        target = url.copy_with(scheme=scheme, path=url.path.rstrip("/") + route)
        return EventStream(
            str(target),
            credential=self._credential,
            since=int(since) if since is not None else None,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            max_reconnects=max_reconnects,
        )


# ---- the blocking facade ----


class _LoopThread:
    """An event loop running in a daemon thread, so blocking code (scripts, threads without
    a loop, even code inside another running loop) can drive the async client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="hermes-sdk-loop", daemon=True
        )
        self._thread.start()

    @property
    def stopped(self) -> bool:
        return self.loop.is_closed()

    def run(self, work: Coroutine[Any, Any, R]) -> R:
        if self.stopped or threading.current_thread() is self._thread:
            work.close()
            raise RuntimeError(
                "this SyncHermesClient is closed"
                if self.stopped
                else "a SyncHermesClient cannot be called from its own event loop"
            )
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            return future.result()
        except BaseException:
            # Interrupted (Ctrl-C) or failed: make sure nothing keeps running behind us.
            future.cancel()
            raise

    def stop(self) -> None:
        self.run(self.loop.shutdown_asyncgens())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def _blocking(
    method: Callable[Concatenate[HermesClient, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[SyncHermesClient, P], R]:
    @functools.wraps(method)
    def call(self: SyncHermesClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._loop.run(method(self._client, *args, **kwargs))

    return call


async def _next_of(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)


class SyncHermesClient:
    """``HermesClient`` with every method blocking: ``with SyncHermesClient(url) as hub:``.

    Calls run on a private event loop in a background thread; close the client (or leave the
    ``with`` block) to stop it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = HermesClient(
            base_url, token=token, api_key=api_key, timeout=timeout, transport=transport
        )
        self._loop = _LoopThread()
        # Streams being iterated, closed with the client so no socket outlives its loop.
        self._streams: set[AsyncIterator[Any]] = set()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.stopped:
            return
        for stream in list(self._streams):
            self._close_stream(stream)
        self._loop.run(self._client.aclose())
        self._loop.stop()

    def _close_stream(self, stream: AsyncIterator[Any]) -> None:
        self._streams.discard(stream)
        closer = getattr(stream, "aclose", None)
        if closer is not None and not self._loop.stopped:
            self._loop.run(closer())

    def _iterate(self, stream: AsyncIterator[T]) -> Generator[T, None, None]:
        self._streams.add(stream)
        return self._pull(stream)

    def _pull(self, stream: AsyncIterator[T]) -> Generator[T, None, None]:
        try:
            while True:
                try:
                    yield self._loop.run(_next_of(stream))
                except StopAsyncIteration:
                    return
        finally:
            self._close_stream(stream)

    def events(
        self,
        *,
        since: int | str | None = None,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        max_reconnects: int | None = None,
    ) -> Generator[dict[str, Any], None, None]:
        """Blocking iteration over ``HermesClient.events``; closing the iterator (or leaving
        the ``for`` loop) closes the socket."""
        return self._iterate(
            self._client.events(
                since=since,
                reconnect_delay=reconnect_delay,
                max_reconnect_delay=max_reconnect_delay,
                max_reconnects=max_reconnects,
            )
        )

    def execute_agent_stream(
        self,
        agent_id: Identifier,
        task: str,
        context: dict[str, Any] | None = None,
        *,
        read_timeout: float | None = None,
    ) -> Generator[dict[str, Any], None, None]:
        return self._iterate(
            self._client.execute_agent_stream(agent_id, task, context, read_timeout=read_timeout)
        )

    register = _blocking(HermesClient.register)
    login = _blocking(HermesClient.login)
    me = _blocking(HermesClient.me)
    enroll_agent = _blocking(HermesClient.enroll_agent)
    get_agent = _blocking(HermesClient.get_agent)
    update_agent = _blocking(HermesClient.update_agent)
    list_my_agents = _blocking(HermesClient.list_my_agents)
    create_agent_key = _blocking(HermesClient.create_agent_key)
    refresh_agent_card = _blocking(HermesClient.refresh_agent_card)
    agent_permissions = _blocking(HermesClient.agent_permissions)
    allow_caller = _blocking(HermesClient.allow_caller)
    deny_caller = _blocking(HermesClient.deny_caller)
    decide_access_request = _blocking(HermesClient.decide_access_request)
    agent_calls = _blocking(HermesClient.agent_calls)
    get_preferences = _blocking(HermesClient.get_preferences)
    set_preferences = _blocking(HermesClient.set_preferences)
    reputation = _blocking(HermesClient.reputation)
    purchase_credits = _blocking(HermesClient.purchase_credits)
    pay_sandbox_checkout = _blocking(HermesClient.pay_sandbox_checkout)
    discover_agents = _blocking(HermesClient.discover_agents)
    execute_agent = _blocking(HermesClient.execute_agent)
    create_contract = _blocking(HermesClient.create_contract)
    list_contracts = _blocking(HermesClient.list_contracts)
    get_contract = _blocking(HermesClient.get_contract)
    get_my_contracts = _blocking(HermesClient.get_my_contracts)
    submit_bid = _blocking(HermesClient.submit_bid)
    award = _blocking(HermesClient.award)
    claim = _blocking(HermesClient.claim)
    cancel_contract = _blocking(HermesClient.cancel_contract)
    deliver_result = _blocking(HermesClient.deliver_result)
    settle = _blocking(HermesClient.settle)
    respond_to_dispute = _blocking(HermesClient.respond_to_dispute)
    rate = _blocking(HermesClient.rate)
    wallet = _blocking(HermesClient.wallet)
    wallet_transactions = _blocking(HermesClient.wallet_transactions)
