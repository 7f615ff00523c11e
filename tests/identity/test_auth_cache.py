"""Resolved tokens are cached per process; changes made here take effect at once."""

import uuid

import pytest

from hermes_hub.identity.models import User
from tests.factories import assert_problem, enroll, register


async def test_profile_change_is_visible_immediately(client):
    owner = await register(client)
    agent = await enroll(client, owner)
    assert (await client.get("/api/v1/agents/me", headers=agent.headers)).json()[
        "status"
    ] == "active"
    await client.patch(
        f"/api/v1/agents/{agent.id}", json={"status": "paused"}, headers=owner.headers
    )
    assert (await client.get("/api/v1/agents/me", headers=agent.headers)).json()[
        "status"
    ] == "paused"


async def test_revocation_and_deactivation_are_immediate_in_process(client, app):
    admin = await register(client)
    user = await register(client)
    async with app.state.database.write_sessions.begin() as session:
        (await session.get(User, uuid.UUID(admin.id))).role = "admin"
    agent = await enroll(client, user)
    assert (await client.get("/api/v1/agents/me", headers=agent.headers)).status_code == 200
    assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 200

    await client.delete(f"/api/v1/agents/{agent.id}/keys/{agent.key_id}", headers=user.headers)
    assert_problem(
        await client.get("/api/v1/agents/me", headers=agent.headers), 401, "invalid_api_key"
    )

    await client.patch(
        f"/api/v1/admin/users/{user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert_problem(await client.get("/api/v1/users/me", headers=user.headers), 401, "invalid_token")


async def test_changes_from_another_process_apply_after_the_ttl(client, app):
    user = await register(client)
    assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 200
    # Another worker deactivates the user: this process keeps its answer for the TTL.
    async with app.state.database.write_sessions.begin() as session:
        (await session.get(User, uuid.UUID(user.id))).is_active = False
    assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 200
    app.state.principal_cache.ttl_seconds = 0
    app.state.principal_cache.forget(user_id=uuid.UUID(user.id))
    assert_problem(await client.get("/api/v1/users/me", headers=user.headers), 401, "invalid_token")


@pytest.mark.parametrize("settings_overrides", [{"auth_cache_seconds": 0}])
async def test_cache_can_be_disabled(client, app):
    user = await register(client)
    assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 200
    async with app.state.database.write_sessions.begin() as session:
        (await session.get(User, uuid.UUID(user.id))).is_active = False
    assert_problem(await client.get("/api/v1/users/me", headers=user.headers), 401, "invalid_token")
