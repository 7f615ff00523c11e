"""Helpers for trust tests: finish contracts between a requester and an agent through the API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import TestAgent
from tests.mesh.helpers import CONTRACTS, bid, post_contract

MARKETPLACE = "/api/v1/marketplace"


async def finish_contract(
    client: httpx.AsyncClient,
    requester: Any,
    agent: TestAgent,
    *,
    score: float = 1.0,
    rating: int | None = None,
    reward: Any = 5,
    price: Any = 4,
    eta: int = 600,
    capability: str = "summarize",
) -> dict[str, Any]:
    """Post, bid (only ``agent``), award, deliver and settle at ``score``; return the final
    contract. A score under 0.6 leaves the contract disputed."""
    contract = await post_contract(
        client, requester, reward=reward, bidding_seconds=600, capability=capability
    )
    url = f"{CONTRACTS}/{contract['id']}"
    placed = await bid(client, agent, contract["id"], price=price, eta_seconds=eta, confidence=0.9)
    assert placed.status_code == 201, placed.text
    award = await client.post(f"{url}/award", headers=requester.headers)
    assert award.status_code == 200, award.text
    delivered = await client.post(
        f"{url}/deliver", json={"data": {"summary": "done"}}, headers=agent.headers
    )
    assert delivered.status_code == 200, delivered.text
    body: dict[str, Any] = {"validation_score": score}
    if rating is not None:
        body["rating"] = rating
    settled = await client.post(f"{url}/settle", json=body, headers=requester.headers)
    assert settled.status_code == 200, settled.text
    result: dict[str, Any] = settled.json()
    return result


async def trust_of(client: httpx.AsyncClient, agent: TestAgent, viewer: Any) -> dict[str, Any]:
    response = await client.get(
        f"{MARKETPLACE}/agents/{agent.id}/trust-score", headers=viewer.headers
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def reputation_of(client: httpx.AsyncClient, agent: TestAgent, viewer: Any) -> dict[str, Any]:
    response = await client.get(
        f"{MARKETPLACE}/agents/{agent.id}/reputation", headers=viewer.headers
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
