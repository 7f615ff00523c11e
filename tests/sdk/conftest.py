"""SDK fixtures: HermesClients speaking to the test app in-process, and signed-up parties."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hermes_hub.sdk import HermesClient, generate_private_key
from tests.factories import PASSWORD, TestUser
from tests.ledger.helpers import grant, make_admin

BASE_URL = "http://testserver"

Connect = Callable[..., HermesClient]


@dataclass
class Party:
    """A signed-in HermesClient with what the hub said about its principal."""

    hub: HermesClient
    id: str
    # The user's access token or the agent's API key.
    credential: str


@pytest.fixture
async def connect(app: FastAPI) -> AsyncIterator[Connect]:
    """Build HermesClients over the app's ASGI transport; all are closed after the test."""
    opened: list[HermesClient] = []

    def open_client(*, token: str | None = None, api_key: str | None = None) -> HermesClient:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        hub = HermesClient(BASE_URL, token=token, api_key=api_key, transport=transport)
        opened.append(hub)
        return hub

    yield open_client
    for hub in opened:
        await hub.aclose()


async def sign_up(connect: Connect) -> Party:
    hub = connect()
    email = f"sdk-{uuid.uuid4().hex[:10]}@example.com"
    user = await hub.register(email, PASSWORD)
    session = await hub.login(email, PASSWORD)
    return Party(hub=hub, id=str(user["id"]), credential=str(session["access_token"]))


async def fund(app: FastAPI, client: httpx.AsyncClient, party: Party, amount: Any) -> None:
    admin = await make_admin(app, client)
    await grant(client, admin, TestUser(id=party.id, email="", token=""), amount)


async def enroll(
    connect: Connect, owner: Party, *, capabilities: list[str] | None = None, **fields: Any
) -> Party:
    """Enroll an agent through ``owner``'s client; return a client holding its API key."""
    enrolled = await owner.hub.enroll_agent(
        generate_private_key(),
        f"agent {uuid.uuid4().hex[:6]}",
        capabilities=capabilities or ["summarize"],
        **fields,
    )
    api_key = str(enrolled["api_key"])
    return Party(hub=connect(api_key=api_key), id=str(enrolled["agent_id"]), credential=api_key)
