import uuid

from hermes_hub.identity.models import User
from tests.factories import assert_problem, enroll, register


async def _make_admin(app, user):
    async with app.state.database.write_sessions.begin() as session:
        (await session.get(User, uuid.UUID(user.id))).role = "admin"


async def test_admin_routes_deny_users_agents_and_anonymous(client):
    user = await register(client)
    agent = await enroll(client, user)
    assert_problem(await client.get("/api/v1/admin/users"), 401, "not_authenticated")
    assert_problem(
        await client.get("/api/v1/admin/users", headers=user.headers), 403, "admin_required"
    )
    assert_problem(
        await client.get("/api/v1/admin/users", headers=agent.headers), 403, "user_required"
    )
    response = await client.patch(
        f"/api/v1/admin/users/{user.id}", json={"role": "admin"}, headers=user.headers
    )
    assert_problem(response, 403, "admin_required")


async def test_admin_lists_and_updates_users(client, app):
    admin = await register(client)
    user = await register(client)
    await _make_admin(app, admin)
    page = (await client.get("/api/v1/admin/users", headers=admin.headers)).json()
    assert page["total"] == 2
    response = await client.patch(
        f"/api/v1/admin/users/{user.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert (await client.get("/api/v1/users/me", headers=user.headers)).status_code == 401
    assert_problem(
        await client.patch(
            f"/api/v1/admin/users/{admin.id}", json={"role": "user"}, headers=admin.headers
        ),
        409,
        "cannot_modify_self",
    )
    assert_problem(
        await client.patch(
            f"/api/v1/admin/users/{uuid.uuid4()}", json={"role": "user"}, headers=admin.headers
        ),
        404,
        "user_not_found",
    )


async def test_admin_sees_private_agents(client, app):
    admin = await register(client)
    owner = await register(client)
    await _make_admin(app, admin)
    agent = await enroll(client, owner)
    await client.patch(
        f"/api/v1/agents/{agent.id}", json={"is_public": False}, headers=owner.headers
    )
    seen = await client.get(f"/api/v1/agents/{agent.id}", headers=admin.headers)
    assert seen.status_code == 200
    assert "metadata" in seen.json()
