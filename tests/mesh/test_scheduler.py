"""The durable scheduler: bidding closes, deadlines, automatic settlement, races and restarts.

Time is moved by calling ``run_due(now=...)`` with explicit future moments; contracts use
long windows so the background loop (which uses the real clock) never acts on its own,
except in the tests that are about the loop itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from hermes_hub.app import create_app
from hermes_hub.config import Settings
from hermes_hub.events.models import Event
from hermes_hub.kit.time import utcnow
from hermes_hub.ledger.models import AuditEntry, Hold
from hermes_hub.mesh.models import AgentMetric, Contract
from tests.factories import TestAgent, TestUser, assert_problem
from tests.ledger.helpers import assert_ledger_ok, make_admin, wallet
from tests.mesh.helpers import CONTRACTS, bid, capable_agent, funded_user, post_contract

SECOND = timedelta(seconds=1)


# ---- helpers ----


def at(contract: dict[str, Any], field: str) -> datetime:
    value = contract[field]
    assert value is not None, field
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def run_due(app: FastAPI, now: datetime) -> dict[str, int]:
    result: dict[str, int] = await app.state.mesh_scheduler.run_due(now=now)
    return result


async def fetch(client: httpx.AsyncClient, contract: dict[str, Any], viewer: Any) -> dict[str, Any]:
    response = await client.get(f"{CONTRACTS}/{contract['id']}", headers=viewer.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def row(app: FastAPI, contract_id: str) -> Contract:
    async with app.state.database.read_sessions() as session:
        contract = await session.get(Contract, uuid.UUID(contract_id))
    assert contract is not None
    return contract


async def hold_of(app: FastAPI, contract_id: str) -> Hold:
    async with app.state.database.read_sessions() as session:
        hold = await session.scalar(select(Hold).where(Hold.contract_id == uuid.UUID(contract_id)))
    assert hold is not None
    return hold


async def metrics_of(app: FastAPI, contract_id: str) -> list[AgentMetric]:
    async with app.state.database.read_sessions() as session:
        rows = await session.scalars(
            select(AgentMetric).where(AgentMetric.contract_id == uuid.UUID(contract_id))
        )
        return list(rows.all())


async def events_of(app: FastAPI, type_: str, contract_id: str) -> list[Event]:
    async with app.state.database.read_sessions() as session:
        rows = (await session.scalars(select(Event).where(Event.type == type_))).all()
    return [r for r in rows if r.data["contract_id"] == contract_id]


async def all_events(app: FastAPI) -> int:
    async with app.state.database.read_sessions() as session:
        return len((await session.scalars(select(Event.id))).all())


async def audit_actions(app: FastAPI, hold: Hold) -> list[str]:
    async with app.state.database.read_sessions() as session:
        rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
    return [r.action for r in rows if r.details.get("hold_id") == str(hold.id)]


def ref(principal: TestUser | TestAgent) -> str:
    return f"{'agent' if isinstance(principal, TestAgent) else 'user'}:{principal.id}"


async def place(client: httpx.AsyncClient, agent: TestAgent, contract_id: str, **fields: Any):
    response = await bid(client, agent, contract_id, **fields)
    assert response.status_code == 201, response.text
    return response.json()


async def awarded(
    app: FastAPI, client: httpx.AsyncClient, *, eta: int = 30, **fields: Any
) -> tuple[TestUser, TestAgent, dict[str, Any]]:
    """A 100-credit requester's 10-credit contract, awarded now to one agent at 10 credits."""
    requester = await funded_user(app, client, credits=100)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, reward=10, bidding_seconds=600, **fields)
    await place(client, agent, contract["id"], price=10, eta_seconds=eta, confidence=0.9)
    response = await client.post(f"{CONTRACTS}/{contract['id']}/award", headers=requester.headers)
    assert response.status_code == 200, response.text
    return requester, agent, response.json()["contract"]


async def delivered(
    app: FastAPI, client: httpx.AsyncClient, data: Any = None, **fields: Any
) -> tuple[TestUser, TestAgent, dict[str, Any]]:
    requester, agent, contract = await awarded(app, client, **fields)
    response = await client.post(
        f"{CONTRACTS}/{contract['id']}/deliver",
        json={"data": data if data is not None else {"summary": "done"}},
        headers=agent.headers,
    )
    assert response.status_code == 200, response.text
    return requester, agent, response.json()


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Another hub worker on the same database, with its own engine and scheduler loop."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.8", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield application, http


async def wait_for_status(
    client: httpx.AsyncClient,
    contract: dict[str, Any],
    viewer: Any,
    status: str,
    timeout: float,  # noqa: ASYNC109 - a polling deadline, not a cancellation timeout
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        current = await fetch(client, contract, viewer)
        if current["status"] == status or loop.time() > give_up:
            return current
        await asyncio.sleep(0.05)


# ---- bidding closes ----


async def test_bidding_close_awards_the_best_bid_by_each_requesters_preferences(app, client):
    admin = await make_admin(app, client)
    balanced = await funded_user(app, client, credits=100, admin=admin)
    thrifty = await funded_user(app, client, credits=100, admin=admin)
    preset = await client.put(
        "/api/v1/users/me/preferences/preset/cheapest", headers=thrifty.headers
    )
    assert preset.status_code == 200, preset.text
    fast, cheap = await capable_agent(client), await capable_agent(client)

    contracts = {}
    for requester in (balanced, thrifty):
        contract = await post_contract(client, requester, reward=10, bidding_seconds=600)
        # Balanced weights favour the fast, confident bid (72.08 vs 52.92); the cheapest
        # preset (70% price) favours the cheap one (72.17 vs 64.83).
        await place(client, fast, contract["id"], price=8, eta_seconds=10, confidence=0.95)
        await place(client, cheap, contract["id"], price=3, eta_seconds=50, confidence=0.6)
        contracts[requester.id] = contract
    closes = max(at(c, "bidding_closes_at") for c in contracts.values())

    assert await run_due(app, closes - SECOND) == {}
    assert await run_due(app, closes + SECOND) == {"awarded": 2}

    for requester, winner, loser, price in ((balanced, fast, cheap, 8), (thrifty, cheap, fast, 3)):
        contract = await fetch(client, contracts[requester.id], requester)
        assert contract["status"] == "awarded"
        assert contract["awarded_agent_id"] == winner.id
        assert contract["price"] == price
        assert contract["promised_eta_seconds"] == (10 if winner is fast else 50)
        report = contract["award_report"]
        assert report["awarded_by"] == "system:scheduler"
        outcomes = {entry["agent_id"]: entry["outcome"] for entry in report["ranking"]}
        assert outcomes == {winner.id: "won", loser.id: "lost"}
        hold = await hold_of(app, contract["id"])
        assert hold.amount == price * 100
        assert hold.status == "held"
        assert await audit_actions(app, hold) == ["escrow.hold", "escrow.reduce"]
        money = await wallet(client, requester)
        assert money["held_units"] == price * 100
        assert money["available_units"] == 10_000 - price * 100
        awarded_events = await events_of(app, "contract.awarded", contract["id"])
        roles = {event.recipient: event.data["role"] for event in awarded_events}
        assert roles == {ref(requester): "requester", ref(winner): "winner", ref(loser): "loser"}


async def test_contract_shows_the_reduced_hold_after_award(app, client):
    requester = await funded_user(app, client, credits=100)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, reward=10, bidding_seconds=600)
    assert contract["held"] == 10
    await place(client, agent, contract["id"], price=4)
    assert await run_due(app, at(contract, "bidding_closes_at") + SECOND) == {"awarded": 1}
    assert (await wallet(client, requester))["held_units"] == 400
    assert (await fetch(client, contract, requester))["held"] == 4


async def test_bidding_close_without_eligible_bid_expires_and_refunds(app, client):
    requester = await funded_user(app, client, credits=100)
    strict = await client.put(
        "/api/v1/users/me/preferences",
        json={
            "price_weight": 25,
            "performance_weight": 25,
            "speed_weight": 25,
            "reputation_weight": 25,
            "min_confidence": 0.8,
        },
        headers=requester.headers,
    )
    assert strict.status_code == 200, strict.text
    unsure = await capable_agent(client)
    no_bids = await post_contract(client, requester, reward=10, bidding_seconds=600)
    filtered = await post_contract(client, requester, reward=20, bidding_seconds=600)
    await place(client, unsure, filtered["id"], price=5, confidence=0.5)
    assert (await wallet(client, requester))["held_units"] == 3000

    closes = at(filtered, "bidding_closes_at")
    assert await run_due(app, closes + SECOND) == {"expired": 2}

    money = await wallet(client, requester)
    assert money["held_units"] == 0
    assert money["available_units"] == 10_000
    for contract, told in ((no_bids, [ref(requester)]), (filtered, [ref(requester), ref(unsure)])):
        current = await fetch(client, contract, requester)
        assert current["status"] == "expired"
        assert current["awarded_agent_id"] is None
        assert current["closed_at"] is not None
        hold = await hold_of(app, contract["id"])
        assert hold.status == "refunded"
        assert hold.refunded == hold.amount
        expired = await events_of(app, "contract.expired", contract["id"])
        assert sorted(e.recipient for e in expired) == sorted(told)
        assert await events_of(app, "contract.awarded", contract["id"]) == []
    ranking = (await fetch(client, filtered, requester))["award_report"]["ranking"]
    assert [entry["outcome"] for entry in ranking] == ["ineligible"]
    assert_problem(await bid(client, unsure, filtered["id"]), 409, "bidding_closed")


async def test_unclaimed_claim_contract_expires_and_refunds(app, client):
    requester = await funded_user(app, client, credits=100)
    contract = await post_contract(client, requester, reward=7, mode="claim", bidding_seconds=600)
    assert contract["status"] == "open"
    assert (await wallet(client, requester))["held_units"] == 700

    assert await run_due(app, at(contract, "bidding_closes_at") - SECOND) == {}
    assert await run_due(app, at(contract, "bidding_closes_at") + SECOND) == {"expired": 1}

    assert (await fetch(client, contract, requester))["status"] == "expired"
    money = await wallet(client, requester)
    assert money["held_units"] == 0
    assert money["available_units"] == 10_000
    assert (await hold_of(app, contract["id"])).status == "refunded"
    [event] = await events_of(app, "contract.expired", contract["id"])
    assert event.recipient == ref(requester)
    agent = await capable_agent(client)
    claim = await client.post(f"{CONTRACTS}/{contract['id']}/claim", headers=agent.headers)
    assert_problem(claim, 409, "not_claimable")


# ---- deadlines ----


async def test_missed_delivery_deadline_fails_refunds_and_records_a_failure(app, client):
    requester, agent, contract = await awarded(app, client, eta=40, deadline_seconds=120)
    deadline = at(contract, "deadline_at")
    assert deadline - at(contract, "awarded_at") == timedelta(seconds=120)
    assert (await wallet(client, requester))["held_units"] == 1000

    assert await run_due(app, deadline - SECOND) == {}
    assert (await fetch(client, contract, requester))["status"] == "awarded"
    assert await run_due(app, deadline + SECOND) == {"failed": 1}

    current = await fetch(client, contract, requester)
    assert current["status"] == "failed"
    assert current["closed_at"] is not None
    money = await wallet(client, requester)
    assert money["held_units"] == 0
    assert money["available_units"] == 10_000
    assert (await wallet(client, agent))["available_units"] == 0
    assert (await hold_of(app, contract["id"])).status == "refunded"

    [metric] = await metrics_of(app, contract["id"])
    assert str(metric.agent_id) == agent.id
    assert metric.outcome == "failed"
    assert metric.success is False
    assert metric.on_time is False
    assert metric.validation_score == 0.0
    assert metric.execution_seconds is None
    assert metric.promised_seconds == 40

    failed = await events_of(app, "contract.failed", contract["id"])
    assert sorted(e.recipient for e in failed) == sorted([ref(requester), ref(agent)])
    late = await client.post(
        f"{CONTRACTS}/{contract['id']}/deliver", json={"data": {"x": 1}}, headers=agent.headers
    )
    assert_problem(late, 409, "not_deliverable")


async def test_unsettled_delivery_is_settled_automatically_with_score_one(app, client):
    requester, agent, contract = await delivered(app, client)
    auto_at = at(contract, "auto_settle_at")
    assert auto_at - at(contract, "delivered_at") == timedelta(
        seconds=app.state.runtime.settings.auto_settle_seconds
    )

    assert await run_due(app, auto_at - SECOND) == {}
    assert await run_due(app, auto_at + SECOND) == {"auto_settled": 1}

    current = await fetch(client, contract, requester)
    assert current["status"] == "settled"
    assert current["validation_score"] == 1.0
    assert current["settlement"]["units"]["released"] == 1000
    assert current["settlement"]["units"]["agent_share"] == 900
    assert (await row(app, contract["id"])).settled_by == "system:auto-settle"
    assert (await wallet(client, agent))["available_units"] == 900
    money = await wallet(client, requester)
    assert money["held_units"] == 0
    assert money["available_units"] == 9000
    [metric] = await metrics_of(app, contract["id"])
    assert metric.success is True
    assert metric.validation_score == 1.0
    assert metric.rating is None
    settled = await events_of(app, "contract.settled", contract["id"])
    assert sorted(e.recipient for e in settled) == sorted([ref(requester), ref(agent)])


async def test_automatic_settlement_of_an_invalid_delivery_opens_a_dispute(app, client):
    schema = {"type": "object", "required": ["summary"]}
    requester, agent, contract = await delivered(
        app, client, data={"wrong": True}, output_schema=schema
    )
    assert contract["auto_validation_score"] == 0.0

    assert await run_due(app, at(contract, "auto_settle_at") + SECOND) == {"auto_settled": 1}

    current = await fetch(client, contract, requester)
    assert current["status"] == "disputed"
    assert current["validation_score"] == 0.0
    assert current["settlement"] is None
    hold = await hold_of(app, contract["id"])
    assert hold.status == "held"
    assert hold.amount == 1000
    assert (await wallet(client, requester))["held_units"] == 1000
    assert (await wallet(client, agent))["available_units"] == 0
    assert await metrics_of(app, contract["id"]) == []
    disputed = await events_of(app, "contract.disputed", contract["id"])
    assert sorted(e.recipient for e in disputed) == sorted([ref(requester), ref(agent)])
    # A dispute waits for an admin: nothing more is due, however late it gets.
    assert await run_due(app, at(contract, "auto_settle_at") + timedelta(days=365)) == {}


async def test_running_the_scheduler_twice_does_nothing_the_second_time(app, client):
    requester = await funded_user(app, client, credits=100)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, reward=10, bidding_seconds=600)
    await place(client, agent, contract["id"], price=6)
    moment = at(contract, "bidding_closes_at") + SECOND

    assert await run_due(app, moment) == {"awarded": 1}
    hold = await hold_of(app, contract["id"])
    events_before = await all_events(app)
    audit_before = await audit_actions(app, hold)
    assert await run_due(app, moment) == {}
    assert await run_due(app, moment + SECOND) == {}

    assert await all_events(app) == events_before
    assert await audit_actions(app, hold) == audit_before == ["escrow.hold", "escrow.reduce"]
    assert len(await events_of(app, "contract.awarded", contract["id"])) == 2
    assert (await wallet(client, requester))["held_units"] == 600


async def test_cancel_while_bidding_refunds_and_is_never_awarded(app, client):
    requester = await funded_user(app, client, credits=100)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, reward=10, bidding_seconds=600)
    await place(client, agent, contract["id"], price=6)

    cancelled = await client.post(f"{CONTRACTS}/{contract['id']}/cancel", headers=requester.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    money = await wallet(client, requester)
    assert money["held_units"] == 0
    assert money["available_units"] == 10_000
    assert (await hold_of(app, contract["id"])).status == "refunded"

    assert await run_due(app, at(contract, "bidding_closes_at") + SECOND) == {}
    current = await fetch(client, contract, requester)
    assert current["status"] == "cancelled"
    assert current["awarded_agent_id"] is None
    assert await events_of(app, "contract.awarded", contract["id"]) == []
    told = await events_of(app, "contract.cancelled", contract["id"])
    assert sorted(e.recipient for e in told) == sorted([ref(requester), ref(agent)])
    award = await client.post(f"{CONTRACTS}/{contract['id']}/award", headers=requester.headers)
    assert_problem(award, 409, "not_biddable")


# ---- several workers, restarts, the real loop ----


async def test_two_workers_racing_award_each_due_contract_exactly_once(app, client, settings):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, credits=100, admin=admin)
    first, second = await capable_agent(client), await capable_agent(client)
    contracts = []
    for _ in range(3):
        contract = await post_contract(client, requester, reward=10, bidding_seconds=600)
        await place(client, first, contract["id"], price=7, confidence=0.95)
        await place(client, second, contract["id"], price=9, confidence=0.6)
        contracts.append(contract)
    moment = max(at(c, "bidding_closes_at") for c in contracts) + SECOND

    async with running(settings) as (other, _):
        results = await asyncio.gather(run_due(app, moment), run_due(other, moment))
        assert await run_due(other, moment) == {}

    assert sum(result.get("awarded", 0) for result in results) == 3, results
    assert all(set(result) <= {"awarded"} for result in results), results
    for contract in contracts:
        current = await fetch(client, contract, requester)
        assert current["status"] == "awarded"
        assert current["awarded_agent_id"] == first.id
        hold = await hold_of(app, contract["id"])
        assert hold.amount == 700
        assert await audit_actions(app, hold) == ["escrow.hold", "escrow.reduce"]
        awarded_events = await events_of(app, "contract.awarded", contract["id"])
        assert sorted(e.recipient for e in awarded_events) == sorted(
            [ref(requester), ref(first), ref(second)]
        )
    assert (await wallet(client, requester))["held_units"] == 3 * 700


async def test_contracts_bidding_during_a_restart_are_awarded_after_it(settings):
    async with running(settings) as (first_app, http):
        admin = await make_admin(first_app, http)
        requester = await funded_user(first_app, http, credits=100, admin=admin)
        agent = await capable_agent(http)
        contract = await post_contract(http, requester, reward=10, bidding_seconds=1)
        await place(http, agent, contract["id"], price=5)
    closes = at(contract, "bidding_closes_at")
    # The first worker is gone before bidding closed, so it cannot have awarded anything.
    assert utcnow() < closes, "setup took longer than the 1 s bidding window"

    restarted = settings.model_copy(update={"scheduler_poll_seconds": 0.2})
    async with running(restarted) as (second_app, http):
        current = await wait_for_status(http, contract, requester, "awarded", timeout=5)
        assert current["status"] == "awarded", current
        assert current["awarded_agent_id"] == agent.id
        assert at(current, "awarded_at") >= closes
        assert current["award_report"]["awarded_by"] == "system:scheduler"
        assert (await wallet(http, requester))["held_units"] == 500
        assert len(await events_of(second_app, "contract.awarded", contract["id"])) == 2
        await assert_ledger_ok(second_app)


async def test_background_loop_awards_when_bidding_closes(app, client):
    requester = await funded_user(app, client, credits=100)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, reward=10, bidding_seconds=1)
    await place(client, agent, contract["id"], price=5)

    current = await wait_for_status(client, contract, requester, "awarded", timeout=3)
    assert current["status"] == "awarded", current
    assert current["awarded_agent_id"] == agent.id
    awarded_at, closes = at(current, "awarded_at"), at(contract, "bidding_closes_at")
    assert closes <= awarded_at < closes + 2 * SECOND
    assert (await wallet(client, requester))["held_units"] == 500
