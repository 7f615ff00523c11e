import uuid

from tests.factories import assert_problem, enroll, register


async def _org(client, owner, slug="acme"):
    response = await client.post(
        "/api/v1/orgs", json={"name": "Acme Ünited", "slug": slug}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _add(client, actor, org, email, role="member"):
    return await client.post(
        f"/api/v1/orgs/{org['id']}/members",
        json={"email": email, "role": role},
        headers=actor.headers,
    )


async def test_create_and_list_organizations(client):
    owner = await register(client)
    org = await _org(client, owner)
    assert org["role"] == "owner"
    listed = (await client.get("/api/v1/orgs", headers=owner.headers)).json()
    assert [o["id"] for o in listed] == [org["id"]]
    assert_problem(
        await client.post(
            "/api/v1/orgs", json={"name": "x", "slug": "acme"}, headers=owner.headers
        ),
        409,
        "slug_taken",
    )
    assert_problem(
        await client.post(
            "/api/v1/orgs", json={"name": "x", "slug": "Bad Slug"}, headers=owner.headers
        ),
        422,
        "validation_error",
    )


async def test_non_members_see_nothing(client):
    owner = await register(client)
    outsider = await register(client)
    org = await _org(client, owner)
    for path in ["", "/members", "/agents"]:
        response = await client.get(f"/api/v1/orgs/{org['id']}{path}", headers=outsider.headers)
        assert_problem(response, 404, "organization_not_found")
    assert (await client.get("/api/v1/orgs", headers=outsider.headers)).json() == []
    assert_problem(await _add(client, outsider, org, outsider.email), 404, "organization_not_found")


async def test_member_roles(client):
    owner = await register(client)
    admin = await register(client)
    member = await register(client)
    newcomer = await register(client)
    org = await _org(client, owner)
    assert (await _add(client, owner, org, admin.email, "admin")).status_code == 201
    assert (await _add(client, admin, org, member.email)).status_code == 201
    assert_problem(await _add(client, member, org, newcomer.email), 403, "org_role_required")
    assert_problem(
        await _add(client, admin, org, newcomer.email, "owner"), 403, "org_role_required"
    )
    assert_problem(await _add(client, owner, org, member.email), 409, "already_member")
    assert_problem(await _add(client, owner, org, "ghost@example.com"), 404, "user_not_found")
    members = (await client.get(f"/api/v1/orgs/{org['id']}/members", headers=member.headers)).json()
    assert {(m["email"], m["role"]) for m in members} == {
        (owner.email, "owner"),
        (admin.email, "admin"),
        (member.email, "member"),
    }


async def test_removing_members_and_last_owner(client):
    owner = await register(client)
    admin = await register(client)
    member = await register(client)
    org = await _org(client, owner)
    await _add(client, owner, org, admin.email, "admin")
    await _add(client, owner, org, member.email)
    base = f"/api/v1/orgs/{org['id']}/members"
    assert_problem(
        await client.delete(f"{base}/{admin.id}", headers=member.headers), 403, "org_role_required"
    )
    assert_problem(
        await client.delete(f"{base}/{owner.id}", headers=admin.headers), 403, "org_role_required"
    )
    assert_problem(
        await client.delete(f"{base}/{owner.id}", headers=owner.headers), 409, "last_owner"
    )
    assert (await client.delete(f"{base}/{member.id}", headers=admin.headers)).status_code == 204
    assert_problem(
        await client.get(f"/api/v1/orgs/{org['id']}", headers=member.headers),
        404,
        "organization_not_found",
    )
    assert (await client.delete(f"{base}/{admin.id}", headers=admin.headers)).status_code == 204
    assert_problem(
        await client.delete(f"{base}/{uuid.uuid4()}", headers=owner.headers),
        404,
        "member_not_found",
    )


async def test_assigning_agents_needs_agent_ownership_and_org_admin(client):
    owner = await register(client)
    member = await register(client)
    org = await _org(client, owner)
    await _add(client, owner, org, member.email)
    owners_agent = await enroll(client, owner)
    members_agent = await enroll(client, member)
    base = f"/api/v1/orgs/{org['id']}/agents"

    # A plain member cannot assign even their own agent; nobody can assign someone else's.
    assert_problem(
        await client.put(f"{base}/{members_agent.id}", headers=member.headers),
        403,
        "org_role_required",
    )
    assert_problem(
        await client.put(f"{base}/{members_agent.id}", headers=owner.headers),
        404,
        "agent_not_found",
    )
    assigned = await client.put(f"{base}/{owners_agent.id}", headers=owner.headers)
    assert assigned.status_code == 200
    assert assigned.json()["organization_id"] == org["id"]

    listed = (await client.get(base, headers=member.headers)).json()
    assert [a["id"] for a in listed["items"]] == [owners_agent.id]
    # Org members see the private profile of org agents.
    seen = (await client.get(f"/api/v1/agents/{owners_agent.id}", headers=member.headers)).json()
    assert "metadata" in seen

    assert_problem(
        await client.delete(f"{base}/{owners_agent.id}", headers=member.headers),
        403,
        "org_role_required",
    )
    removed = await client.delete(f"{base}/{owners_agent.id}", headers=owner.headers)
    assert removed.status_code == 200
    assert removed.json()["organization_id"] is None
    assert (await client.get(base, headers=owner.headers)).json()["total"] == 0


async def test_agents_cannot_manage_orgs(client):
    owner = await register(client)
    agent = await enroll(client, owner)
    response = await client.post(
        "/api/v1/orgs", json={"name": "x", "slug": "xx"}, headers=agent.headers
    )
    assert_problem(response, 403, "user_required")
