"""Delivery, validation, settlement by score tiers, metrics, disputes and the events they write."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from hermes_hub.events.models import Event
from hermes_hub.kit.time import utcnow
from hermes_hub.ledger.models import Hold
from hermes_hub.mesh.models import AgentMetric, Contract
from tests.factories import TestAgent, TestUser, assert_problem, enroll, register
from tests.ledger.helpers import make_admin, wallet
from tests.mesh.helpers import CONTRACTS, bid, capable_agent, funded_user, post_contract

SUMMARY_SCHEMA = {
    "type": "object",
    "required": ["summary"],
    "properties": {"summary": {"type": "string", "minLength": 1}},
    "additionalProperties": False,
}


@dataclass
class Deal:
    admin: TestUser
    requester: TestUser
    agent: TestAgent
    contract: dict[str, Any]
    rivals: list[TestAgent]

    @property
    def url(self) -> str:
        return f"{CONTRACTS}/{self.contract['id']}"


async def awarded_deal(
    app: FastAPI,
    client: httpx.AsyncClient,
    *,
    admin: TestUser | None = None,
    price: Any = 10,
    eta: int = 30,
    rivals: int = 0,
    **fields: Any,
) -> Deal:
    """A 100-credit requester whose 10-credit contract is awarded to one agent at ``price``
    (``rivals`` more agents bid and lose)."""
    admin = admin or await make_admin(app, client)
    requester = await funded_user(app, client, credits=100, admin=admin)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, reward=10, bidding_seconds=600, **fields)
    placed = await bid(client, agent, contract["id"], price=price, eta_seconds=eta, confidence=0.9)
    assert placed.status_code == 201, placed.text
    losers = [await capable_agent(client) for _ in range(rivals)]
    for loser in losers:
        lost = await bid(client, loser, contract["id"], price=10, eta_seconds=600, confidence=0.1)
        assert lost.status_code == 201, lost.text
    award = await client.post(f"{CONTRACTS}/{contract['id']}/award", headers=requester.headers)
    assert award.status_code == 200, award.text
    assert award.json()["contract"]["awarded_agent_id"] == agent.id
    return Deal(admin, requester, agent, award.json()["contract"], losers)


async def deliver(client: httpx.AsyncClient, deal: Deal, data: Any = None) -> httpx.Response:
    body = {"data": data if data is not None else {"summary": "short and right"}}
    return await client.post(f"{deal.url}/deliver", json=body, headers=deal.agent.headers)


async def delivered_deal(app: FastAPI, client: httpx.AsyncClient, **fields: Any) -> Deal:
    deal = await awarded_deal(app, client, **fields)
    response = await deliver(client, deal)
    assert response.status_code == 200, response.text
    deal.contract = response.json()
    return deal


async def settle(
    client: httpx.AsyncClient, deal: Deal, principal: Any = None, **body: Any
) -> httpx.Response:
    return await client.post(
        f"{deal.url}/settle",
        json={"validation_score": 1.0, **body},
        headers=(principal or deal.requester).headers,
    )


async def resolve(
    client: httpx.AsyncClient, deal: Deal, principal: Any = None, **body: Any
) -> httpx.Response:
    return await client.post(
        f"{deal.url}/dispute/resolve", json=body, headers=(principal or deal.admin).headers
    )


async def metrics_of(app: FastAPI, contract_id: str) -> list[AgentMetric]:
    async with app.state.database.read_sessions() as session:
        rows = await session.scalars(
            select(AgentMetric).where(AgentMetric.contract_id == uuid.UUID(contract_id))
        )
        return list(rows.all())


async def hold_of(app: FastAPI, contract_id: str) -> Hold:
    async with app.state.database.read_sessions() as session:
        hold = await session.scalar(select(Hold).where(Hold.contract_id == uuid.UUID(contract_id)))
    assert hold is not None
    return hold


async def events_of(app: FastAPI, type_: str, contract_id: str | None = None) -> list[Event]:
    async with app.state.database.read_sessions() as session:
        rows = (await session.scalars(select(Event).where(Event.type == type_))).all()
    return [row for row in rows if contract_id is None or row.data["contract_id"] == contract_id]


async def types_for(app: FastAPI, recipient: str) -> list[str]:
    async with app.state.database.read_sessions() as session:
        rows = await session.scalars(
            select(Event.type).where(Event.recipient == recipient).order_by(Event.id)
        )
        return list(rows.all())


def recipients(rows: list[Event]) -> list[str]:
    return sorted(row.recipient for row in rows)


def agent_ref(agent: TestAgent) -> str:
    return f"agent:{agent.id}"


def user_ref(user: TestUser) -> str:
    return f"user:{user.id}"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ---- delivery ----


async def test_only_the_awarded_agent_delivers_and_only_once(app, client):
    deal = await awarded_deal(app, client)
    stranger = await capable_agent(client)

    assert_problem(
        await client.post(
            f"{deal.url}/deliver", json={"data": {"summary": "x"}}, headers=stranger.headers
        ),
        403,
        "not_awarded_agent",
    )
    assert_problem(
        await client.post(
            f"{deal.url}/deliver", json={"data": {"summary": "x"}}, headers=deal.requester.headers
        ),
        403,
        "agent_required",
    )
    current = await client.get(deal.url, headers=deal.requester.headers)
    assert current.json()["status"] == "awarded"
    assert current.json()["delivery"] is None

    first = await deliver(client, deal, {"summary": "first"})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "delivered"
    assert first.json()["delivery"] == {"data": {"summary": "first"}}

    again = await deliver(client, deal, {"summary": "second"})
    assert_problem(again, 409, "not_deliverable")
    after = await client.get(deal.url, headers=deal.requester.headers)
    assert after.json()["delivery"] == {"data": {"summary": "first"}}


async def test_delivery_after_the_deadline_is_refused(app, client):
    deal = await awarded_deal(app, client)
    async with app.state.database.write_sessions.begin() as session:
        contract = await session.get(Contract, uuid.UUID(deal.contract["id"]))
        assert contract is not None
        contract.deadline_at = utcnow() - timedelta(seconds=5)

    assert_problem(await deliver(client, deal), 409, "deadline_passed")
    current = await client.get(deal.url, headers=deal.requester.headers)
    assert current.json()["status"] == "awarded"
    assert current.json()["delivery"] is None
    assert await events_of(app, "contract.delivered") == []


async def test_valid_delivery_against_output_schema_scores_one(app, client):
    deal = await awarded_deal(app, client, output_schema=SUMMARY_SCHEMA)
    response = await deliver(client, deal, {"summary": "all good"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["auto_validation_score"] == 1.0
    assert body["validation_errors"] == []
    seen = await client.get(deal.url, headers=deal.requester.headers)
    assert seen.json()["auto_validation_score"] == 1.0
    assert seen.json()["validation_errors"] == []


async def test_invalid_delivery_against_output_schema_scores_zero_with_readable_errors(app, client):
    deal = await awarded_deal(app, client, output_schema=SUMMARY_SCHEMA)
    response = await deliver(client, deal, {"summary": 42, "extra": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "delivered"
    assert body["auto_validation_score"] == 0.0
    errors = body["validation_errors"]
    assert len(errors) == 2, errors
    joined = " | ".join(errors)
    assert "summary: 42 is not of type 'string'" in joined
    assert "extra" in joined
    # The requester reads the same verdict, and the event carries it.
    seen = (await client.get(deal.url, headers=deal.requester.headers)).json()
    assert seen["auto_validation_score"] == 0.0
    assert seen["validation_errors"] == errors
    delivered = await events_of(app, "contract.delivered", deal.contract["id"])
    assert recipients(delivered) == sorted([user_ref(deal.requester), agent_ref(deal.agent)])
    event = delivered[0]
    assert event.data["auto_validation_score"] == 0.0
    assert event.data["validation_errors"] == errors


# ---- settlement ----


async def test_only_the_requester_settles_after_delivery_and_only_once(app, client):
    deal = await awarded_deal(app, client, rivals=1)
    [losing_bidder] = deal.rivals
    stranger_user, stranger_agent = await register(client), await capable_agent(client)

    assert_problem(await settle(client, deal), 409, "not_settleable")
    assert_problem(await settle(client, deal, validation_score=0.2), 409, "not_settleable")

    assert (await deliver(client, deal)).status_code == 200
    # Parties that can see the contract are told they are not the requester; a stranger
    # who cannot see it is told it does not exist.
    for party in (deal.agent, losing_bidder):
        assert_problem(await settle(client, deal, principal=party), 403, "not_requester")
    for stranger in (stranger_user, stranger_agent):
        assert_problem(await settle(client, deal, principal=stranger), 404, "contract_not_found")
    assert (await wallet(client, deal.agent))["available_units"] == 0

    first = await settle(client, deal, validation_score=1.0)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "settled"
    assert_problem(await settle(client, deal, validation_score=1.0), 409, "already_settled")
    assert_problem(await settle(client, deal, validation_score=0.3), 409, "already_settled")
    assert (await wallet(client, deal.agent))["available_units"] == 900
    assert len(await metrics_of(app, deal.contract["id"])) == 1


@dataclass(frozen=True)
class Tier:
    score: float
    released: int
    fee: int
    agent_share: int


# A 10-credit hold (1000 units) and the default 10% platform fee.
TIERS = [
    Tier(1.0, released=1000, fee=100, agent_share=900),
    Tier(0.95, released=1000, fee=100, agent_share=900),
    Tier(0.85, released=900, fee=90, agent_share=810),
    Tier(0.8, released=900, fee=90, agent_share=810),
    Tier(0.7, released=700, fee=70, agent_share=630),
    Tier(0.6, released=700, fee=70, agent_share=630),
]


async def assert_settled_exactly(
    app: FastAPI, client: httpx.AsyncClient, deal: Deal, tier: Tier, hold: int
) -> None:
    refunded = hold - tier.released
    response = await settle(client, deal, validation_score=tier.score, rating=4, comment="fine")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "settled", tier
    assert body["validation_score"] == tier.score
    assert body["rating"] == 4
    assert body["comment"] == "fine"
    assert body["settlement"]["units"] == {
        "held": hold,
        "released": tier.released,
        "refunded": refunded,
        "agent_share": tier.agent_share,
        "platform_fee": tier.fee,
        "org_share": 0,
    }, tier
    assert body["settlement"]["held"] == hold / 100
    assert body["settlement"]["released"] == tier.released / 100
    assert body["settlement"]["refunded"] == refunded / 100
    assert body["settlement"]["agent_share"] == tier.agent_share / 100
    assert body["settlement"]["platform_fee"] == tier.fee / 100

    requester = await wallet(client, deal.requester)
    assert requester["held_units"] == 0, tier
    assert requester["available_units"] == 10_000 - tier.released, tier
    assert (await wallet(client, deal.agent))["available_units"] == tier.agent_share, tier
    settled_hold = await hold_of(app, deal.contract["id"])
    assert settled_hold.status == "released"
    assert settled_hold.platform_fee == tier.fee
    assert settled_hold.refunded == refunded


async def test_settlement_releases_by_score_tier_with_exact_money(app, client):
    admin = await make_admin(app, client)
    for tier in TIERS:
        deal = await delivered_deal(app, client, admin=admin, price=10)
        assert (await wallet(client, deal.requester))["held_units"] == 1000
        await assert_settled_exactly(app, client, deal, tier, hold=1000)


async def test_settlement_rounding_never_favours_the_hub(app, client):
    # A 3.33-credit price: 90% of 333 units is 299.7 -> 299 released (34 back to the
    # requester); the fee 29.9 -> 29; the agent gets the remaining 270.
    deal = await delivered_deal(app, client, price="3.33")
    assert (await hold_of(app, deal.contract["id"])).amount == 333
    await assert_settled_exactly(
        app, client, deal, Tier(0.85, released=299, fee=29, agent_share=270), hold=333
    )


async def test_settlement_records_the_agent_metric_and_rating(app, client):
    deal = await delivered_deal(app, client, eta=45)
    response = await settle(client, deal, validation_score=0.85, rating=3)
    assert response.status_code == 200, response.text
    contract = response.json()
    assert contract["rating"] == 3

    [metric] = await metrics_of(app, deal.contract["id"])
    expected = parse_time(contract["delivered_at"]) - parse_time(contract["awarded_at"])
    assert str(metric.agent_id) == deal.agent.id
    assert metric.outcome == "settled"
    assert metric.execution_seconds == pytest.approx(expected.total_seconds(), abs=1e-3)
    assert metric.execution_seconds >= 0
    assert metric.promised_seconds == 45
    assert metric.success is True
    assert metric.on_time is True
    assert metric.validation_score == 0.85
    assert metric.rating == 3


async def test_settled_late_delivery_is_not_on_time(app, client):
    deal = await awarded_deal(app, client, eta=30)
    # Pretend the award happened two minutes ago: the 30 s promise is broken.
    async with app.state.database.write_sessions.begin() as session:
        contract = await session.get(Contract, uuid.UUID(deal.contract["id"]))
        assert contract is not None
        assert contract.awarded_at is not None
        contract.awarded_at = contract.awarded_at - timedelta(seconds=120)
    assert (await deliver(client, deal)).status_code == 200
    assert (await settle(client, deal, validation_score=1.0)).status_code == 200

    [metric] = await metrics_of(app, deal.contract["id"])
    assert metric.execution_seconds is not None
    assert metric.execution_seconds >= 120
    assert metric.promised_seconds == 30
    assert metric.success is True
    assert metric.on_time is False


# ---- disputes ----


async def test_low_score_opens_a_dispute_and_moves_no_money(app, client):
    deal = await delivered_deal(app, client)
    response = await settle(client, deal, validation_score=0.4, comment="wrong language")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "disputed"
    assert body["validation_score"] == 0.4
    assert body["settlement"] is None
    assert body["dispute"]["opened_at"] is not None
    assert body["dispute"]["resolution"] is None

    hold = await hold_of(app, deal.contract["id"])
    assert hold.status == "held"
    assert hold.amount == 1000
    requester = await wallet(client, deal.requester)
    assert requester["held_units"] == 1000
    assert requester["available_units"] == 9000
    assert (await wallet(client, deal.agent))["available_units"] == 0
    assert await metrics_of(app, deal.contract["id"]) == []

    disputed = await events_of(app, "contract.disputed", deal.contract["id"])
    assert recipients(disputed) == sorted([user_ref(deal.requester), agent_ref(deal.agent)])
    assert all(row.data["validation_score"] == 0.4 for row in disputed)
    assert all(row.data["comment"] == "wrong language" for row in disputed)
    assert await events_of(app, "contract.settled", deal.contract["id"]) == []


async def test_only_the_delivering_agent_responds_to_a_dispute(app, client):
    deal = await delivered_deal(app, client)
    respond = f"{deal.url}/dispute/respond"
    answer = {"statement": "The summary is in the language asked for.", "evidence": {"lang": "en"}}

    assert_problem(
        await client.post(respond, json=answer, headers=deal.agent.headers), 409, "not_disputed"
    )
    assert (await settle(client, deal, validation_score=0.4)).status_code == 200

    stranger = await capable_agent(client)
    assert_problem(
        await client.post(respond, json=answer, headers=stranger.headers), 403, "not_awarded_agent"
    )
    assert_problem(
        await client.post(respond, json=answer, headers=deal.requester.headers),
        403,
        "agent_required",
    )
    response = await client.post(respond, json=answer, headers=deal.agent.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "disputed"
    assert body["dispute"]["response"] == answer
    assert body["dispute"]["responded_at"] is not None
    seen = (await client.get(deal.url, headers=deal.requester.headers)).json()
    assert seen["dispute"]["response"] == answer

    [event] = await events_of(app, "contract.dispute_response", deal.contract["id"])
    assert event.recipient == user_ref(deal.requester)
    assert event.data["statement"] == answer["statement"]


async def test_only_an_admin_resolves_a_dispute(app, client):
    deal = await delivered_deal(app, client)
    assert_problem(await resolve(client, deal, outcome="refund"), 409, "not_disputed")
    assert (await settle(client, deal, validation_score=0.4)).status_code == 200

    assert_problem(
        await resolve(client, deal, principal=deal.requester, outcome="refund"),
        403,
        "admin_required",
    )
    assert_problem(
        await resolve(client, deal, principal=await register(client), outcome="pay_agent"),
        403,
        "admin_required",
    )
    current = (await client.get(deal.url, headers=deal.requester.headers)).json()
    assert current["status"] == "disputed"
    assert (await hold_of(app, deal.contract["id"])).status == "held"


@pytest.mark.parametrize(
    ("ruling", "released", "fee", "agent_share", "metric_score", "success"),
    [
        pytest.param({"outcome": "refund"}, 0, 0, 0, 0.0, False, id="refund"),
        pytest.param({"outcome": "pay_agent"}, 1000, 100, 900, 1.0, True, id="pay_agent"),
        pytest.param(
            {"outcome": "partial", "percent": 50}, 500, 50, 450, 0.5, False, id="partial-50"
        ),
    ],
)
async def test_admin_resolution_moves_money_and_records_the_metric(
    app, client, ruling, released, fee, agent_share, metric_score, success
):
    deal = await delivered_deal(app, client)
    assert (await settle(client, deal, validation_score=0.4)).status_code == 200

    response = await resolve(client, deal, **ruling, note="ruled on the evidence")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "resolved"
    resolution = body["dispute"]["resolution"]
    assert resolution["outcome"] == ruling["outcome"]
    assert resolution["percent"] == released // 10
    assert resolution["note"] == "ruled on the evidence"
    assert resolution["resolved_by"] == user_ref(deal.admin)
    assert body["settlement"]["units"]["released"] == released
    assert body["settlement"]["units"]["refunded"] == 1000 - released
    assert body["settlement"]["units"]["agent_share"] == agent_share
    assert body["settlement"]["units"]["platform_fee"] == fee

    requester = await wallet(client, deal.requester)
    assert requester["held_units"] == 0
    assert requester["available_units"] == 10_000 - released
    assert (await wallet(client, deal.agent))["available_units"] == agent_share
    hold = await hold_of(app, deal.contract["id"])
    assert hold.status == ("refunded" if released == 0 else "released")

    [metric] = await metrics_of(app, deal.contract["id"])
    assert str(metric.agent_id) == deal.agent.id
    assert metric.outcome == "dispute"
    assert metric.validation_score == metric_score
    assert metric.success is success
    assert metric.promised_seconds == 30

    resolved = await events_of(app, "contract.resolved", deal.contract["id"])
    assert recipients(resolved) == sorted([user_ref(deal.requester), agent_ref(deal.agent)])
    assert all(row.data["resolution"]["outcome"] == ruling["outcome"] for row in resolved)

    again = await resolve(client, deal, outcome="pay_agent")
    assert_problem(again, 409, "not_disputed")
    assert (await wallet(client, deal.agent))["available_units"] == agent_share
    assert len(await metrics_of(app, deal.contract["id"])) == 1


# ---- events ----


async def test_contract_created_reaches_only_matching_active_agents_of_other_owners(app, client):
    requester = await funded_user(app, client, credits=100)
    own_agent = await enroll(client, requester, capabilities=["summarize"])
    matching = await capable_agent(client, capabilities=["summarize", "translate"])
    other_skill = await capable_agent(client, capabilities=["translate"])
    paused_owner = await register(client)
    paused = await enroll(client, paused_owner, capabilities=["summarize"])
    pause = await client.patch(
        f"/api/v1/agents/{paused.id}", json={"status": "paused"}, headers=paused_owner.headers
    )
    assert pause.status_code == 200, pause.text

    contract = await post_contract(client, requester, bidding_seconds=600)

    created = await events_of(app, "contract.created", contract["id"])
    assert recipients(created) == [agent_ref(matching)]
    for absent in (own_agent, other_skill, paused):
        assert agent_ref(absent) not in recipients(created)
    assert created[0].data["capability"] == "summarize"
    assert created[0].data["status"] == "bidding"
    assert created[0].data["reward"] == 5.0


async def test_every_transition_writes_its_events(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, credits=100, admin=admin)
    winner, loser = await capable_agent(client), await capable_agent(client)
    contract = await post_contract(client, requester, reward=10, bidding_seconds=600)
    contract_id = contract["id"]
    url = f"{CONTRACTS}/{contract_id}"

    assert (await bid(client, winner, contract_id, price=5, confidence=0.95)).status_code == 201
    assert (await bid(client, loser, contract_id, price=9, confidence=0.5)).status_code == 201
    bids = await events_of(app, "contract.bid", contract_id)
    assert recipients(bids) == [user_ref(requester), user_ref(requester)]
    assert {row.data["bid"]["agent_id"] for row in bids} == {winner.id, loser.id}

    award = await client.post(f"{url}/award", headers=requester.headers)
    assert award.status_code == 200, award.text
    assert award.json()["winner"]["agent_id"] == winner.id
    awarded = await events_of(app, "contract.awarded", contract_id)
    roles = {row.recipient: row.data["role"] for row in awarded}
    assert len(awarded) == 3
    assert roles == {
        user_ref(requester): "requester",
        agent_ref(winner): "winner",
        agent_ref(loser): "loser",
    }
    by_role = {row.data["role"]: row for row in awarded}
    assert by_role["requester"].data["winner"]["agent_id"] == winner.id
    assert by_role["loser"].data["your_bid"]["agent_id"] == loser.id
    assert by_role["loser"].data["your_bid"]["outcome"] == "lost"
    assert by_role["winner"].data["your_bid"]["outcome"] == "won"

    delivered = await client.post(
        f"{url}/deliver", json={"data": {"summary": "ok"}}, headers=winner.headers
    )
    assert delivered.status_code == 200, delivered.text
    assert recipients(await events_of(app, "contract.delivered", contract_id)) == sorted(
        [user_ref(requester), agent_ref(winner)]
    )

    settled = await client.post(
        f"{url}/settle", json={"validation_score": 0.9, "rating": 5}, headers=requester.headers
    )
    assert settled.status_code == 200, settled.text
    settled_events = await events_of(app, "contract.settled", contract_id)
    assert recipients(settled_events) == sorted([user_ref(requester), agent_ref(winner)])
    assert all(row.data["settlement"]["units"]["agent_share"] == 405 for row in settled_events)
    assert all(row.data["rating"] == 5 for row in settled_events)
    # The loser hears of the contract and of losing it, nothing after.
    # Enrollment computed each agent's first trust: the prior, and the Verified badge.
    assert await types_for(app, agent_ref(loser)) == [
        "badge.earned",
        "contract.created",
        "contract.awarded",
    ]
    assert await types_for(app, agent_ref(winner)) == [
        "badge.earned",
        "contract.created",
        "contract.awarded",
        "contract.delivered",
        "contract.settled",
        # The settlement recomputed the winner's trust from its first outcome.
        "trust.updated",
    ]
