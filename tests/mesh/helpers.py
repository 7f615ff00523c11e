"""Helpers for mesh tests: funded requesters, capable agents, and contract shortcuts."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.factories import TestAgent, TestUser, enroll, register
from tests.ledger.helpers import grant, make_admin

CONTRACTS = "/api/v1/mesh/contracts"


async def funded_user(
    app: FastAPI, client: httpx.AsyncClient, credits: Any = 100, admin: TestUser | None = None
) -> TestUser:
    admin = admin or await make_admin(app, client)
    user = await register(client)
    await grant(client, admin, user, credits)
    return user


async def capable_agent(
    client: httpx.AsyncClient, owner: TestUser | None = None, capabilities: list[str] | None = None
) -> TestAgent:
    owner = owner or await register(client)
    return await enroll(client, owner, capabilities=capabilities or ["summarize"])


async def post_contract(client: httpx.AsyncClient, requester: Any, **fields: Any) -> dict[str, Any]:
    body = {"intent": "Summarize this report", "capability": "summarize", "reward": 5, **fields}
    response = await client.post(CONTRACTS, json=body, headers=requester.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def bid(
    client: httpx.AsyncClient, agent: TestAgent, contract_id: str, **fields: Any
) -> httpx.Response:
    body = {"price": 4, "eta_seconds": 30, "confidence": 0.9, **fields}
    return await client.post(f"{CONTRACTS}/{contract_id}/bid", json=body, headers=agent.headers)
