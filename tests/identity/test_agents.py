import uuid
from datetime import timedelta

import pytest

from hermes_hub.identity.models import AgentApiKey
from hermes_hub.kit.time import utcnow
from tests.factories import assert_problem, enroll, register


async def test_public_profile_hides_private_fields_from_strangers(client):
    owner = await register(client)
    stranger = await register(client)
    agent = await enroll(client, owner, metadata={"secret": "s"})
    seen = await client.get(f"/api/v1/agents/{agent.id}", headers=stranger.headers)
    assert seen.status_code == 200
    body = seen.json()
    assert body["id"] == agent.id
    assert "metadata" not in body
    assert "owner_id" not in body
    assert "public_key" not in body
    own = (await client.get(f"/api/v1/agents/{agent.id}", headers=owner.headers)).json()
    assert own["metadata"] == {"secret": "s"}
    other_agent = await enroll(client, stranger)
    as_agent = (await client.get(f"/api/v1/agents/{agent.id}", headers=other_agent.headers)).json()
    assert "metadata" not in as_agent
    itself = (await client.get(f"/api/v1/agents/{agent.id}", headers=agent.headers)).json()
    assert itself["metadata"] == {"secret": "s"}


async def test_private_agent_is_404_to_strangers(client):
    owner = await register(client)
    stranger = await register(client)
    agent = await enroll(client, owner)
    response = await client.patch(
        f"/api/v1/agents/{agent.id}", json={"is_public": False}, headers=owner.headers
    )
    assert response.status_code == 200
    assert_problem(
        await client.get(f"/api/v1/agents/{agent.id}", headers=stranger.headers),
        404,
        "agent_not_found",
    )
    missing = await client.get(f"/api/v1/agents/{uuid.uuid4()}", headers=stranger.headers)
    hidden = await client.get(f"/api/v1/agents/{agent.id}", headers=stranger.headers)
    assert missing.json()["detail"] == hidden.json()["detail"]
    assert (
        await client.get(f"/api/v1/agents/{agent.id}", headers=owner.headers)
    ).status_code == 200


async def test_owner_updates_profile(client):
    owner = await register(client)
    agent = await enroll(client, owner)
    response = await client.patch(
        f"/api/v1/agents/{agent.id}",
        json={
            "description": "Now with more ✨",
            "capabilities": ["Search", "rank"],
            "endpoint_url": "http://127.0.0.1:9000/a2a",
            "pricing": {"base_price": 2.5, "currency": "CRD"},
            "max_calls_per_hour": 120,
            "status": "paused",
        },
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pricing"] == {"base_price": 2.5, "currency": "CRD"}
    assert body["capabilities"] == ["search", "rank"]
    assert body["status"] == "paused"
    assert body["max_calls_per_hour"] == 120
    me = (await client.get("/api/v1/agents/me", headers=agent.headers)).json()
    assert me["description"] == "Now with more ✨"
    cleared = await client.patch(
        f"/api/v1/agents/{agent.id}",
        json={"pricing": None, "max_calls_per_hour": None},
        headers=owner.headers,
    )
    assert cleared.json()["pricing"] is None
    assert cleared.json()["max_calls_per_hour"] is None
    assert cleared.json()["description"] == "Now with more ✨"


@pytest.mark.parametrize(
    "changes",
    [
        {"pricing": {"base_price": 1.234}},
        {"pricing": {"base_price": -1}},
        {"pricing": {"base_price": 1, "currency": "USD"}},
        {"pricing": {"base_price": "NaN"}},
        {"status": "deleted"},
        {"max_calls_per_hour": 0},
        {"owner_id": str(uuid.uuid4())},
        {"public_key": "AAAA"},
        {"name": None},
        {"status": None},
        {"capabilities": None},
        {"is_public": None},
        {"description": None},
    ],
)
async def test_invalid_updates_are_422_and_change_nothing(client, changes):
    owner = await register(client)
    agent = await enroll(client, owner)
    before = (await client.get("/api/v1/agents/me", headers=agent.headers)).json()
    response = await client.patch(f"/api/v1/agents/{agent.id}", json=changes, headers=owner.headers)
    assert_problem(response, 422, "validation_error")
    assert (await client.get("/api/v1/agents/me", headers=agent.headers)).json() == before


async def test_sql_looking_text_is_stored_verbatim(client):
    owner = await register(client)
    name = "Robert'); DROP TABLE agents;--"
    agent = await enroll(client, owner, name=name, description="1' OR '1'='1")
    me = (await client.get("/api/v1/agents/me", headers=agent.headers)).json()
    assert me["name"] == name
    assert me["description"] == "1' OR '1'='1"
    listed = (await client.get("/api/v1/agents", headers=owner.headers)).json()
    assert listed["total"] == 1


async def test_another_owners_agent_is_404(client):
    owner = await register(client)
    intruder = await register(client)
    agent = await enroll(client, owner)
    for method, path, body in [
        ("PATCH", f"/api/v1/agents/{agent.id}", {"description": "pwned"}),
        ("GET", f"/api/v1/agents/{agent.id}/keys", None),
        ("POST", f"/api/v1/agents/{agent.id}/keys", None),
        ("DELETE", f"/api/v1/agents/{agent.id}/keys/{agent.key_id}", None),
    ]:
        response = await client.request(method, path, json=body, headers=intruder.headers)
        assert_problem(response, 404, "agent_not_found")
    # The agent's key still works and nothing changed.
    me = await client.get("/api/v1/agents/me", headers=agent.headers)
    assert me.status_code == 200
    assert me.json()["description"] == ""


async def test_agent_cannot_edit_itself_through_owner_routes(client):
    owner = await register(client)
    agent = await enroll(client, owner)
    response = await client.patch(
        f"/api/v1/agents/{agent.id}", json={"description": "x"}, headers=agent.headers
    )
    assert_problem(response, 403, "user_required")


async def test_list_my_agents_is_paginated_and_scoped(client):
    owner = await register(client)
    other = await register(client)
    mine = [await enroll(client, owner, name=f"a{i}") for i in range(3)]
    await enroll(client, other)
    page = (await client.get("/api/v1/agents?limit=2", headers=owner.headers)).json()
    assert page["total"] == 3
    assert len(page["items"]) == 2
    rest = (await client.get("/api/v1/agents?limit=2&offset=2", headers=owner.headers)).json()
    ids = {a["id"] for a in page["items"] + rest["items"]}
    assert ids == {a.id for a in mine}
    assert_problem(
        await client.get("/api/v1/agents?limit=0", headers=owner.headers), 422, "validation_error"
    )


async def test_key_listing_rotation_and_revocation(client):
    owner = await register(client)
    agent = await enroll(client, owner)
    keys = (await client.get(f"/api/v1/agents/{agent.id}/keys", headers=owner.headers)).json()
    assert [k["id"] for k in keys] == [agent.key_id]
    assert "api_key" not in keys[0]
    assert "token_hash" not in keys[0]
    assert keys[0]["prefix"] == agent.api_key[:12]

    created = await client.post(f"/api/v1/agents/{agent.id}/keys", headers=owner.headers)
    assert created.status_code == 201
    second = created.json()
    second_headers = {"Authorization": f"Bearer {second['api_key']}"}
    assert (await client.get("/api/v1/agents/me", headers=second_headers)).status_code == 200
    assert (await client.get("/api/v1/agents/me", headers=agent.headers)).status_code == 200

    revoked = await client.delete(
        f"/api/v1/agents/{agent.id}/keys/{agent.key_id}", headers=owner.headers
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"]
    assert_problem(
        await client.get("/api/v1/agents/me", headers=agent.headers), 401, "invalid_api_key"
    )
    assert_problem(
        await client.delete(
            f"/api/v1/agents/{agent.id}/keys/{agent.key_id}", headers=owner.headers
        ),
        409,
        "api_key_already_revoked",
    )

    rotated = await client.post(
        f"/api/v1/agents/{agent.id}/keys", json={"revoke_existing": True}, headers=owner.headers
    )
    assert rotated.status_code == 201
    assert_problem(
        await client.get("/api/v1/agents/me", headers=second_headers), 401, "invalid_api_key"
    )
    third = {"Authorization": f"Bearer {rotated.json()['api_key']}"}
    assert (await client.get("/api/v1/agents/me", headers=third)).status_code == 200


async def test_key_count_is_capped(client):
    owner = await register(client)
    agent = await enroll(client, owner)
    for _ in range(9):
        assert (
            await client.post(f"/api/v1/agents/{agent.id}/keys", headers=owner.headers)
        ).status_code == 201
    response = await client.post(f"/api/v1/agents/{agent.id}/keys", headers=owner.headers)
    assert_problem(response, 409, "too_many_keys")


async def test_unknown_key_id_is_404(client):
    owner = await register(client)
    agent = await enroll(client, owner)
    response = await client.delete(
        f"/api/v1/agents/{agent.id}/keys/{uuid.uuid4()}", headers=owner.headers
    )
    assert_problem(response, 404, "api_key_not_found")


async def test_expired_and_unknown_api_keys_are_rejected(client, app):
    owner = await register(client)
    agent = await enroll(client, owner)
    async with app.state.database.write_sessions.begin() as session:
        key = await session.get(AgentApiKey, uuid.UUID(agent.key_id))
        key.expires_at = utcnow() - timedelta(seconds=1)
    assert_problem(
        await client.get("/api/v1/agents/me", headers=agent.headers), 401, "invalid_api_key"
    )
    forged = {"Authorization": "Bearer hhk_" + "A" * 43}
    assert_problem(await client.get("/api/v1/agents/me", headers=forged), 401, "invalid_api_key")


async def test_last_used_is_recorded(client, app):
    owner = await register(client)
    agent = await enroll(client, owner)
    await client.get("/api/v1/agents/me", headers=agent.headers)
    await app.state.key_usage.drain()
    keys = (await client.get(f"/api/v1/agents/{agent.id}/keys", headers=owner.headers)).json()
    assert keys[0]["last_used_at"] is not None
    first_use = keys[0]["last_used_at"]
    # Within a minute, further use does not rewrite the timestamp.
    await client.get("/api/v1/agents/me", headers=agent.headers)
    await app.state.key_usage.drain()
    keys = (await client.get(f"/api/v1/agents/{agent.id}/keys", headers=owner.headers)).json()
    assert keys[0]["last_used_at"] == first_use


async def test_use_during_a_write_request_is_recorded(client, app):
    owner = await register(client)
    agent = await enroll(client, owner)
    # On SQLite the request holds the write lock; the usage write must queue, not deadlock.
    response = await client.post(
        "/api/v1/agents/enroll", json={"name": "x", "public_key": "AAAA"}, headers=agent.headers
    )
    assert response.status_code == 403
    await app.state.key_usage.drain()
    keys = (await client.get(f"/api/v1/agents/{agent.id}/keys", headers=owner.headers)).json()
    assert keys[0]["last_used_at"] is not None


@pytest.mark.parametrize("settings_overrides", [{"db_pool_size": 2, "db_max_overflow": 0}])
async def test_concurrent_first_use_does_not_exhaust_the_pool(client, app):
    import asyncio

    owner = await register(client)
    agent = await enroll(client, owner)
    responses = await asyncio.gather(
        *(client.get("/api/v1/agents/me", headers=agent.headers) for _ in range(20))
    )
    assert [r.status_code for r in responses] == [200] * 20


async def test_users_me_is_for_users_and_agents_me_for_agents(client):
    owner = await register(client)
    assert_problem(
        await client.get("/api/v1/agents/me", headers=owner.headers), 403, "agent_required"
    )
