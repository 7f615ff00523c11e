"""Ratings through the API: who may rate which contract, once, how an edit recomputes trust,
the edit window, and that every refusal leaves the ratings and the scores untouched.

Expected scores, one outcome delivered on time with validation score 1.0 and a day-0 agent
(uptime 0): raw = 0.4 + 0.2 + 0.2 * rating_score + 0.1, published = (raw + 1.5) / 4. So no
rating (neutral 0.6) gives 0.58, 5 stars 0.6, 3 stars 0.58 and 1 star 0.56.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from hermes_hub.kit.time import utcnow
from hermes_hub.mesh.models import AgentMetric, Contract
from hermes_hub.trust.models import Rating, TrustScore
from tests.factories import TestAgent, TestUser, assert_problem, register
from tests.ledger.helpers import make_admin
from tests.mesh.helpers import CONTRACTS, bid, capable_agent, funded_user, post_contract
from tests.trust.helpers import finish_contract, reputation_of, trust_of

AGENTS = "/api/v1/agents"


# ---- helpers ----


@dataclass
class Deal:
    admin: TestUser
    requester: TestUser
    owner: TestUser
    agent: TestAgent
    contract: dict[str, Any]

    @property
    def contract_id(self) -> str:
        return str(self.contract["id"])


async def settled_deal(
    app: FastAPI, client: httpx.AsyncClient, *, rating: int | None = None
) -> Deal:
    """A requester's contract, settled at validation score 1.0 with an agent of another owner."""
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, credits=100, admin=admin)
    owner = await register(client)
    agent = await capable_agent(client, owner)
    contract = await finish_contract(client, requester, agent, score=1.0, rating=rating)
    assert contract["status"] == "settled"
    return Deal(admin, requester, owner, agent, contract)


async def rate(
    client: httpx.AsyncClient, agent: TestAgent | str, rater: Any, /, **body: Any
) -> httpx.Response:
    agent_id = agent if isinstance(agent, str) else agent.id
    return await client.post(f"{AGENTS}/{agent_id}/rate", json=body, headers=rater.headers)


async def edit(
    client: httpx.AsyncClient, agent: TestAgent, contract_id: str, rater: Any, /, **body: Any
) -> httpx.Response:
    return await client.put(
        f"{AGENTS}/{agent.id}/ratings/{contract_id}", json=body, headers=rater.headers
    )


async def ratings_rows(app: FastAPI) -> list[Rating]:
    async with app.state.database.read_sessions() as session:
        return list((await session.scalars(select(Rating).order_by(Rating.created_at))).all())


def _columns(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


async def snapshot(app: FastAPI) -> dict[str, Any]:
    """Everything a rating writes: the ratings, every score row, and the ratings copied onto
    contracts and metrics."""
    async with app.state.database.read_sessions() as session:
        ratings = [_columns(r) for r in (await session.scalars(select(Rating))).all()]
        scores = [_columns(s) for s in (await session.scalars(select(TrustScore))).all()]
        contracts = dict((await session.execute(select(Contract.id, Contract.rating))).all())
        metrics = dict(
            (await session.execute(select(AgentMetric.contract_id, AgentMetric.rating))).all()
        )
    return {
        "ratings": sorted(ratings, key=lambda r: str(r["id"])),
        "scores": sorted(scores, key=lambda s: str(s["agent_id"])),
        "contracts": contracts,
        "metrics": metrics,
    }


async def history_ratings(client: httpx.AsyncClient, deal: Deal) -> list[int | None]:
    response = await client.get(f"{AGENTS}/{deal.agent.id}/history", headers=deal.owner.headers)
    assert response.status_code == 200, response.text
    return [item["rating"] for item in response.json()["items"]]


def component(reputation: dict[str, Any], name: str) -> dict[str, Any]:
    components = reputation["breakdown"]["components"]
    found: dict[str, Any] = next(c for c in components if c["name"] == name)
    return found


async def funded_agent_requester(
    app: FastAPI, client: httpx.AsyncClient, admin: TestUser
) -> tuple[TestUser, TestAgent]:
    """An agent with 50 credits in its own wallet, able to post contracts with its key."""
    owner = await funded_user(app, client, credits=100, admin=admin)
    requester = await capable_agent(client, owner, capabilities=["plan"])
    moved = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 50, "destination": f"agent:{requester.id}"},
        headers=owner.headers,
    )
    assert moved.status_code in (200, 201), moved.text
    return owner, requester


# ---- rating a settled contract ----


@pytest.mark.parametrize(("stars", "expected"), [(5, 0.6), (3, 0.58), (1, 0.56)])
async def test_the_requester_rates_a_settled_contract(app, client, stars, expected):
    deal = await settled_deal(app, client)
    before = await trust_of(client, deal.agent, deal.requester)
    assert before["trust_score"] == pytest.approx(0.58)
    assert await ratings_rows(app) == []

    response = await rate(
        client,
        deal.agent,
        deal.requester,
        contract_id=deal.contract_id,
        stars=stars,
        quality=4,
        speed=5,
        communication=3,
        comment="clear and quick",
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["contract_id"] == deal.contract_id
    assert body["agent_id"] == deal.agent.id
    assert (body["stars"], body["quality"], body["speed"], body["communication"]) == (
        stars,
        4,
        5,
        3,
    )
    assert body["comment"] == "clear and quick"

    [row] = await ratings_rows(app)
    assert row.stars == stars
    assert str(row.rater_owner_id) == deal.requester.id
    assert row.rater_ref == f"user:{deal.requester.id}"
    assert row.editable_until - row.created_at == timedelta(days=7)

    after = await trust_of(client, deal.agent, deal.requester)
    assert after["trust_score"] == pytest.approx(expected)
    assert after["computed_at"] > before["computed_at"]
    reputation = await reputation_of(client, deal.agent, deal.requester)
    rating_component = component(reputation, "rating_score")
    assert rating_component["value"] == pytest.approx(stars / 5)
    assert rating_component["inputs"]["ratings"] == 1
    assert rating_component["inputs"]["mean_stars"] == stars
    assert rating_component["inputs"]["neutral"] is False
    assert reputation["stats"]["rating_count"] == 1
    assert reputation["stats"]["mean_rating"] == stars
    assert await history_ratings(client, deal) == [stars]


async def test_a_contract_is_rated_once(app, client):
    deal = await settled_deal(app, client)
    first = await rate(client, deal.agent, deal.requester, contract_id=deal.contract_id, stars=5)
    assert first.status_code == 201, first.text
    before = await snapshot(app)

    again = await rate(client, deal.agent, deal.requester, contract_id=deal.contract_id, stars=1)
    body = assert_problem(again, 409, "already_rated")
    assert "PUT" in body["detail"]
    assert await snapshot(app) == before
    assert (await trust_of(client, deal.agent, deal.requester))["trust_score"] == pytest.approx(0.6)


async def test_a_rating_given_at_settlement_cannot_be_given_again(app, client):
    deal = await settled_deal(app, client, rating=4)
    [row] = await ratings_rows(app)
    assert (row.stars, str(row.contract_id)) == (4, deal.contract_id)
    assert row.rater_ref == f"user:{deal.requester.id}"
    assert row.editable_until - row.created_at == timedelta(days=7)
    # 4 stars: rating_score 0.8, raw 0.86, published 0.59.
    assert (await trust_of(client, deal.agent, deal.requester))["trust_score"] == pytest.approx(
        0.59
    )
    before = await snapshot(app)

    again = await rate(client, deal.agent, deal.requester, contract_id=deal.contract_id, stars=5)
    assert_problem(again, 409, "already_rated")
    assert await snapshot(app) == before

    # The settlement's rating is edited like any other.
    edited = await edit(client, deal.agent, deal.contract_id, deal.requester, stars=5)
    assert edited.status_code == 200, edited.text
    assert (await trust_of(client, deal.agent, deal.requester))["trust_score"] == pytest.approx(0.6)


# ---- editing ----


async def test_an_edit_replaces_the_rating_and_recomputes(app, client):
    deal = await settled_deal(app, client)
    created = await rate(
        client,
        deal.agent,
        deal.requester,
        contract_id=deal.contract_id,
        stars=5,
        quality=5,
        comment="great",
    )
    assert created.status_code == 201, created.text
    assert (await trust_of(client, deal.agent, deal.requester))["trust_score"] == pytest.approx(0.6)

    response = await edit(client, deal.agent, deal.contract_id, deal.requester, stars=1, speed=2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == created.json()["id"]
    # A PUT replaces the whole rating: fields left out are cleared.
    assert (body["stars"], body["quality"], body["speed"], body["comment"]) == (1, None, 2, None)
    assert body["editable_until"] == created.json()["editable_until"]
    assert body["updated_at"] > body["created_at"]

    [row] = await ratings_rows(app)
    assert (row.stars, row.quality, row.speed, row.comment) == (1, None, 2, None)
    assert (await trust_of(client, deal.agent, deal.requester))["trust_score"] == pytest.approx(
        0.56
    )
    reputation = await reputation_of(client, deal.agent, deal.requester)
    assert reputation["stats"]["mean_rating"] == 1
    assert reputation["stats"]["rating_count"] == 1
    assert component(reputation, "rating_score")["value"] == pytest.approx(0.2)
    assert await history_ratings(client, deal) == [1]
    contract = await client.get(f"{CONTRACTS}/{deal.contract_id}", headers=deal.requester.headers)
    assert contract.json()["rating"] == 1


async def test_editing_a_contract_without_a_rating_is_a_404(app, client):
    deal = await settled_deal(app, client)
    before = await snapshot(app)
    response = await edit(client, deal.agent, deal.contract_id, deal.requester, stars=4)
    assert_problem(response, 404, "rating_not_found")
    assert await snapshot(app) == before


async def test_only_the_rater_edits(app, client):
    deal = await settled_deal(app, client, rating=5)
    before = await snapshot(app)
    for stranger in (await register(client), deal.owner, deal.agent, deal.admin):
        response = await edit(client, deal.agent, deal.contract_id, stranger, stars=1)
        assert_problem(response, 404, "contract_not_found")
    assert await snapshot(app) == before


@pytest.mark.parametrize("settings_overrides", [{"trust_rating_edit_days": 0}])
async def test_no_edit_window_means_no_edit(app, client):
    deal = await settled_deal(app, client)
    created = await rate(client, deal.agent, deal.requester, contract_id=deal.contract_id, stars=5)
    assert created.status_code == 201, created.text
    assert created.json()["editable_until"] == created.json()["created_at"]
    before = await snapshot(app)

    response = await edit(client, deal.agent, deal.contract_id, deal.requester, stars=1)
    body = assert_problem(response, 409, "rating_edit_window_closed")
    assert "0 days" in body["detail"]
    assert await snapshot(app) == before


async def test_the_edit_window_closes_after_its_days(app, client):
    deal = await settled_deal(app, client)
    created = await rate(client, deal.agent, deal.requester, contract_id=deal.contract_id, stars=5)
    assert created.status_code == 201, created.text

    async def window_ends(moment: Any) -> None:
        async with app.state.database.write_sessions.begin() as session:
            await session.execute(
                update(Rating)
                .where(Rating.contract_id == uuid.UUID(deal.contract_id))
                .values(editable_until=moment)
            )

    # Still open a minute before the end.
    await window_ends(utcnow() + timedelta(minutes=1))
    opened = await edit(client, deal.agent, deal.contract_id, deal.requester, stars=4)
    assert opened.status_code == 200, opened.text

    await window_ends(utcnow() - timedelta(seconds=1))
    before = await snapshot(app)
    closed = await edit(client, deal.agent, deal.contract_id, deal.requester, stars=1)
    body = assert_problem(closed, 409, "rating_edit_window_closed")
    assert "7 days" in body["detail"]
    assert await snapshot(app) == before
    [row] = await ratings_rows(app)
    assert row.stars == 4


# ---- bad input ----

BAD_STARS: list[Any] = [
    0,
    6,
    -1,
    2.5,
    True,
    None,
    [5],
    {"stars": 5},
    "5",
    5.0,
]


@pytest.mark.parametrize("stars", BAD_STARS)
async def test_stars_out_of_range_or_not_an_integer_are_refused(app, client, stars):
    deal = await settled_deal(app, client)
    before = await snapshot(app)
    created = await rate(
        client, deal.agent, deal.requester, contract_id=deal.contract_id, stars=stars
    )
    body = assert_problem(created, 422, "validation_error")
    assert any(error["loc"][-1] == "stars" for error in body["errors"]), body
    assert await snapshot(app) == before


@pytest.mark.parametrize("stars", BAD_STARS)
async def test_an_edit_with_bad_stars_is_refused(app, client, stars):
    deal = await settled_deal(app, client, rating=3)
    before = await snapshot(app)
    response = await edit(client, deal.agent, deal.contract_id, deal.requester, stars=stars)
    assert_problem(response, 422, "validation_error")
    assert await snapshot(app) == before


@pytest.mark.parametrize(
    "fields",
    [
        {},  # no stars
        {"stars": 5, "quality": 0},
        {"stars": 5, "speed": 6},
        {"stars": 5, "communication": False},
        {"stars": 5, "quality": 4.5},
        {"stars": 5, "comment": "x" * 5001},
        {"stars": 5, "comment": "nul \x00 byte"},
        {"stars": 5, "weight": 10},  # unknown field
        {"stars": 5, "rater": "someone-else"},  # unknown field
    ],
)
async def test_other_bad_rating_bodies_are_refused(app, client, fields):
    deal = await settled_deal(app, client)
    before = await snapshot(app)
    created = await rate(client, deal.agent, deal.requester, contract_id=deal.contract_id, **fields)
    assert_problem(created, 422, "validation_error")
    edited = await edit(client, deal.agent, deal.contract_id, deal.requester, **fields)
    assert_problem(edited, 422, "validation_error")
    assert await snapshot(app) == before


@pytest.mark.parametrize("contract_id", [None, "not-a-uuid", 12, ""])
async def test_a_bad_contract_id_is_refused(app, client, contract_id):
    deal = await settled_deal(app, client)
    before = await snapshot(app)
    body: dict[str, Any] = {"stars": 5}
    if contract_id is not None:
        body["contract_id"] = contract_id
    assert_problem(await rate(client, deal.agent, deal.requester, **body), 422, "validation_error")
    assert await snapshot(app) == before


async def test_a_settle_rating_must_be_an_integer_star_count(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, bidding_seconds=600)
    url = f"{CONTRACTS}/{contract['id']}"
    assert (await bid(client, agent, contract["id"], eta_seconds=600)).status_code == 201
    assert (await client.post(f"{url}/award", headers=requester.headers)).status_code == 200
    delivered = await client.post(f"{url}/deliver", json={"data": {"s": 1}}, headers=agent.headers)
    assert delivered.status_code == 200, delivered.text
    for rating in (0, 6, 2.5, True):
        response = await client.post(
            f"{url}/settle",
            json={"validation_score": 1.0, "rating": rating},
            headers=requester.headers,
        )
        assert_problem(response, 422, "validation_error")
    assert await ratings_rows(app) == []


async def test_a_settle_rating_as_a_string_is_refused(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, bidding_seconds=600)
    url = f"{CONTRACTS}/{contract['id']}"
    assert (await bid(client, agent, contract["id"], eta_seconds=600)).status_code == 201
    assert (await client.post(f"{url}/award", headers=requester.headers)).status_code == 200
    delivered = await client.post(f"{url}/deliver", json={"data": {"s": 1}}, headers=agent.headers)
    assert delivered.status_code == 200, delivered.text
    response = await client.post(
        f"{url}/settle", json={"validation_score": 1.0, "rating": "5"}, headers=requester.headers
    )
    assert_problem(response, 422, "validation_error")


# ---- which contract ----


@pytest.mark.parametrize("stage", ["awarded", "delivered", "disputed"])
async def test_only_a_settled_contract_is_rated(app, client, stage):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, bidding_seconds=600)
    url = f"{CONTRACTS}/{contract['id']}"
    assert (await bid(client, agent, contract["id"], eta_seconds=600)).status_code == 201
    assert (await client.post(f"{url}/award", headers=requester.headers)).status_code == 200
    if stage != "awarded":
        delivered = await client.post(
            f"{url}/deliver", json={"data": {"s": 1}}, headers=agent.headers
        )
        assert delivered.status_code == 200, delivered.text
    if stage == "disputed":
        disputed = await client.post(
            f"{url}/settle", json={"validation_score": 0.2}, headers=requester.headers
        )
        assert disputed.json()["status"] == "disputed", disputed.text
    before = await snapshot(app)
    response = await rate(client, agent, requester, contract_id=contract["id"], stars=5)
    body = assert_problem(response, 409, "contract_not_settled")
    assert stage in body["detail"]
    assert await snapshot(app) == before


async def test_someone_elses_contract_is_not_found(app, client):
    deal = await settled_deal(app, client)
    other_requester = await funded_user(app, client, admin=deal.admin)
    strangers: list[Any] = [
        await register(client),  # another user
        other_requester,  # another requester
        deal.agent,  # the agent itself
        deal.owner,  # the agent's owner
        deal.admin,  # not even an admin rates for the requester
        await capable_agent(client),  # another agent
    ]
    before = await snapshot(app)
    for stranger in strangers:
        response = await rate(client, deal.agent, stranger, contract_id=deal.contract_id, stars=5)
        assert_problem(response, 404, "contract_not_found")
    assert await snapshot(app) == before


async def test_an_unknown_contract_is_not_found(app, client):
    deal = await settled_deal(app, client)
    before = await snapshot(app)
    response = await rate(
        client, deal.agent, deal.requester, contract_id=str(uuid.uuid4()), stars=5
    )
    assert_problem(response, 404, "contract_not_found")
    response = await edit(client, deal.agent, str(uuid.uuid4()), deal.requester, stars=5)
    assert_problem(response, 404, "contract_not_found")
    assert await snapshot(app) == before


async def test_a_contract_of_another_agent_is_a_mismatch(app, client):
    deal = await settled_deal(app, client, rating=5)
    other = await capable_agent(client)
    await finish_contract(client, deal.requester, other, score=1.0)
    before = await snapshot(app)
    # The requester's own settled contract, but delivered by deal.agent, not by `other`.
    response = await rate(client, other, deal.requester, contract_id=deal.contract_id, stars=1)
    assert_problem(response, 422, "contract_agent_mismatch")
    response = await edit(client, other, deal.contract_id, deal.requester, stars=1)
    assert_problem(response, 422, "contract_agent_mismatch")
    # An agent id that does not exist at all.
    response = await rate(
        client, str(uuid.uuid4()), deal.requester, contract_id=deal.contract_id, stars=1
    )
    assert_problem(response, 422, "contract_agent_mismatch")
    assert await snapshot(app) == before


async def test_an_agent_requester_rates_and_edits(app, client):
    admin = await make_admin(app, client)
    owner, requester = await funded_agent_requester(app, client, admin)
    worker = await capable_agent(client)
    contract = await finish_contract(client, requester, worker, score=1.0)
    assert contract["status"] == "settled"
    assert (await trust_of(client, worker, requester))["trust_score"] == pytest.approx(0.58)

    # Its owner did not request the contract: the agent did.
    by_owner = await rate(client, worker, owner, contract_id=contract["id"], stars=5)
    assert_problem(by_owner, 404, "contract_not_found")

    response = await rate(client, worker, requester, contract_id=contract["id"], stars=5)
    assert response.status_code == 201, response.text
    [row] = await ratings_rows(app)
    assert row.rater_ref == f"agent:{requester.id}"
    assert str(row.rater_owner_id) == owner.id
    assert (await trust_of(client, worker, requester))["trust_score"] == pytest.approx(0.6)

    edited = await edit(client, worker, contract["id"], requester, stars=1)
    assert edited.status_code == 200, edited.text
    assert (await trust_of(client, worker, requester))["trust_score"] == pytest.approx(0.56)
    assert_problem(
        await rate(client, worker, requester, contract_id=contract["id"], stars=5),
        409,
        "already_rated",
    )


async def test_an_agent_requester_rates_at_settlement(app, client):
    admin = await make_admin(app, client)
    owner, requester = await funded_agent_requester(app, client, admin)
    worker = await capable_agent(client)
    await finish_contract(client, requester, worker, score=1.0, rating=5)
    [row] = await ratings_rows(app)
    assert (row.stars, row.rater_ref) == (5, f"agent:{requester.id}")
    assert str(row.rater_owner_id) == owner.id
    assert (await trust_of(client, worker, owner))["trust_score"] == pytest.approx(0.6)


async def test_a_rating_sent_with_a_rejected_delivery_is_not_a_rating(app, client):
    """Rejecting a delivery opens a dispute; a rating sent with it is not recorded, and the
    requester may rate once the dispute is ruled on."""
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    owner = await register(client)
    agent = await capable_agent(client, owner)
    disputed = await finish_contract(client, requester, agent, score=0.3, rating=1)
    assert disputed["status"] == "disputed"
    assert await ratings_rows(app) == []
    resolved = await client.post(
        f"{CONTRACTS}/{disputed['id']}/dispute/resolve",
        json={"outcome": "pay_agent"},
        headers=admin.headers,
    )
    assert resolved.status_code == 200, resolved.text
    deal = Deal(admin, requester, owner, agent, disputed)
    assert await history_ratings(client, deal) == [None]
    assert (await reputation_of(client, agent, requester))["stats"]["rating_count"] == 0
    assert (await trust_of(client, agent, requester))["trust_score"] == pytest.approx(0.58)

    rated = await rate(client, agent, requester, contract_id=disputed["id"], stars=1)
    assert rated.status_code == 201, rated.text
    assert await history_ratings(client, deal) == [1]
    assert (await reputation_of(client, agent, requester))["stats"]["rating_count"] == 1
    assert (await trust_of(client, agent, requester))["trust_score"] == pytest.approx(0.56)
