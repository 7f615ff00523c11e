"""Who may call an agent through the hub (each ACL rule), per-caller rate limits, the execute
API, and the hub's AI Catalog."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from hermes_hub.events.models import Event
from tests.a2a.helpers import enroll_at
from tests.a2a.stock_agent import stock_agent
from tests.discovery.helpers import create_org
from tests.factories import assert_problem, enroll, register

EXECUTE = "/api/v1/agents/execute"


def perms(agent_id: str) -> str:
    return f"/api/v1/agents/{agent_id}/permissions"


async def execute(
    client: httpx.AsyncClient, caller, agent_id: str, task: str = "hi"
) -> httpx.Response:
    return await client.post(
        EXECUTE, json={"agent_id": agent_id, "task": task}, headers=caller.headers
    )


async def set_agent(client: httpx.AsyncClient, owner, agent_id: str, **changes) -> None:
    response = await client.patch(f"/api/v1/agents/{agent_id}", json=changes, headers=owner.headers)
    assert response.status_code == 200, response.text


async def test_execute_returns_the_agents_answer(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    caller = await enroll(client, await register(client))
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        response = await client.post(
            EXECUTE,
            json={"agent_id": agent.id, "task": "book paris", "context": {"when": "next week"}},
            headers=caller.headers,
        )
        streamed = await client.post(
            EXECUTE,
            json={"agent_id": agent.id, "task": "stream paris", "stream": True},
            headers=caller.headers,
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["agent_id"] == agent.id
    assert body["kind"] == "task"
    assert body["state"] == "completed"
    assert body["output"]["text"] == "BOOK PARIS #1"
    assert upstream.behaviour.seen[0] == "book paris"
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [
        line.removeprefix("event: ")
        for line in streamed.text.splitlines()
        if line.startswith("event: ")
    ]
    assert events[0] == "task"
    assert "artifact" in events
    assert events[-1] == "done"
    assert '"state":"completed"' in streamed.text


async def test_private_agents_default_deny_and_hide(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    stranger = await enroll(client, await register(client))
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        await set_agent(client, owner, agent.id, is_public=False)
        assert_problem(await execute(client, stranger, agent.id), 404, "agent_not_found")
        card = await client.get(
            f"/a2a/agents/{agent.id}/.well-known/agent-card.json", headers=stranger.headers
        )
        assert_problem(card, 404, "agent_not_found")
        # The owner always may.
        assert (await execute(client, owner, agent.id)).status_code == 200
    assert upstream.behaviour.seen == ["hi"]


async def test_agent_level_allow_and_deny(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    friend = await enroll(client, await register(client))
    foe = await enroll(client, await register(client))
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        await set_agent(client, owner, agent.id, is_public=False)
        response = await client.post(
            f"{perms(agent.id)}/allow", json={"agent_id": friend.id}, headers=owner.headers
        )
        assert response.status_code == 200
        assert (await execute(client, friend, agent.id)).status_code == 200
        # A deny wins even on a public agent.
        await set_agent(client, owner, agent.id, is_public=True)
        assert (await execute(client, foe, agent.id)).status_code == 200
        response = await client.post(
            f"{perms(agent.id)}/deny", json={"agent_id": foe.id}, headers=owner.headers
        )
        assert response.status_code == 200
        assert_problem(await execute(client, foe, agent.id), 403, "call_denied")


async def test_org_level_allow_and_same_organization(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    org = await create_org(client, owner)
    colleague_user = await register(client)
    response = await client.post(
        f"/api/v1/orgs/{org['id']}/members",
        json={"email": colleague_user.email, "role": "admin"},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    colleague_agent = await enroll(client, colleague_user, organization_id=org["id"])
    partner_owner = await register(client)
    partner_org = await create_org(client, partner_owner)
    partner_agent = await enroll(client, partner_owner, organization_id=partner_org["id"])
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url, organization_id=org["id"])
        await set_agent(client, owner, agent.id, is_public=False)
        assert (await execute(client, colleague_agent, agent.id)).status_code == 200
        assert (await execute(client, colleague_user, agent.id)).status_code == 200
        assert_problem(await execute(client, partner_agent, agent.id), 404, "agent_not_found")
        response = await client.post(
            f"/api/v1/orgs/{org['id']}/permissions/allow",
            json={"organization_id": partner_org["id"]},
            headers=owner.headers,
        )
        assert response.status_code == 200
        assert (await execute(client, partner_agent, agent.id)).status_code == 200


async def test_requires_approval_files_a_request_the_owner_approves(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    caller = await enroll(client, await register(client))
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        await set_agent(client, owner, agent.id, requires_approval=True)
        first = assert_problem(await execute(client, caller, agent.id), 403, "approval_required")
        again = assert_problem(await execute(client, caller, agent.id), 403, "approval_required")
        assert first["access_request_id"] == again["access_request_id"]
        listing = (await client.get(perms(agent.id), headers=owner.headers)).json()
        [request] = listing["requests"]
        assert (request["subject_type"], request["subject_id"]) == ("agent", caller.id)
        assert (request["status"], request["attempts"]) == ("pending", 2)
        approved = await client.post(
            f"{perms(agent.id)}/requests/{request['id']}/approve",
            json={"max_calls_per_hour": 10},
            headers=owner.headers,
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        assert (await execute(client, caller, agent.id)).status_code == 200
        assert_problem(
            await client.post(
                f"{perms(agent.id)}/requests/{request['id']}/deny", headers=owner.headers
            ),
            409,
            "request_decided",
        )
    async with app.state.database.read_sessions() as session:
        notified = (
            await session.scalars(
                select(Event).where(
                    Event.recipient == f"user:{owner.id}", Event.type == "agent.access_requested"
                )
            )
        ).all()
    assert len(notified) == 1  # once per request, not per retry
    assert upstream.behaviour.seen == ["hi"]


async def test_max_calls_per_hour_is_per_caller(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    first = await enroll(client, await register(client))
    second = await enroll(client, await register(client))
    third = await enroll(client, await register(client))
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        await set_agent(client, owner, agent.id, max_calls_per_hour=2)
        for _ in range(2):
            assert (await execute(client, first, agent.id)).status_code == 200
        limited = assert_problem(await execute(client, first, agent.id), 429, "rate_limited")
        assert limited["retry_after"] >= 1
        # Another caller has its own allowance; the owner has none to exhaust.
        assert (await execute(client, second, agent.id)).status_code == 200
        for _ in range(3):
            assert (await execute(client, owner, agent.id)).status_code == 200
        # A rule's own limit replaces the agent's for that caller.
        response = await client.post(
            f"{perms(agent.id)}/allow",
            json={"agent_id": third.id, "max_calls_per_hour": 1},
            headers=owner.headers,
        )
        assert response.status_code == 200
        assert (await execute(client, third, agent.id)).status_code == 200
        assert_problem(await execute(client, third, agent.id), 429, "rate_limited")
    assert len(upstream.behaviour.seen) == 7


async def test_the_ai_catalog_lists_public_agents_with_cards(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    async with stock_agent() as upstream:
        public = await enroll_at(client, owner, upstream.base_url)
        private = await enroll_at(client, owner, upstream.base_url)
        await set_agent(client, owner, private.id, is_public=False)
    no_card = await enroll(client, owner)
    response = await client.get("/.well-known/ai-catalog.json")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    catalog = response.json()
    assert catalog["specVersion"] == "1.0"
    entries = {entry["url"]: entry for entry in catalog["entries"]}
    url = f"http://testserver/a2a/agents/{public.id}/.well-known/agent-card.json"
    assert entries[url]["type"] == "application/a2a-agent-card+json"
    assert entries[url]["identifier"] == f"urn:ai:testserver:agent:{public.id}"
    assert "shout" in entries[url]["capabilities"]
    listed = " ".join(entries)
    assert private.id not in listed
    assert no_card.id not in listed
