"""The ACL endpoints: agent rules, access requests, org-level allows, and who sees what."""

import uuid

import httpx

from tests.discovery.helpers import (
    add_member,
    create_org,
    discover,
    enroll_indexed,
    result_ids,
)
from tests.factories import assert_problem, enroll, register


def perms(agent_id: str) -> str:
    return f"/api/v1/agents/{agent_id}/permissions"


async def test_owner_allows_denies_lists_and_deletes_rules(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    target = await enroll(client, owner)
    caller = await enroll(client, await register(client))
    other_user = await register(client)

    allowed = await client.post(
        f"{perms(target.id)}/allow",
        json={"agent_id": caller.id, "max_calls_per_hour": 5},
        headers=owner.headers,
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["effect"] == "allow"
    assert allowed.json()["max_calls_per_hour"] == 5
    denied = await client.post(
        f"{perms(target.id)}/deny", json={"user_id": other_user.id}, headers=owner.headers
    )
    assert denied.status_code == 200, denied.text
    # The same subject again replaces its rule instead of adding a second one.
    replaced = await client.post(
        f"{perms(target.id)}/deny", json={"agent_id": caller.id}, headers=owner.headers
    )
    assert replaced.json()["id"] == allowed.json()["id"]
    assert replaced.json()["effect"] == "deny"

    listing = (await client.get(perms(target.id), headers=owner.headers)).json()
    assert {(r["subject_type"], r["subject_id"], r["effect"]) for r in listing["rules"]} == {
        ("agent", caller.id, "deny"),
        ("user", other_user.id, "deny"),
    }
    assert listing["is_public"] is True
    assert listing["requires_approval"] is False

    gone = await client.delete(f"{perms(target.id)}/{denied.json()['id']}", headers=owner.headers)
    assert gone.status_code == 204
    listing = (await client.get(perms(target.id), headers=owner.headers)).json()
    assert [r["subject_id"] for r in listing["rules"]] == [caller.id]
    assert_problem(
        await client.delete(f"{perms(target.id)}/{uuid.uuid4()}", headers=owner.headers),
        404,
        "rule_not_found",
    )


async def test_only_the_owner_or_org_admins_manage_an_agents_rules(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    org_admin = await register(client)
    member = await register(client)
    org = await create_org(client, owner)
    response = await client.post(
        f"/api/v1/orgs/{org['id']}/members",
        json={"email": org_admin.email, "role": "admin"},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    await add_member(client, owner, org, member)
    target = await enroll(client, owner, organization_id=org["id"])
    stranger = await register(client)
    body = {"user_id": stranger.id}

    for outsider in (member, stranger):
        assert_problem(
            await client.post(f"{perms(target.id)}/allow", json=body, headers=outsider.headers),
            404,
            "agent_not_found",
        )
        assert_problem(
            await client.get(perms(target.id), headers=outsider.headers), 404, "agent_not_found"
        )
    # Agents cannot manage rules, even on themselves.
    assert_problem(await client.get(perms(target.id), headers=target.headers), 403, "user_required")
    response = await client.post(f"{perms(target.id)}/allow", json=body, headers=org_admin.headers)
    assert response.status_code == 200, response.text


async def test_bad_rule_bodies_are_refused(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    target = await enroll(client, owner)
    url = f"{perms(target.id)}/allow"
    for body in (
        {},
        {"agent_id": str(uuid.uuid4()), "user_id": owner.id},
        {"agent_id": "not-a-uuid"},
        {"user_id": owner.id, "max_calls_per_hour": 0},
        {"user_id": owner.id, "extra": 1},
    ):
        assert_problem(
            await client.post(url, json=body, headers=owner.headers), 422, "validation_error"
        )
    assert_problem(
        await client.post(
            f"{perms(target.id)}/deny",
            json={"user_id": owner.id, "max_calls_per_hour": 3},
            headers=owner.headers,
        ),
        422,
        "validation_error",
    )
    assert_problem(
        await client.post(url, json={"agent_id": str(uuid.uuid4())}, headers=owner.headers),
        404,
        "subject_not_found",
    )
    assert_problem(
        await client.post(url, json={"agent_id": target.id}, headers=owner.headers),
        422,
        "self_rule",
    )
    listing = (await client.get(perms(target.id), headers=owner.headers)).json()
    assert listing["rules"] == []


async def test_requires_approval_is_an_agent_setting(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    target = await enroll(client, owner)
    response = await client.patch(
        f"/api/v1/agents/{target.id}", json={"requires_approval": True}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["requires_approval"] is True
    assert_problem(
        await client.patch(
            f"/api/v1/agents/{target.id}", json={"requires_approval": None}, headers=owner.headers
        ),
        422,
        "validation_error",
    )


async def test_org_level_allow_needs_an_org_owner_or_admin(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    member = await register(client)
    org = await create_org(client, owner)
    await add_member(client, owner, org, member)
    partner_org = await create_org(client, await register(client))
    url = f"/api/v1/orgs/{org['id']}/permissions"
    body = {"organization_id": partner_org["id"], "max_calls_per_hour": 50}

    assert_problem(
        await client.post(f"{url}/allow", json=body, headers=member.headers),
        403,
        "org_role_required",
    )
    assert_problem(
        await client.post(f"{url}/allow", json=body, headers=(await register(client)).headers),
        404,
        "organization_not_found",
    )
    created = await client.post(f"{url}/allow", json=body, headers=owner.headers)
    assert created.status_code == 200, created.text
    assert created.json()["subject_type"] == "organization"
    # Members may read the organization's rules; only managers change them.
    listed = await client.get(url, headers=member.headers)
    assert [rule["id"] for rule in listed.json()] == [created.json()["id"]]
    assert_problem(
        await client.delete(f"{url}/{created.json()['id']}", headers=member.headers),
        403,
        "org_role_required",
    )
    deleted = await client.delete(f"{url}/{created.json()['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=owner.headers)).json() == []


async def test_the_acl_decides_who_discovers_a_private_agent(client: httpx.AsyncClient) -> None:
    word = f"zephyrine{uuid.uuid4().hex[:6]}"
    owner = await register(client)
    org = await create_org(client, owner)
    private = await enroll_indexed(
        client,
        owner,
        name=f"{word} private",
        description=f"{word} private helper",
        capabilities=[word],
        organization_id=org["id"],
        is_public=False,
    )
    friend_user = await register(client)
    friend_agent = await enroll(client, friend_user)
    partner_owner = await register(client)
    partner_org = await create_org(client, partner_owner)
    partner_agent = await enroll(client, partner_owner, organization_id=partner_org["id"])
    stranger = await enroll(client, await register(client))

    async def sees(headers: dict[str, str]) -> bool:
        return private.id in result_ids(await discover(client, word, headers))

    for caller in (friend_user, friend_agent, partner_owner, partner_agent, stranger):
        assert not await sees(caller.headers)

    # A user rule covers the user and their agents.
    response = await client.post(
        f"{perms(private.id)}/allow", json={"user_id": friend_user.id}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    assert await sees(friend_user.headers)
    assert await sees(friend_agent.headers)
    # An org-level allow covers the partner organization's members and agents.
    response = await client.post(
        f"/api/v1/orgs/{org['id']}/permissions/allow",
        json={"organization_id": partner_org["id"]},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    assert await sees(partner_owner.headers)
    assert await sees(partner_agent.headers)
    # An agent-level deny hides it again from that agent only.
    response = await client.post(
        f"{perms(private.id)}/deny", json={"agent_id": partner_agent.id}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    assert not await sees(partner_agent.headers)
    assert await sees(partner_owner.headers)
    assert not await sees(stranger.headers)
