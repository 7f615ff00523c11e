"""Helpers for the A2A tests: an agent enrolled at a stock agent's endpoint, and a stock
a2a-sdk client talking to the hub."""

from __future__ import annotations

from typing import Any

import httpx
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import new_text_message
from a2a.types.a2a_pb2 import AgentCard, Role, SendMessageRequest, StreamResponse
from fastapi import FastAPI

from tests.factories import TestAgent, TestUser, enroll

HUB = "http://testserver"


async def enroll_at(
    client: httpx.AsyncClient, owner: TestUser, endpoint: str, **fields: Any
) -> TestAgent:
    """Enroll an agent whose endpoint is ``endpoint`` and fetch its card now."""
    agent = await enroll(client, owner, endpoint_url=endpoint, **fields)
    response = await client.post(f"/api/v1/agents/{agent.id}/card/refresh", headers=owner.headers)
    assert response.status_code == 200, response.text
    return agent


def hub_http(app: FastAPI, token: str | None) -> httpx.AsyncClient:
    """An httpx client into the hub app, as a remote A2A client would hold one."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("198.51.100.9", 50000)),
        base_url=HUB,
        headers=headers,
        timeout=30,
    )


async def resolve_card(http: httpx.AsyncClient, agent_id: str) -> AgentCard:
    return await A2ACardResolver(http, f"{HUB}/a2a/agents/{agent_id}").get_agent_card()


async def stock_client(http: httpx.AsyncClient, agent_id: str, *, streaming: bool) -> Client:
    card = await resolve_card(http, agent_id)
    return ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(card)


def user_message(text: str) -> SendMessageRequest:
    return SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))


async def collect(client: Client, text: str) -> list[StreamResponse]:
    return [event async for event in client.send_message(user_message(text))]


async def calls_of(
    client: httpx.AsyncClient, app: FastAPI, owner: TestUser, agent_id: str
) -> list[dict[str, Any]]:
    """The agent's call log, as its owner reads it, once every queued row is written."""
    await app.state.a2a.recorder.drain()
    response = await client.get(f"/api/v1/agents/{agent_id}/calls", headers=owner.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
