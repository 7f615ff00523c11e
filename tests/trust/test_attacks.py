"""Manipulation attacks on the trust score, each tried for real and shown not to pay off.

Every test plays the attacker through the public API (or, where noted, the service layer)
and asserts, with numbers, that the attacker does not get the effect they want, next to a
control showing that the same move by an honest party does have an effect.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import select

from hermes_hub.identity.models import Agent
from hermes_hub.kit.time import utcnow
from hermes_hub.sdk.keys import sign_b64
from hermes_hub.trust import formula, service
from hermes_hub.trust.formula import Outcome, TrustParams
from hermes_hub.trust.models import RaterWeight
from tests.factories import TestAgent, TestUser, assert_problem, register, start_enrollment
from tests.ledger.helpers import make_admin
from tests.mesh.helpers import CONTRACTS, bid, capable_agent, funded_user, post_contract
from tests.trust.helpers import finish_contract, reputation_of, trust_of

ADMIN_TRUST = "/api/v1/admin/trust"
PRIOR = formula.PRIOR


# ---- helpers ----


async def new_org(client: httpx.AsyncClient, owner: TestUser, slug: str) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/orgs", json={"name": f"Org {slug}", "slug": slug}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def add_member(
    client: httpx.AsyncClient, actor: TestUser, org: dict[str, Any], user: TestUser, role: str
) -> None:
    response = await client.post(
        f"/api/v1/orgs/{org['id']}/members",
        json={"email": user.email, "role": role},
        headers=actor.headers,
    )
    assert response.status_code == 201, response.text


async def assign(
    client: httpx.AsyncClient, owner: TestUser, org: dict[str, Any], agent: TestAgent
) -> None:
    response = await client.put(
        f"/api/v1/orgs/{org['id']}/agents/{agent.id}", headers=owner.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["organization_id"] == org["id"]


async def leave(client: httpx.AsyncClient, user: TestUser, org: dict[str, Any]) -> None:
    response = await client.delete(
        f"/api/v1/orgs/{org['id']}/members/{user.id}", headers=user.headers
    )
    assert response.status_code == 204, response.text


async def history(client: httpx.AsyncClient, agent: TestAgent, viewer: Any) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/v1/agents/{agent.id}/history", params={"limit": 100}, headers=viewer.headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def trust_value(client: httpx.AsyncClient, agent: TestAgent, viewer: Any) -> float:
    return float((await trust_of(client, agent, viewer))["trust_score"])


async def refunded_dispute(
    client: httpx.AsyncClient, admin: TestUser, requester: Any, agent: TestAgent
) -> None:
    """A contract the requester rejects (score 0.0 opens a dispute) and an admin refunds:
    a failed outcome with validation score 0 for the agent."""
    contract = await post_contract(client, requester, reward=5, bidding_seconds=600)
    url = f"{CONTRACTS}/{contract['id']}"
    placed = await bid(client, agent, contract["id"], price=4, eta_seconds=600)
    assert placed.status_code == 201, placed.text
    assert (await client.post(f"{url}/award", headers=requester.headers)).status_code == 200
    delivered = await client.post(
        f"{url}/deliver", json={"data": {"summary": "junk"}}, headers=agent.headers
    )
    assert delivered.status_code == 200, delivered.text
    rejected = await client.post(
        f"{url}/settle", json={"validation_score": 0.0}, headers=requester.headers
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "disputed"
    ruled = await client.post(
        f"{url}/dispute/resolve", json={"outcome": "refund"}, headers=admin.headers
    )
    assert ruled.status_code == 200, ruled.text


async def run_scan(client: httpx.AsyncClient, admin: TestUser) -> dict[str, Any]:
    response = await client.post(f"{ADMIN_TRUST}/scan", headers=admin.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def flags(
    client: httpx.AsyncClient, admin: TestUser, status: str | None = "open"
) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"limit": 100}
    if status is not None:
        params["status"] = status
    response = await client.get(f"{ADMIN_TRUST}/flags", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def resolve(
    client: httpx.AsyncClient, admin: TestUser, flag_id: str, decision: str
) -> httpx.Response:
    return await client.post(
        f"{ADMIN_TRUST}/flags/{flag_id}/resolve",
        json={"decision": decision, "note": f"{decision} by test"},
        headers=admin.headers,
    )


async def enroll_with_key(
    client: httpx.AsyncClient,
    owner: TestUser,
    private_key: Ed25519PrivateKey,
    name: str,
) -> TestAgent:
    challenge = await start_enrollment(
        client, owner, private_key, name=name, capabilities=["summarize"]
    )
    response = await client.post(
        f"/api/v1/agents/enroll/{challenge['enrollment_id']}/respond",
        json={"signature": sign_b64(private_key, challenge["challenge"])},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return TestAgent(
        id=body["agent_id"],
        api_key=body["api_key"],
        key_id=body["key"]["id"],
        private_key=private_key,
    )


async def ban(client: httpx.AsyncClient, admin: TestUser, agent: TestAgent) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/admin/agents/{agent.id}/ban",
        json={"reason": "manipulation"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["status"] == "banned"
    return result


async def badges(client: httpx.AsyncClient, agent: TestAgent, viewer: Any) -> set[str]:
    return {b["badge"] for b in (await reputation_of(client, agent, viewer))["badges"]}


def expected_trust(n: float, raw: float, k: float = 3.0) -> float:
    return (n * raw + k * PRIOR) / (n + k)


# A brand-new agent (uptime 0) with only perfect, on-time outcomes: 0.4 + 0.2 + 0.2 x rating
# + 0 + 0.1. Rated 5 stars: 0.9; unrated (neutral 0.6): 0.82.
RAW_PERFECT_RATED = 0.9
RAW_PERFECT_UNRATED = 0.82


# ---- 1. self-dealing through an organization ----


async def test_self_dealing_through_an_organization_earns_no_trust(app, client):
    admin = await make_admin(app, client)
    boss = await register(client)
    org = await new_org(client, boss, "ring-corp")

    # (a) The requester and the agent's owner are both members of one organization.
    insider = await funded_user(app, client, admin=admin)
    provider = await register(client)
    await add_member(client, boss, org, insider, "member")
    await add_member(client, boss, org, provider, "admin")
    agent = await capable_agent(client, provider)
    await finish_contract(client, insider, agent, score=1.0, rating=5)
    await finish_contract(client, insider, agent, score=1.0, rating=5)
    rows = await history(client, agent, provider)
    assert [(r["counts_for_trust"], r["excluded_reason"]) for r in rows] == [
        (False, "same_organization")
    ] * 2
    reputation = await reputation_of(client, agent, provider)
    assert reputation["trust_score"] == PRIOR
    assert reputation["stats"]["contracts"] == 2
    assert reputation["stats"]["counted_outcomes"] == 0

    # (b) The agent is assigned to the organization the requester belongs to, and its
    # owner has left it: the owners share no organization, the agent's does.
    leaver = await register(client)
    await add_member(client, boss, org, leaver, "admin")
    org_agent = await capable_agent(client, leaver)
    await assign(client, leaver, org, org_agent)
    await leave(client, leaver, org)
    await finish_contract(client, insider, org_agent, score=1.0, rating=5)
    assert [r["excluded_reason"] for r in await history(client, org_agent, leaver)] == [
        "same_organization"
    ]
    assert await trust_value(client, org_agent, leaver) == PRIOR

    # (c) An agent requester assigned to the same organization as the bidding agent (both
    # owners gone from it, so only the agents' organization ties them).
    buyer_owner = await funded_user(app, client, credits=50, admin=admin)
    await add_member(client, boss, org, buyer_owner, "admin")
    buyer_agent = await capable_agent(client, buyer_owner)
    await assign(client, buyer_owner, org, buyer_agent)
    await leave(client, buyer_owner, org)
    moved = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 20, "destination": f"agent:{buyer_agent.id}"},
        headers=buyer_owner.headers,
    )
    assert moved.status_code == 201, moved.text
    await finish_contract(client, buyer_agent, org_agent, score=1.0)
    rows = await history(client, org_agent, leaver)
    assert [r["excluded_reason"] for r in rows] == ["same_organization"] * 2
    reputation = await reputation_of(client, org_agent, leaver)
    assert reputation["trust_score"] == PRIOR
    assert reputation["stats"]["contracts"] == 2
    assert reputation["stats"]["counted_outcomes"] == 0

    # Control: an unrelated requester's identical settlement does move trust.
    stranger = await funded_user(app, client, admin=admin)
    await finish_contract(client, stranger, agent, score=1.0, rating=5)
    rows = await history(client, agent, provider)
    assert [r["counts_for_trust"] for r in rows] == [True, False, False]
    reputation = await reputation_of(client, agent, provider)
    assert reputation["trust_score"] == pytest.approx(expected_trust(1, RAW_PERFECT_RATED))
    assert reputation["trust_score"] == pytest.approx(0.6)
    assert reputation["stats"]["contracts"] == 3
    assert reputation["stats"]["counted_outcomes"] == 1


async def test_an_organization_agent_hiring_a_members_agent_earns_no_trust(app, client):
    """The mirror of a member hiring an org agent: the org's agent (its owner gone from the
    org) hires an unassigned agent owned by a member of the org."""
    admin = await make_admin(app, client)
    boss = await register(client)
    org = await new_org(client, boss, "mirror-org")
    buyer_owner = await funded_user(app, client, credits=50, admin=admin)
    await add_member(client, boss, org, buyer_owner, "admin")
    buyer_agent = await capable_agent(client, buyer_owner)
    await assign(client, buyer_owner, org, buyer_agent)
    await leave(client, buyer_owner, org)
    member = await register(client)
    await add_member(client, boss, org, member, "member")
    members_agent = await capable_agent(client, member)
    moved = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 20, "destination": f"agent:{buyer_agent.id}"},
        headers=buyer_owner.headers,
    )
    assert moved.status_code == 201, moved.text
    await finish_contract(client, buyer_agent, members_agent, score=1.0)
    assert [r["excluded_reason"] for r in await history(client, members_agent, member)] == [
        "same_organization"
    ]
    assert await trust_value(client, members_agent, member) == PRIOR


# ---- 2. one requester's influence is capped ----


async def _agent_outcomes(app: FastAPI, agent: TestAgent) -> tuple[list[Outcome], datetime]:
    async with app.state.database.read_sessions() as session:
        agent_id = uuid.UUID(agent.id)
        outcomes = (await service.counted_outcomes(session, [agent_id]))[agent_id]
        enrolled = await session.scalar(select(Agent.created_at).where(Agent.id == agent_id))
    assert enrolled is not None
    return outcomes, enrolled


async def test_a_hostile_requester_cannot_sink_an_agent(app, client, settings):
    admin = await make_admin(app, client)
    agent = await capable_agent(client)
    for _ in range(10):
        requester = await funded_user(app, client, credits=10, admin=admin)
        await finish_contract(client, requester, agent, score=1.0, rating=5)
    before = await trust_value(client, agent, admin)
    assert before == pytest.approx(expected_trust(10, RAW_PERFECT_RATED))

    # The attacker sends half of the failures through its own agent: one owner, one cap.
    hostile = await funded_user(app, client, credits=20, admin=admin)
    hostile_agent = await capable_agent(client, hostile)
    moved = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 10, "destination": f"agent:{hostile_agent.id}"},
        headers=hostile.headers,
    )
    assert moved.status_code == 201, moved.text
    for sender in (hostile, hostile_agent):
        for _ in range(10):
            await refunded_dispute(client, admin, sender, agent)

    reputation = await reputation_of(client, agent, admin)
    assert reputation["stats"]["contracts"] == 30
    assert reputation["stats"]["counted_outcomes"] == 30
    after = reputation["trust_score"]

    outcomes, enrolled = await _agent_outcomes(app, agent)
    assert len(outcomes) == 30
    assert sum(1 for o in outcomes if o.requester == hostile.id) == 20
    now = utcnow()
    params = service.params_from(settings)
    capped = formula.compute(outcomes, enrolled_at=enrolled, now=now, params=params)
    uncapped = formula.compute(
        outcomes, enrolled_at=enrolled, now=now, params=TrustParams(requester_cap_min=1e9)
    )
    assert after == pytest.approx(capped.trust)
    # 20 of 30 outcomes are failures, but the attacker weighs max(3, 0.2 x W) with W the
    # capped total: 3 of 13.
    ordered = sorted(outcomes, key=lambda o: (o.at, o.key))
    weights = formula.capped_weights(ordered, [1.0] * len(ordered), params)
    attacker = sum(w for o, w in zip(ordered, weights, strict=True) if o.requester == hostile.id)
    total = sum(weights)
    assert total == pytest.approx(13.0)
    assert reputation["breakdown"]["effective_outcomes"] == pytest.approx(total)
    assert attacker == pytest.approx(max(3.0, 0.2 * total)) == pytest.approx(3.0)
    assert capped.effective_outcomes == pytest.approx(13.0)
    assert uncapped.effective_outcomes == pytest.approx(30.0)
    # Uncapped, the attack would drag the agent below the prior (~0.48); capped it stays
    # well above it (~0.70), and well above the uncapped value.
    assert uncapped.trust < PRIOR
    assert after > PRIOR + 0.15
    assert after - uncapped.trust > 0.15
    assert before - after < (before - uncapped.trust) / 2


async def test_a_friendly_requester_cannot_inflate_an_agent(app, client):
    """One friend giving 50 perfect outcomes lifts a new agent no higher than 3 perfect
    outcomes would: an only customer weighs at most cap_min = 3."""
    admin = await make_admin(app, client)
    friend = await funded_user(app, client, credits=300, admin=admin)
    agent = await capable_agent(client)
    for _ in range(3):
        await finish_contract(client, friend, agent, score=1.0, rating=5)
    three = await trust_value(client, agent, admin)
    assert three == pytest.approx(expected_trust(3, RAW_PERFECT_RATED))
    for _ in range(47):
        await finish_contract(client, friend, agent, score=1.0, rating=5)
    reputation = await reputation_of(client, agent, admin)
    assert reputation["stats"]["counted_outcomes"] == 50
    assert reputation["breakdown"]["effective_outcomes"] == pytest.approx(3.0)
    assert reputation["trust_score"] == pytest.approx(three)

    outcomes, enrolled = await _agent_outcomes(app, agent)
    uncapped = formula.compute(
        outcomes, enrolled_at=enrolled, now=utcnow(), params=TrustParams(requester_cap_min=1e9)
    )
    assert uncapped.trust == pytest.approx(expected_trust(50, RAW_PERFECT_RATED))
    assert uncapped.trust - reputation["trust_score"] > 0.15


def _perfect(requester: str, count: int, *, success: bool = True) -> list[Outcome]:
    at = datetime(2025, 6, 1, 12, tzinfo=UTC)
    return [
        Outcome(
            key=f"{requester}-{i:03d}",
            requester=requester,
            at=at,
            success=success,
            on_time=success,
            validation_score=1.0 if success else 0.0,
            stars=5 if success else None,
        )
        for i in range(count)
    ]


def test_the_requester_cap_is_a_share_of_the_capped_total():
    """Formula-level: however much one requester sends, it weighs max(3, 0.2 x W) with W
    the capped total, so it never reaches more than a fifth of what the score is built
    from (once past the floor of 3)."""
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)
    params = TrustParams()
    for volume in (50, 500):
        alone = formula.compute(_perfect("friend", volume), enrolled_at=now, now=now, params=params)
        assert alone.effective_outcomes == pytest.approx(3.0)
        assert alone.trust == pytest.approx(expected_trust(3, RAW_PERFECT_RATED))
    # With 20 honest requesters (weight 20), a hostile one's cap is 0.2 x 25 = 5.
    honest = [o for i in range(20) for o in _perfect(f"honest-{i}", 1)]
    hostile = _perfect("hostile", 40, success=False)
    ordered = sorted(honest + hostile, key=lambda o: (o.at, o.key))
    weights = formula.capped_weights(ordered, [1.0] * len(ordered), params)
    total = sum(weights)
    mine = sum(w for o, w in zip(ordered, weights, strict=True) if o.requester == "hostile")
    assert total == pytest.approx(25.0)
    assert mine == pytest.approx(0.2 * total) == pytest.approx(5.0)


# ---- 3. rating spam ----


async def test_rating_spam_is_refused_and_an_outlier_rater_is_down_weighted(app, client):
    admin = await make_admin(app, client)
    agents = [await capable_agent(client) for _ in range(3)]
    fans = [await funded_user(app, client, credits=30, admin=admin) for _ in range(3)]
    troll = await funded_user(app, client, credits=30, admin=admin)
    fan_contracts = [
        await finish_contract(client, fan, agent, score=1.0, rating=5)
        for agent in agents
        for fan in fans
    ]
    troll_contracts = [await finish_contract(client, troll, agent, score=1.0) for agent in agents]
    target = agents[0]

    # One rating per contract: the second POST is a conflict and changes nothing.
    url = f"/api/v1/agents/{target.id}/rate"
    first = await client.post(
        url, json={"contract_id": troll_contracts[0]["id"], "stars": 1}, headers=troll.headers
    )
    assert first.status_code == 201, first.text
    again = await client.post(
        url, json={"contract_id": troll_contracts[0]["id"], "stars": 1}, headers=troll.headers
    )
    assert_problem(again, 409, "already_rated")
    # A contract rated at settlement cannot be rated a second time either.
    fan_contract = fan_contracts[0]["id"]  # fans[0]'s contract with the target
    assert_problem(
        await client.post(
            url, json={"contract_id": fan_contract, "stars": 1}, headers=fans[0].headers
        ),
        409,
        "already_rated",
    )
    for agent, contract in zip(agents[1:], troll_contracts[1:], strict=True):
        rated = await client.post(
            f"/api/v1/agents/{agent.id}/rate",
            json={"contract_id": contract["id"], "stars": 1},
            headers=troll.headers,
        )
        assert rated.status_code == 201, rated.text

    def rating_score(reputation: dict[str, Any]) -> float:
        comps = {c["name"]: c for c in reputation["breakdown"]["components"]}
        return float(comps["rating_score"]["value"])

    before = await reputation_of(client, target, admin)
    assert before["stats"]["rating_count"] == 4
    assert before["stats"]["mean_rating"] == pytest.approx(4.0)  # (5 + 5 + 5 + 1) / 4
    assert rating_score(before) == pytest.approx(0.8)

    report = await run_scan(client, admin)
    assert report["raters_down_weighted"] == 1
    assert report["agents_recomputed"] == 3
    assert report["new_flags"] == 0
    async with app.state.database.read_sessions() as session:
        weights = {
            str(r.rater_owner_id): r.weight for r in await session.scalars(select(RaterWeight))
        }
    assert weights[troll.id] <= 0.25
    assert weights[troll.id] == pytest.approx(0.125)  # 4 stars off the consensus: 1.5x
    assert all(weights[fan.id] == 1.0 for fan in fans)

    after = await reputation_of(client, target, admin)
    # The troll's star weighs 0.125: (15 + 0.125) / 3.125 = 4.84 stars.
    assert after["stats"]["mean_rating"] == pytest.approx(15.125 / 3.125)
    assert rating_score(after) == pytest.approx(15.125 / 3.125 / 5)
    assert rating_score(after) > rating_score(before) + 0.15
    assert after["trust_score"] > before["trust_score"]
    assert after["trust_score"] - before["trust_score"] == pytest.approx(
        expected_trust(4, 0.2 * (rating_score(after) - rating_score(before)), k=3.0)
        - expected_trust(4, 0.0, k=3.0)
    )


# ---- 4. collusion ring ----


async def _ring(
    app: FastAPI, client: httpx.AsyncClient, admin: TestUser
) -> tuple[list[TestUser], list[TestAgent]]:
    """Three accounts each owning an agent; each hires the next one's agent twice."""
    users = [await funded_user(app, client, credits=30, admin=admin) for _ in range(3)]
    agents = [await capable_agent(client, user) for user in users]
    for i, user in enumerate(users):
        for _ in range(2):
            await finish_contract(client, user, agents[(i + 1) % 3], score=1.0)
    return users, agents


async def test_a_collusion_ring_is_flagged_and_reviewed(app, client):
    admin = await make_admin(app, client)
    outsider = await register(client)
    ring_one, agents_one = await _ring(app, client, admin)
    ring_two, agents_two = await _ring(app, client, admin)
    ring_trust = expected_trust(2, RAW_PERFECT_UNRATED)
    for agent in agents_one + agents_two:
        assert await trust_value(client, agent, admin) == pytest.approx(ring_trust)

    # Only admins may look at flags, scan or resolve.
    for response in (
        await client.get(f"{ADMIN_TRUST}/flags", headers=outsider.headers),
        await client.post(f"{ADMIN_TRUST}/scan", headers=outsider.headers),
        await resolve(client, outsider, str(uuid.uuid4()), "dismiss"),
    ):
        assert_problem(response, 403, "admin_required")

    report = await run_scan(client, admin)
    assert report["trades"] == 12
    assert report["contracts_held_back"] == 12
    assert report["agents_recomputed"] == 6
    assert report["new_flags"] >= 2
    # Every ring outcome stops counting: back to the prior, history says "flagged".
    for agent in agents_one + agents_two:
        assert await trust_value(client, agent, admin) == PRIOR
        rows = await history(client, agent, admin)
        assert [(r["counts_for_trust"], r["excluded_reason"]) for r in rows] == [
            (False, "flagged")
        ] * 2

    listed = await flags(client, admin)
    assert len(listed) == report["new_flags"]

    def flags_of(users: list[TestUser]) -> list[dict[str, Any]]:
        members = sorted(u.id for u in users)
        return [f for f in listed if sorted(f["accounts"]) == members]

    first, second = flags_of(ring_one), flags_of(ring_two)
    assert len(first) + len(second) == len(listed)
    for group, agents in ((first, agents_one), (second, agents_two)):
        assert "circular_flow" in {f["kind"] for f in group}
        assert {f["kind"] for f in group} <= {"circular_flow", "dense_cluster"}
        for flag in group:
            assert flag["status"] == "open"
            assert flag["contracts_held_back"] == 6
            assert sorted(flag["agent_ids"]) == sorted(a.id for a in agents)

    # Dismiss ring one: its outcomes count again, trust is back where it was.
    for flag in first:
        dismissed = await resolve(client, admin, flag["id"], "dismiss")
        assert dismissed.status_code == 200, dismissed.text
        assert dismissed.json()["status"] == "dismissed"
    for agent in agents_one:
        assert await trust_value(client, agent, admin) == pytest.approx(ring_trust)
        assert all(r["counts_for_trust"] for r in await history(client, agent, admin))
    # Confirm ring two: its outcomes stay out.
    for flag in second:
        confirmed = await resolve(client, admin, flag["id"], "confirm")
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["status"] == "confirmed"
    for agent in agents_two:
        assert await trust_value(client, agent, admin) == PRIOR

    # A decision is final; an unknown flag is 404.
    assert_problem(
        await resolve(client, admin, first[0]["id"], "confirm"), 409, "flag_already_resolved"
    )
    assert_problem(
        await resolve(client, admin, second[0]["id"], "dismiss"), 409, "flag_already_resolved"
    )
    assert_problem(
        await resolve(client, admin, str(uuid.uuid4()), "dismiss"), 404, "trust_flag_not_found"
    )

    # The cleared ring trades on; a second scan does not re-flag it (nor anything else).
    await finish_contract(client, ring_one[0], agents_one[1], score=1.0)
    again = await run_scan(client, admin)
    assert again["new_flags"] == 0
    assert again["contracts_held_back"] == 0
    assert await flags(client, admin) == []
    assert len(await flags(client, admin, "dismissed")) == len(first)
    assert await trust_value(client, agents_one[0], admin) == pytest.approx(ring_trust)
    assert await trust_value(client, agents_one[1], admin) == pytest.approx(
        expected_trust(3, RAW_PERFECT_UNRATED)
    )
    assert await trust_value(client, agents_one[2], admin) == pytest.approx(ring_trust)
    for agent in agents_two:
        assert await trust_value(client, agent, admin) == PRIOR
    # New trade in the confirmed ring is held back by the confirmed flag as it comes in.
    await finish_contract(client, ring_two[0], agents_two[1], score=1.0)
    assert await trust_value(client, agents_two[1], admin) > PRIOR  # counted until scanned
    third = await run_scan(client, admin)
    assert third["new_flags"] == 0
    assert third["contracts_held_back"] == 1
    assert await trust_value(client, agents_two[1], admin) == PRIOR


# ---- 5. a new account with many agents ----


async def test_a_new_account_with_many_trading_agents_is_flagged(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, credits=50, admin=admin)
    farmer = await register(client)
    farm = [await capable_agent(client, farmer) for _ in range(10)]
    modest = await register(client)
    few = [await capable_agent(client, modest) for _ in range(9)]
    for agent in (farm[0], farm[1], few[0]):
        await finish_contract(client, requester, agent, score=1.0, rating=5)
    one = expected_trust(1, RAW_PERFECT_RATED)
    assert await trust_value(client, farm[0], admin) == pytest.approx(one)

    report = await run_scan(client, admin)
    assert report["new_flags"] == 1
    assert report["contracts_held_back"] == 2
    [flag] = await flags(client, admin)
    assert flag["kind"] == "new_account_many_agents"
    assert flag["accounts"] == [farmer.id]
    assert flag["detail"]["agents"] == 10
    assert sorted(flag["agent_ids"]) == sorted([farm[0].id, farm[1].id])
    assert await trust_value(client, farm[0], admin) == PRIOR
    assert await trust_value(client, farm[1], admin) == PRIOR
    # Nine agents is under the threshold: that account's trade still counts.
    assert await trust_value(client, few[0], admin) == pytest.approx(one)


# ---- 6. whitewashing ----


async def test_a_banned_agent_reenrolled_with_its_key_starts_on_probation(app, client):
    admin = await make_admin(app, client)
    owner = await register(client)
    key = Ed25519PrivateKey.generate()
    shady = await enroll_with_key(client, owner, key, "Shady Summariser")
    critic = await funded_user(app, client, credits=30, admin=admin)
    for _ in range(2):
        await refunded_dispute(client, admin, critic, shady)
    poor = await trust_value(client, shady, admin)
    assert poor < PRIOR
    assert poor == pytest.approx(expected_trust(2, 0.2 * 0.6 + 0.1))

    await ban(client, admin, shady)
    assert_problem(
        await client.get("/api/v1/agents/me", headers=shady.headers), 401, "invalid_api_key"
    )
    patched = await client.patch(
        f"/api/v1/agents/{shady.id}", json={"status": "active"}, headers=owner.headers
    )
    assert patched.status_code in (403, 422), patched.text
    if patched.status_code == 403:
        assert patched.json()["code"] == "agent_banned"

    # The ban freed the key: the same key enrolls again, under another name.
    reborn = await enroll_with_key(client, owner, key, "Brand New Helper")
    score = await trust_of(client, reborn, admin)
    assert score["trust_score"] == PRIOR
    assert score["on_probation"] is True
    [flag] = [f for f in await flags(client, admin) if f["kind"] == "whitewash"]
    assert flag["subject_agent_id"] == reborn.id
    assert flag["detail"]["same_key"] is True
    assert flag["detail"]["banned_agents"] == [shady.id]
    assert "verified" not in await badges(client, reborn, admin)

    # Perfect work does not lift it above the prior while on probation.
    for _ in range(3):
        await finish_contract(client, critic, reborn, score=1.0, rating=5)
    reputation = await reputation_of(client, reborn, admin)
    assert reputation["stats"]["counted_outcomes"] == 3
    assert reputation["breakdown"]["raw_score"] == pytest.approx(RAW_PERFECT_RATED)
    assert reputation["trust_score"] == PRIOR
    assert reputation["on_probation"] is True
    assert "verified" not in {b["badge"] for b in reputation["badges"]}

    # An admin clears it: the cap is lifted at once.
    dismissed = await resolve(client, admin, flag["id"], "dismiss")
    assert dismissed.status_code == 200, dismissed.text
    reputation = await reputation_of(client, reborn, admin)
    assert reputation["on_probation"] is False
    assert reputation["trust_score"] == pytest.approx(expected_trust(3, RAW_PERFECT_RATED))
    assert "verified" in {b["badge"] for b in reputation["badges"]}


async def test_a_banned_agent_reenrolled_under_its_name_starts_on_probation(app, client):
    admin = await make_admin(app, client)
    owner = await register(client)
    shady = await enroll_with_key(client, owner, Ed25519PrivateKey.generate(), "Shady Bot")
    await ban(client, admin, shady)

    # A new key, the same name up to case and punctuation.
    reborn = await enroll_with_key(client, owner, Ed25519PrivateKey.generate(), "  shady_BOT!! ")
    score = await trust_of(client, reborn, admin)
    assert score["trust_score"] == PRIOR
    assert score["on_probation"] is True
    [flag] = [f for f in await flags(client, admin) if f["kind"] == "whitewash"]
    assert flag["subject_agent_id"] == reborn.id
    assert flag["detail"]["same_name"] is True
    assert flag["detail"]["same_key"] is False
    # A different name is not caught.
    other = await enroll_with_key(client, owner, Ed25519PrivateKey.generate(), "Shady Bot 2")
    assert (await trust_of(client, other, admin))["on_probation"] is False

    requester = await funded_user(app, client, credits=30, admin=admin)
    for _ in range(3):
        await finish_contract(client, requester, reborn, score=1.0, rating=5)
    assert await trust_value(client, reborn, admin) == PRIOR
    assert "verified" not in await badges(client, reborn, admin)

    # Confirming keeps it on probation; dismissing is the only way out.
    confirmed = await resolve(client, admin, flag["id"], "confirm")
    assert confirmed.status_code == 200, confirmed.text
    assert await trust_value(client, reborn, admin) == PRIOR
    assert (await trust_of(client, reborn, admin))["on_probation"] is True


async def test_a_banned_agent_with_a_good_history_is_not_inherited(app, client):
    admin = await make_admin(app, client)
    owner = await register(client)
    key = Ed25519PrivateKey.generate()
    star = await enroll_with_key(client, owner, key, "Star Performer")
    requester = await funded_user(app, client, credits=30, admin=admin)
    for _ in range(3):
        await finish_contract(client, requester, star, score=1.0, rating=5)
    assert await trust_value(client, star, admin) == pytest.approx(
        expected_trust(3, RAW_PERFECT_RATED)
    )
    await ban(client, admin, star)

    reborn = await enroll_with_key(client, owner, key, "Star Performer")
    reputation = await reputation_of(client, reborn, admin)
    assert reputation["trust_score"] == PRIOR
    assert reputation["on_probation"] is True
    assert reputation["stats"]["contracts"] == 0
    assert reputation["stats"]["counted_outcomes"] == 0
    [flag] = [f for f in await flags(client, admin) if f["kind"] == "whitewash"]
    assert flag["detail"]["same_key"] is True
    assert flag["detail"]["same_name"] is True


async def test_renaming_to_a_banned_name_is_caught(app, client):
    admin = await make_admin(app, client)
    owner = await register(client)
    shady = await enroll_with_key(client, owner, Ed25519PrivateKey.generate(), "Shady Bot")
    await ban(client, admin, shady)
    reborn = await enroll_with_key(client, owner, Ed25519PrivateKey.generate(), "Innocent")
    assert (await trust_of(client, reborn, admin))["on_probation"] is False
    renamed = await client.patch(
        f"/api/v1/agents/{reborn.id}", json={"name": "Shady Bot"}, headers=owner.headers
    )
    assert renamed.status_code == 200, renamed.text
    assert (await trust_of(client, reborn, admin))["on_probation"] is True
