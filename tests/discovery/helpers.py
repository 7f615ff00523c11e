"""Helpers for discovery tests: agents enrolled (and so indexed) through the public API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from hermes_hub.identity.models import User
from tests.factories import TestAgent, TestUser, enroll

DISCOVER = "/api/v1/agents/discover"
MARKETPLACE = "/api/v1/marketplace"

# Fields the enrollment request takes; anything else is set by a PATCH right after.
ENROLL_FIELDS = frozenset({"endpoint_url", "organization_id", "metadata"})


async def enroll_indexed(
    client: httpx.AsyncClient,
    owner: TestUser,
    *,
    name: str,
    description: str,
    capabilities: list[str],
    **fields: Any,
) -> TestAgent:
    """Enroll an agent (which indexes it) and apply the other fields with one PATCH.

    ``fields`` use the API's names: ``endpoint_url``, ``organization_id`` and ``metadata``
    go with the enrollment; ``pricing``, ``is_public``, ``category``, ``status``,
    ``max_calls_per_hour`` (any AgentUpdate field) are PATCHed by the owner afterwards.
    """
    at_enrollment = {key: value for key, value in fields.items() if key in ENROLL_FIELDS}
    if "organization_id" in at_enrollment:
        at_enrollment["organization_id"] = str(at_enrollment["organization_id"])
    later = {key: value for key, value in fields.items() if key not in ENROLL_FIELDS}
    agent = await enroll(
        client,
        owner,
        name=name,
        description=description,
        capabilities=capabilities,
        **at_enrollment,
    )
    if later:
        response = await client.patch(
            f"/api/v1/agents/{agent.id}", json=later, headers=owner.headers
        )
        assert response.status_code == 200, response.text
    return agent


async def discover(
    client: httpx.AsyncClient,
    query: str,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """POST /discover and return the body; fails the test unless it answered 200."""
    response = await client.post(DISCOVER, json={"query": query, **fields}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def result_ids(body: dict[str, Any]) -> list[str]:
    return [result["id"] for result in body["results"]]


async def make_admin(app: FastAPI, user: TestUser) -> None:
    async with app.state.database.write_sessions.begin() as session:
        (await session.get(User, uuid.UUID(user.id))).role = "admin"


async def create_org(
    client: httpx.AsyncClient, owner: TestUser, slug: str | None = None
) -> dict[str, Any]:
    slug = slug or f"org-{uuid.uuid4().hex[:8]}"
    response = await client.post(
        "/api/v1/orgs", json={"name": f"Org {slug}", "slug": slug}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def add_member(
    client: httpx.AsyncClient, owner: TestUser, org: dict[str, Any], member: TestUser
) -> None:
    response = await client.post(
        f"/api/v1/orgs/{org['id']}/members",
        json={"email": member.email, "role": "member"},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text


async def ban_agent(client: httpx.AsyncClient, admin: TestUser, agent: TestAgent) -> None:
    response = await client.post(
        f"/api/v1/admin/agents/{agent.id}/ban",
        json={"reason": "manipulation"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
