"""Async HTTP client for the hub's REST API."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hermes_hub.sdk.keys import public_key_b64, sign_b64


class HubApiError(Exception):
    """The hub answered with an RFC 9457 problem."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{detail} ({status} {code})")
        self.status = status
        self.code = code
        self.detail = detail


class HubClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

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

    def use_token(self, token: str) -> None:
        self._http.headers["Authorization"] = f"Bearer {token}"

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            raise HubApiError(
                response.status_code,
                str(problem.get("code", "http_error")),
                str(problem.get("detail", response.reason_phrase)),
            )
        return response.json() if response.content else None

    async def register(self, *, email: str, password: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "POST", "/api/v1/auth/register", json={"email": email, "password": password}
        )
        return result

    async def login(self, *, email: str, password: str) -> str:
        result = await self._request(
            "POST", "/api/v1/auth/login", json={"email": email, "password": password}
        )
        token = str(result["access_token"])
        self.use_token(token)
        return token

    async def enroll_agent(
        self,
        *,
        private_key: Ed25519PrivateKey,
        name: str,
        description: str = "",
        capabilities: list[str] | None = None,
        endpoint_url: str | None = None,
        organization_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run the challenge-response enrollment; returns ``{agent_id, api_key, key}``."""
        payload: dict[str, Any] = {
            "name": name,
            "description": description,
            "public_key": public_key_b64(private_key),
            "capabilities": capabilities or [],
            "metadata": metadata or {},
        }
        if endpoint_url:
            payload["endpoint_url"] = endpoint_url
        if organization_id:
            payload["organization_id"] = organization_id
        challenge = await self._request("POST", "/api/v1/agents/enroll", json=payload)
        result: dict[str, Any] = await self._request(
            "POST",
            f"/api/v1/agents/enroll/{challenge['enrollment_id']}/respond",
            json={"signature": sign_b64(private_key, challenge["challenge"])},
        )
        return result

    async def current_agent(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/api/v1/agents/me")
        return result

    async def get_wallet(self) -> dict[str, Any]:
        """The caller's wallet (a user's own, or an agent's earnings for an API key)."""
        result: dict[str, Any] = await self._request("GET", "/api/v1/wallet")
        return result

    async def list_wallet_transactions(
        self, *, cursor: str | None = None, limit: int = 50, kinds: list[str] | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if kinds:
            params["kind"] = kinds
        result: dict[str, Any] = await self._request(
            "GET", "/api/v1/wallet/transactions", params=params
        )
        return result

    async def discover_agents(
        self,
        query: str,
        *,
        max_price: float | None = None,
        min_reputation: float | None = None,
        organization_id: str | None = None,
        available_now: bool = False,
        limit: int = 10,
    ) -> dict[str, Any]:
        """Agents for a sentence, best first (works without a token: public agents only)."""
        body: dict[str, Any] = {"query": query, "available_now": available_now, "limit": limit}
        if max_price is not None:
            body["max_price"] = max_price
        if min_reputation is not None:
            body["min_reputation"] = min_reputation
        if organization_id is not None:
            body["organization_id"] = organization_id
        result: dict[str, Any] = await self._request("POST", "/api/v1/agents/discover", json=body)
        return result
