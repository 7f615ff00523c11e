"""The trust API over HTTP (scores, reputation, history, leaderboard: who sees what), and
how the mesh uses trust: failures and refunded disputes lower it, the award ranks by it,
min_reputation and complexity levels gate bids on it.

Expected scores for a day-0 agent (uptime 0) with one requester, n counted outcomes (n <= 3,
the per-requester cap) all alike: published = (n * raw + 1.5) / (n + 3) with
raw = 0.4 success + 0.2 on_time + 0.2 rating_score + 0.1 consistency. A success on time with
no rating has raw 0.82 (one: 0.58, three: 0.66); with 5 stars 0.9 (one: 0.6, three: 0.7);
with 1 star 0.74 (one: 0.56). A failure has raw 0.22 (one: 0.43).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from hermes_hub.kit.time import utcnow
from hermes_hub.trust.models import TrustBadge, TrustDaily, TrustScore
from tests.factories import TestAgent, TestUser, assert_problem, register
from tests.ledger.helpers import make_admin
from tests.mesh.helpers import CONTRACTS, bid, capable_agent, funded_user, post_contract
from tests.trust.helpers import MARKETPLACE, finish_contract, reputation_of, trust_of

AGENTS = "/api/v1/agents"
LEADERBOARD = f"{MARKETPLACE}/leaderboard"
COMPONENTS = ["success_rate", "latency_score", "rating_score", "uptime_score", "consistency_score"]


# ---- helpers ----


def trust_paths(agent_id: str) -> list[str]:
    return [
        f"{MARKETPLACE}/agents/{agent_id}/trust-score",
        f"{MARKETPLACE}/agents/{agent_id}/reputation",
        f"{MARKETPLACE}/agents/{agent_id}/trust-history",
        f"{AGENTS}/{agent_id}/history",
    ]


async def get_ok(client: httpx.AsyncClient, path: str, viewer: Any, **params: Any) -> Any:
    response = await client.get(path, params=params, headers=viewer.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def history(client: httpx.AsyncClient, agent: TestAgent, viewer: Any, **params: Any) -> Any:
    return await get_ok(client, f"{AGENTS}/{agent.id}/history", viewer, **params)


async def trust_history(
    client: httpx.AsyncClient, agent: TestAgent, viewer: Any, **params: Any
) -> list[dict[str, Any]]:
    body = await get_ok(client, f"{MARKETPLACE}/agents/{agent.id}/trust-history", viewer, **params)
    assert body["agent_id"] == agent.id
    points: list[dict[str, Any]] = body["points"]
    return points


async def board(client: httpx.AsyncClient, viewer: Any, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = await get_ok(client, LEADERBOARD, viewer, **params)
    assert [row["rank"] for row in body["items"]] == list(range(1, len(body["items"]) + 1))
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [row["agent_id"] for row in body["items"]]


def component(reputation: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        c for c in reputation["breakdown"]["components"] if c["name"] == name
    )
    return found


async def patch_agent(
    client: httpx.AsyncClient, owner: TestUser, agent: TestAgent, **fields: Any
) -> None:
    response = await client.patch(f"{AGENTS}/{agent.id}", json=fields, headers=owner.headers)
    assert response.status_code == 200, response.text


async def run_due(app: FastAPI, after: timedelta) -> dict[str, int]:
    result: dict[str, int] = await app.state.mesh_scheduler.run_due(now=utcnow() + after)
    return result


async def failed_contract(
    app: FastAPI, client: httpx.AsyncClient, requester: Any, agent: TestAgent
) -> dict[str, Any]:
    """Awarded with a 60-second delivery window, never delivered, failed by the scheduler."""
    contract = await post_contract(client, requester, bidding_seconds=600, deadline_seconds=60)
    placed = await bid(client, agent, contract["id"], eta_seconds=30)
    assert placed.status_code == 201, placed.text
    url = f"{CONTRACTS}/{contract['id']}"
    assert (await client.post(f"{url}/award", headers=requester.headers)).status_code == 200
    done = await run_due(app, timedelta(seconds=120))
    assert done.get("failed") == 1, done
    body: dict[str, Any] = await get_ok(client, url, requester)
    assert body["status"] == "failed"
    return body


async def refunded_dispute(
    client: httpx.AsyncClient, admin: TestUser, requester: Any, agent: TestAgent
) -> dict[str, Any]:
    disputed = await finish_contract(client, requester, agent, score=0.3)
    assert disputed["status"] == "disputed"
    response = await client.post(
        f"{CONTRACTS}/{disputed['id']}/dispute/resolve",
        json={"outcome": "refund"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "resolved"
    return body


# ---- a new agent ----


async def test_a_new_agent_has_the_prior(app, client):
    owner = await register(client)
    agent = await capable_agent(client, owner)
    stranger = await register(client)

    score = await trust_of(client, agent, stranger)
    assert score["agent_id"] == agent.id
    assert (score["trust_score"], score["grade"], score["level"]) == (0.5, "D", "intermediate")
    assert score["on_probation"] is False
    assert score["computed_at"] is not None  # enrollment computed it

    reputation = await reputation_of(client, agent, stranger)
    assert reputation["trust_score"] == 0.5
    assert [b["badge"] for b in reputation["badges"]] == ["verified"]
    assert reputation["badges"][0]["description"]
    assert reputation["badges"][0]["earned_at"] is not None
    breakdown = reputation["breakdown"]
    assert [c["name"] for c in breakdown["components"]] == COMPONENTS
    assert breakdown["raw_score"] is None
    assert breakdown["counted_outcomes"] == 0
    assert breakdown["effective_outcomes"] == 0
    assert component(reputation, "success_rate")["value"] is None
    assert component(reputation, "rating_score")["value"] == 0.6  # neutral
    assert component(reputation, "uptime_score")["value"] == 0
    assert reputation["stats"] == {
        "contracts": 0,
        "counted_outcomes": 0,
        "success_rate": None,
        "mean_rating": None,
        "rating_count": 0,
        "earnings": 0,
        "earnings_units": 0,
    }

    points = await trust_history(client, agent, stranger)
    assert points == [
        {
            "day": utcnow().date().isoformat(),
            "trust_score": 0.5,
            "grade": "D",
            "counted_outcomes": 0,
        }
    ]
    empty = await history(client, agent, stranger)
    assert (empty["items"], empty["total"]) == ([], 0)


async def test_an_unknown_agent_is_not_found(app, client):
    viewer = await register(client)
    for path in trust_paths(str(uuid.uuid4())):
        assert_problem(await client.get(path, headers=viewer.headers), 404, "agent_not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{MARKETPLACE}/agents/{{id}}/trust-score"),
        ("GET", f"{MARKETPLACE}/agents/{{id}}/reputation"),
        ("GET", f"{MARKETPLACE}/agents/{{id}}/trust-history"),
        ("GET", f"{AGENTS}/{{id}}/history"),
        ("GET", LEADERBOARD),
        ("POST", f"{AGENTS}/{{id}}/rate"),
        ("PUT", f"{AGENTS}/{{id}}/ratings/{{contract}}"),
    ],
)
@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "not_authenticated"),
        ("Bearer not-a-token", "invalid_token"),
        ("Bearer hhk_unknown", "invalid_api_key"),
    ],
)
async def test_trust_endpoints_need_a_login(app, client, method, path, token, code):
    agent = await capable_agent(client)
    url = path.format(id=agent.id, contract=uuid.uuid4())
    body = {"contract_id": str(uuid.uuid4()), "stars": 5} if method == "POST" else {"stars": 5}
    headers = {"Authorization": token} if token else {}
    response = await client.request(
        method, url, json=body if method != "GET" else None, headers=headers
    )
    assert_problem(response, 401, code)


# ---- who sees what ----


async def test_a_private_agent_is_hidden_from_strangers(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    owner = await register(client)
    agent = await capable_agent(client, owner)
    contract = await finish_contract(client, requester, agent, rating=5)
    await patch_agent(client, owner, agent, is_public=False)

    strangers: list[Any] = [await register(client), await capable_agent(client), requester]
    for stranger in strangers:
        for path in trust_paths(agent.id):
            assert_problem(await client.get(path, headers=stranger.headers), 404, "agent_not_found")

    for insider in (owner, admin, agent):
        for path in trust_paths(agent.id):
            assert (await client.get(path, headers=insider.headers)).status_code == 200, path
        assert (await trust_of(client, agent, insider))["trust_score"] == pytest.approx(0.6)
        [item] = (await history(client, agent, insider))["items"]
        assert item["contract_id"] == contract["id"]

    # Public again: everyone sees it, but only insiders see contract ids.
    await patch_agent(client, owner, agent, is_public=True)
    [item] = (await history(client, agent, requester))["items"]
    assert item["contract_id"] is None


async def test_history_pages_newest_first_and_hides_contract_ids(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    owner = await register(client)
    agent = await capable_agent(client, owner)
    contracts = [
        await finish_contract(client, requester, agent, rating=rating) for rating in (5, None, 2)
    ]
    newest_first = [c["id"] for c in reversed(contracts)]
    stranger = await register(client)

    first = await history(client, agent, stranger, limit=2)
    second = await history(client, agent, stranger, limit=2, offset=2)
    assert (first["total"], first["limit"], first["offset"]) == (3, 2, 0)
    assert (second["total"], second["offset"], len(second["items"])) == (3, 2, 1)
    items = first["items"] + second["items"]
    assert [item["contract_id"] for item in items] == [None, None, None]
    assert [item["rating"] for item in items] == [2, None, 5]
    times = [item["created_at"] for item in items]
    assert times == sorted(times, reverse=True)
    for item in items:
        assert item["outcome"] == "settled"
        assert (item["success"], item["on_time"], item["counts_for_trust"]) == (True, True, True)
        assert item["excluded_reason"] is None
        assert (item["validation_score"], item["capability"]) == (1.0, "summarize")
        assert item["promised_seconds"] == 600
    # The requester is a stranger to the agent too.
    assert [i["contract_id"] for i in (await history(client, agent, requester))["items"]] == [
        None
    ] * 3

    for insider in (owner, admin, agent):
        seen = await history(client, agent, insider)
        assert [item["contract_id"] for item in seen["items"]] == newest_first
    beyond = await history(client, agent, owner, offset=3)
    assert (beyond["items"], beyond["total"]) == ([], 3)
    for params in ({"limit": 0}, {"offset": -1}, {"limit": "x"}):
        response = await client.get(
            f"{AGENTS}/{agent.id}/history", params=params, headers=owner.headers
        )
        assert_problem(response, 422, "validation_error")


async def test_outcomes_inside_one_organization_give_no_credit(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    owner = await register(client)
    agent = await capable_agent(client, owner)
    org = await client.post(
        "/api/v1/orgs", json={"name": "Guild", "slug": "guild"}, headers=owner.headers
    )
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    added = await client.post(
        f"/api/v1/orgs/{org_id}/members",
        json={"email": requester.email, "role": "member"},
        headers=owner.headers,
    )
    assert added.status_code in (200, 201), added.text
    moved = await client.put(f"/api/v1/orgs/{org_id}/agents/{agent.id}", headers=owner.headers)
    assert moved.status_code == 200, moved.text

    await finish_contract(client, requester, agent, rating=5)
    [item] = (await history(client, agent, requester))["items"]
    assert (item["counts_for_trust"], item["excluded_reason"]) == (False, "same_organization")
    score = await trust_of(client, agent, requester)
    assert score["trust_score"] == 0.5
    reputation = await reputation_of(client, agent, requester)
    assert (reputation["stats"]["contracts"], reputation["stats"]["counted_outcomes"]) == (1, 0)
    assert reputation["stats"]["rating_count"] == 0
    assert agent.id not in ids(await board(client, requester, by="contracts"))


# ---- trust history ----


async def test_trust_history_keeps_the_last_score_of_each_day(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    agent = await capable_agent(client)
    await finish_contract(client, requester, agent)
    today = utcnow().date()
    assert await trust_history(client, agent, requester) == [
        {
            "day": today.isoformat(),
            "trust_score": pytest.approx(0.58),
            "grade": "C-",
            "counted_outcomes": 1,
        }
    ]
    await finish_contract(client, requester, agent, rating=5)
    [point] = await trust_history(client, agent, requester)
    # The one rating (5 stars) is the rating score: raw 0.9, (2 * 0.9 + 1.5) / 5 = 0.66.
    assert (point["trust_score"], point["counted_outcomes"]) == (pytest.approx(0.66), 2)
    assert point["trust_score"] == (await trust_of(client, agent, requester))["trust_score"]

    async with app.state.database.write_sessions.begin() as session:
        session.add(
            TrustDaily(
                agent_id=uuid.UUID(agent.id),
                day=today - timedelta(days=10),
                trust=0.5,
                grade="D",
                counted_outcomes=0,
            )
        )
    days = [p["day"] for p in await trust_history(client, agent, requester, days=30)]
    assert days == [(today - timedelta(days=10)).isoformat(), today.isoformat()]
    days = [p["day"] for p in await trust_history(client, agent, requester, days=5)]
    assert days == [today.isoformat()]
    for bad in (0, -1, 3651, "week"):
        response = await client.get(
            f"{MARKETPLACE}/agents/{agent.id}/trust-history",
            params={"days": bad},
            headers=requester.headers,
        )
        assert_problem(response, 422, "validation_error")


# ---- the leaderboard ----


@pytest.mark.parametrize("settings_overrides", [{"trust_leaderboard_min_outcomes": 2}])
async def test_leaderboard_orders_filters_and_leaves_out(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, credits=200, admin=admin)
    busy, rich, idle = [await capable_agent(client) for _ in range(3)]
    translator = await capable_agent(client, capabilities=["translate"])
    paused_owner = await register(client)
    paused = await capable_agent(client, paused_owner)
    private_owner = await register(client)
    private = await capable_agent(client, private_owner)
    for _ in range(3):
        await finish_contract(client, requester, busy, price=2)
    await finish_contract(client, requester, rich, reward=20, price=20)
    await finish_contract(client, requester, translator, rating=5, capability="translate")
    for agent in (paused, private):
        for _ in range(2):
            await finish_contract(client, requester, agent)
    await patch_agent(client, paused_owner, paused, status="paused")
    await patch_agent(client, private_owner, private, is_public=False)

    by_contracts = await board(client, requester, by="contracts")
    assert by_contracts["min_outcomes_for_trust"] == 2
    assert (by_contracts["by"], by_contracts["period"], by_contracts["capability"]) == (
        "contracts",
        "all",
        None,
    )
    # busy: 3; translator and rich: 1 each, the tie broken by trust (0.6 over 0.58).
    assert ids(by_contracts) == [busy.id, translator.id, rich.id]
    assert [row["contracts"] for row in by_contracts["items"]] == [3, 1, 1]
    for row in by_contracts["items"]:
        agent = next(a for a in (busy, rich, translator) if a.id == row["agent_id"])
        score = await trust_of(client, agent, requester)
        reputation = await reputation_of(client, agent, requester)
        assert row["trust_score"] == score["trust_score"]
        assert (row["grade"], row["level"]) == (score["grade"], score["level"])
        assert row["counted_outcomes"] == reputation["stats"]["counted_outcomes"]
        assert row["earnings_units"] == reputation["stats"]["earnings_units"]
        assert row["name"] == "test agent"
    assert by_contracts["items"][0]["trust_score"] == pytest.approx(0.66)

    by_earnings = await board(client, requester, by="earnings")
    assert ids(by_earnings) == [rich.id, busy.id, translator.id]
    earned = [row["earnings_units"] for row in by_earnings["items"]]
    assert earned == sorted(earned, reverse=True)
    assert earned[0] > earned[1] > earned[2] > 0
    assert by_earnings["items"][0]["earnings"] == earned[0] / 100

    # By trust only agents with at least 2 counted outcomes: the paused and the private
    # agents have them, but they are not listed anywhere.
    by_trust = await board(client, requester, by="trust")
    assert ids(by_trust) == [busy.id]
    assert ids(await board(client, requester)) == [busy.id]  # trust is the default

    assert ids(await board(client, requester, by="contracts", capability="translate")) == [
        translator.id
    ]
    assert ids(await board(client, requester, by="contracts", capability="summarize")) == [
        busy.id,
        rich.id,
    ]
    assert ids(await board(client, requester, by="contracts", capability="legal")) == []
    for period in ("week", "month", "all"):
        assert ids(await board(client, requester, by="contracts", period=period)) == ids(
            by_contracts
        )
    listed = {row["agent_id"] for row in by_contracts["items"] + by_earnings["items"]}
    assert not listed & {paused.id, private.id, idle.id}

    # The owner of the private agent does not see it either: the board is public.
    assert private.id not in ids(await board(client, private_owner, by="contracts"))


@pytest.mark.parametrize("settings_overrides", [{"trust_leaderboard_min_outcomes": 1}])
@pytest.mark.parametrize("change", ["paused", "private"])
async def test_a_cached_leaderboard_drops_an_agent_made_private_or_paused(app, client, change):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    owner = await register(client)
    agent = await capable_agent(client, owner)
    await finish_contract(client, requester, agent)
    assert ids(await board(client, requester, by="trust")) == [agent.id]
    if change == "paused":
        await patch_agent(client, owner, agent, status="paused")
    else:
        await patch_agent(client, owner, agent, is_public=False)
    assert ids(await board(client, requester, by="trust")) == []


async def test_leaderboard_is_cached_until_trust_changes(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    agent = await capable_agent(client)
    contract = await finish_contract(client, requester, agent)

    first = await board(client, requester, by="contracts")
    assert first["min_outcomes_for_trust"] == 5
    assert first["cached"] is False
    second = await board(client, requester, by="contracts")
    assert second["cached"] is True
    assert second["items"] == first["items"]
    assert (await board(client, requester, by="contracts", period="all"))["cached"] is True
    assert (await board(client, requester, by="contracts", period="week"))["cached"] is False
    # Under the minimum of 5 counted outcomes: not ranked by trust.
    assert ids(await board(client, requester, by="trust")) == []

    await finish_contract(client, requester, agent)
    third = await board(client, requester, by="contracts")
    assert third["cached"] is False
    assert third["items"][0]["contracts"] == 2
    fourth = await board(client, requester, by="contracts")
    assert fourth["cached"] is True

    # A rating recomputes trust too.
    rated = await client.post(
        f"{AGENTS}/{agent.id}/rate",
        json={"contract_id": contract["id"], "stars": 5},
        headers=requester.headers,
    )
    assert rated.status_code == 201, rated.text
    fifth = await board(client, requester, by="contracts")
    assert fifth["cached"] is False
    assert fifth["items"][0]["trust_score"] > fourth["items"][0]["trust_score"]


@pytest.mark.parametrize(
    "params",
    [
        {"by": "rating"},
        {"by": "TRUST"},
        {"by": ""},
        {"period": "year"},
        {"period": "day"},
        {"capability": ""},
        {"capability": "x" * 65},
    ],
)
async def test_leaderboard_refuses_unknown_rankings(app, client, params):
    viewer = await register(client)
    response = await client.get(LEADERBOARD, params=params, headers=viewer.headers)
    assert_problem(response, 422, "validation_error")


# ---- failures and disputes ----


async def test_a_missed_deadline_lowers_trust_and_is_not_on_time(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    owner = await register(client)
    agent = await capable_agent(client, owner)
    contract = await failed_contract(app, client, requester, agent)

    score = await trust_of(client, agent, requester)
    assert score["trust_score"] == pytest.approx(0.43)
    assert (score["grade"], score["level"]) == ("D", "novice")
    reputation = await reputation_of(client, agent, requester)
    assert component(reputation, "success_rate")["value"] == 0
    assert component(reputation, "latency_score")["value"] == 0
    assert component(reputation, "latency_score")["inputs"]["on_time"] == 0
    assert reputation["stats"]["success_rate"] == 0
    assert (reputation["stats"]["contracts"], reputation["stats"]["counted_outcomes"]) == (1, 1)
    assert reputation["stats"]["earnings_units"] == 0
    [item] = (await history(client, agent, owner))["items"]
    assert item["contract_id"] == contract["id"]
    assert (item["outcome"], item["success"], item["on_time"]) == ("failed", False, False)
    assert (item["validation_score"], item["counts_for_trust"]) == (0, True)
    # A failed contract is not rated.
    response = await client.post(
        f"{AGENTS}/{agent.id}/rate",
        json={"contract_id": contract["id"], "stars": 1},
        headers=requester.headers,
    )
    assert_problem(response, 409, "contract_not_settled")

    # A later success on time moves it back up, but the failure still counts.
    await finish_contract(client, requester, agent)
    reputation = await reputation_of(client, agent, requester)
    assert component(reputation, "latency_score")["value"] == pytest.approx(0.5)
    assert reputation["stats"]["success_rate"] == pytest.approx(0.5)


async def test_a_refunded_dispute_counts_as_a_failure(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    owner = await register(client)
    agent = await capable_agent(client, owner)
    resolved = await refunded_dispute(client, admin, requester, agent)

    score = await trust_of(client, agent, requester)
    assert score["trust_score"] == pytest.approx(0.43)
    assert score["trust_score"] < 0.5
    reputation = await reputation_of(client, agent, requester)
    assert reputation["stats"]["success_rate"] == 0
    assert component(reputation, "latency_score")["value"] == 0
    assert reputation["stats"]["earnings_units"] == 0
    [item] = (await history(client, agent, owner))["items"]
    assert item["contract_id"] == resolved["id"]
    assert (item["outcome"], item["success"], item["on_time"]) == ("dispute", False, False)
    assert (item["validation_score"], item["counts_for_trust"]) == (0, True)


async def test_a_dispute_paid_to_the_agent_counts_as_a_success(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    agent = await capable_agent(client)
    disputed = await finish_contract(client, requester, agent, score=0.3)
    # Nothing is measured while the dispute is open.
    assert (await trust_of(client, agent, requester))["trust_score"] == 0.5
    assert (await history(client, agent, requester))["total"] == 0
    response = await client.post(
        f"{CONTRACTS}/{disputed['id']}/dispute/resolve",
        json={"outcome": "pay_agent"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    assert (await trust_of(client, agent, requester))["trust_score"] == pytest.approx(0.58)
    [item] = (await history(client, agent, requester))["items"]
    assert (item["outcome"], item["success"], item["validation_score"]) == ("dispute", True, 1)


# ---- the mesh uses the real trust ----


async def test_the_award_ranks_by_the_real_trust(app, client):
    admin = await make_admin(app, client)
    regular = await funded_user(app, client, credits=100, admin=admin)
    newcomer = await funded_user(app, client, credits=100, admin=admin)
    trusted, doubted = await capable_agent(client), await capable_agent(client)
    for _ in range(3):
        await finish_contract(client, regular, trusted, rating=5)
    await finish_contract(client, regular, doubted, rating=1)
    trusted_score = (await trust_of(client, trusted, newcomer))["trust_score"]
    doubted_score = (await trust_of(client, doubted, newcomer))["trust_score"]
    assert trusted_score == pytest.approx(0.7)
    assert doubted_score == pytest.approx(0.56)

    contract = await post_contract(client, newcomer, reward=5, bidding_seconds=600)
    # Identical bids; the doubted agent bids first, so only trust can put the other ahead.
    for agent in (doubted, trusted):
        placed = await bid(client, agent, contract["id"], price=4, eta_seconds=30, confidence=0.9)
        assert placed.status_code == 201, placed.text
    response = await client.post(f"{CONTRACTS}/{contract['id']}/award", headers=newcomer.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["contract"]["awarded_agent_id"] == trusted.id
    assert body["winner"]["agent_id"] == trusted.id
    ranking = {entry["agent_id"]: entry for entry in body["ranking"]}
    assert ranking[trusted.id]["trust"] == trusted_score
    assert ranking[doubted.id]["trust"] == doubted_score
    assert ranking[trusted.id]["components"]["reputation"] == pytest.approx(trusted_score)
    assert ranking[doubted.id]["components"]["reputation"] == pytest.approx(doubted_score)
    assert ranking[trusted.id]["score"] > ranking[doubted.id]["score"]
    assert (ranking[trusted.id]["outcome"], ranking[doubted.id]["outcome"]) == ("won", "lost")

    stored = await get_ok(client, f"{CONTRACTS}/{contract['id']}", newcomer)
    report = {entry["agent_id"]: entry for entry in stored["award_report"]["ranking"]}
    assert report[trusted.id]["trust"] == trusted_score
    assert report[doubted.id]["trust"] == doubted_score


async def test_min_reputation_and_complexity_use_the_real_trust(app, client):
    admin = await make_admin(app, client)
    first, second = [await funded_user(app, client, credits=100, admin=admin) for _ in range(2)]
    poster = await funded_user(app, client, credits=100, admin=admin)
    newcomer = await capable_agent(client)
    fallen = await capable_agent(client)
    trusted = await capable_agent(client)
    expert = await capable_agent(client)
    await refunded_dispute(client, admin, first, fallen)
    for _ in range(3):
        await finish_contract(client, first, trusted, rating=5)
    # Two requesters, three outcomes each: n = 6, (6 * 0.9 + 1.5) / 9 = 0.7667.
    for requester in (first, second):
        for _ in range(3):
            await finish_contract(client, requester, expert, rating=5)
    levels = {
        agent.id: await trust_of(client, agent, poster)
        for agent in (newcomer, fallen, trusted, expert)
    }
    assert levels[fallen.id]["trust_score"] == pytest.approx(0.43)
    assert levels[trusted.id]["trust_score"] == pytest.approx(0.7)
    assert levels[expert.id]["trust_score"] == pytest.approx(0.7 + 0.2 / 3)
    assert [levels[a.id]["level"] for a in (newcomer, fallen, trusted, expert)] == [
        "intermediate",
        "novice",
        "intermediate",
        "expert",
    ]

    async def try_bid(contract: dict[str, Any], agent: TestAgent) -> httpx.Response:
        return await bid(client, agent, contract["id"])

    strict = await post_contract(client, poster, bidding_seconds=600, min_reputation=0.6)
    for agent in (newcomer, fallen):
        assert_problem(await try_bid(strict, agent), 403, "reputation_too_low")
    for agent in (trusted, expert):
        assert (await try_bid(strict, agent)).status_code == 201
    # Just under the prior: a newcomer may bid, an agent that fell below it may not.
    lenient = await post_contract(client, poster, bidding_seconds=600, min_reputation=0.45)
    assert (await try_bid(lenient, newcomer)).status_code == 201
    body = assert_problem(await try_bid(lenient, fallen), 403, "reputation_too_low")
    assert str(levels[fallen.id]["trust_score"]) in body["detail"]

    hard = await post_contract(client, poster, bidding_seconds=600, complexity="complex")
    for agent in (newcomer, trusted):
        body = assert_problem(await try_bid(hard, agent), 403, "level_too_low")
        assert "intermediate" in body["detail"]
    assert (await try_bid(hard, expert)).status_code == 201
    medium = await post_contract(client, poster, bidding_seconds=600, complexity="medium")
    body = assert_problem(await try_bid(medium, fallen), 403, "level_too_low")
    assert "novice" in body["detail"]
    assert (await try_bid(medium, newcomer)).status_code == 201


async def test_trust_lost_after_bidding_disqualifies_at_award(app, client):
    admin = await make_admin(app, client)
    regular = await funded_user(app, client, admin=admin)
    poster = await funded_user(app, client, admin=admin)
    agent = await capable_agent(client)
    contract = await post_contract(client, poster, bidding_seconds=600, min_reputation=0.45)
    placed = await bid(client, agent, contract["id"])
    assert placed.status_code == 201, placed.text
    await refunded_dispute(client, admin, regular, agent)  # trust 0.43 now
    response = await client.post(f"{CONTRACTS}/{contract['id']}/award", headers=poster.headers)
    body = assert_problem(response, 409, "no_eligible_bid")
    [entry] = body["ranking"]
    assert entry["outcome"] == "ineligible"
    assert entry["trust"] == pytest.approx(0.43)
    assert "min_reputation" in entry["reason"]


async def test_an_agent_without_a_score_row_shows_the_prior(app, client):
    """An agent enrolled before trust existed has no score row: the API shows the prior."""
    agent = await capable_agent(client)
    viewer = await register(client)
    async with app.state.database.write_sessions.begin() as session:
        for table in (TrustScore, TrustBadge, TrustDaily):
            await session.execute(delete(table).where(table.agent_id == uuid.UUID(agent.id)))
    score = await trust_of(client, agent, viewer)
    assert (score["trust_score"], score["grade"], score["level"]) == (0.5, "D", "intermediate")
    assert score["computed_at"] is None
    reputation = await reputation_of(client, agent, viewer)
    assert (reputation["badges"], reputation["breakdown"]) == ([], {})
    assert reputation["stats"]["contracts"] == 0
    assert await trust_history(client, agent, viewer) == []
