"""Bidding, awarding, claiming and reading contracts through the HTTP API: every refusal code,
who may see what, listing, and many agents acting at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from hermes_hub.kit.time import utcnow
from hermes_hub.mesh.models import Contract
from tests.factories import TestAgent, TestUser, assert_problem, enroll, register
from tests.ledger.helpers import assert_ledger_ok, grant, make_admin, wallet
from tests.mesh.helpers import CONTRACTS, bid, capable_agent, funded_user, post_contract

LONG = 600  # a bidding window the background scheduler will not close during a test


def url(contract: dict[str, Any], action: str = "") -> str:
    return f"{CONTRACTS}/{contract['id']}" + (f"/{action}" if action else "")


async def get(client: httpx.AsyncClient, contract: dict[str, Any], who: Any) -> httpx.Response:
    return await client.get(url(contract), headers=who.headers)


async def award(
    client: httpx.AsyncClient, contract: dict[str, Any], who: Any, bid_id: str | None = None
) -> httpx.Response:
    body = {"bid_id": bid_id} if bid_id is not None else None
    return await client.post(url(contract, "award"), json=body, headers=who.headers)


async def claim(client: httpx.AsyncClient, contract: dict[str, Any], agent: Any) -> httpx.Response:
    return await client.post(url(contract, "claim"), headers=agent.headers)


async def placed(
    client: httpx.AsyncClient, agent: TestAgent, contract: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    response = await bid(client, agent, contract["id"], **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def pause(client: httpx.AsyncClient, owner: TestUser, agent: TestAgent) -> None:
    response = await client.patch(
        f"/api/v1/agents/{agent.id}", json={"status": "paused"}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "paused"


async def set_preferences(client: httpx.AsyncClient, who: Any, **filters: Any) -> None:
    body = {
        "price_weight": 25,
        "performance_weight": 25,
        "speed_weight": 25,
        "reputation_weight": 25,
        **filters,
    }
    response = await client.put("/api/v1/users/me/preferences", json=body, headers=who.headers)
    assert response.status_code == 200, response.text


async def fund_agent(
    client: httpx.AsyncClient, owner: TestUser, agent: TestAgent, amount: Any
) -> None:
    response = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": amount, "destination": f"agent:{agent.id}"},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text


async def close_bidding_window(app: FastAPI, contract: dict[str, Any]) -> None:
    """Move the window's end into the past, leaving the scheduler's due time where it was,
    so the contract is still 'bidding' but past its window."""
    async with app.state.database.write_sessions.begin() as session:
        row = await session.get(Contract, uuid.UUID(contract["id"]))
        assert row is not None
        row.bidding_closes_at = utcnow() - timedelta(seconds=1)


async def listed(
    client: httpx.AsyncClient, who: Any, path: str = CONTRACTS, **params: Any
) -> list[str]:
    response = await client.get(path, params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


# ---- bid refusals ----


async def test_bid_after_award_or_cancel_is_bidding_closed(app, client):
    requester = await funded_user(app, client)
    first, late = await capable_agent(client), await capable_agent(client)
    awarded = await post_contract(client, requester, bidding_seconds=LONG)
    await placed(client, first, awarded)
    assert (await award(client, awarded, requester)).status_code == 200
    body = assert_problem(await bid(client, late, awarded["id"]), 409, "bidding_closed")
    assert body["contract_status"] == "awarded"

    cancelled = await post_contract(client, requester, bidding_seconds=LONG)
    response = await client.post(url(cancelled, "cancel"), headers=requester.headers)
    assert response.status_code == 200, response.text
    body = assert_problem(await bid(client, late, cancelled["id"]), 409, "bidding_closed")
    assert body["contract_status"] == "cancelled"
    assert (await get(client, awarded, requester)).json()["bid_count"] == 1


async def test_bid_after_the_window_is_bidding_closed(app, client):
    requester = await funded_user(app, client)
    early, late = await capable_agent(client), await capable_agent(client)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    await placed(client, early, contract)
    await close_bidding_window(app, contract)

    assert_problem(await bid(client, late, contract["id"]), 409, "bidding_closed")
    # Not even a replacement of a bid placed in time.
    assert_problem(await bid(client, early, contract["id"], price=3), 409, "bidding_closed")
    view = (await get(client, contract, requester)).json()
    assert view["status"] == "bidding"
    assert [b["price"] for b in view["bids"]] == [4]


async def test_bid_without_the_capability_is_refused(app, client):
    requester = await funded_user(app, client)
    translator = await capable_agent(client, capabilities=["translate"])
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    assert_problem(await bid(client, translator, contract["id"]), 403, "capability_missing")
    assert (await get(client, contract, requester)).json()["bid_count"] == 0


async def test_paused_agent_cannot_bid(app, client):
    requester = await funded_user(app, client)
    owner = await register(client)
    agent = await capable_agent(client, owner)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    await pause(client, owner, agent)
    assert_problem(await bid(client, agent, contract["id"]), 403, "agent_inactive")
    assert (await get(client, contract, requester)).json()["bid_count"] == 0


async def test_trust_below_min_reputation_is_refused(app, client):
    requester = await funded_user(app, client)
    agent = await capable_agent(client)
    strict = await post_contract(client, requester, bidding_seconds=LONG, min_reputation=0.9)
    assert_problem(await bid(client, agent, strict["id"]), 403, "reputation_too_low")
    # The prior trust (0.5) meets a minimum of exactly 0.5.
    fair = await post_contract(client, requester, bidding_seconds=LONG, min_reputation=0.5)
    assert (await bid(client, agent, fair["id"])).status_code == 201


async def test_level_too_low_for_complex_work(app, client):
    requester = await funded_user(app, client)
    agent = await capable_agent(client)
    hard = await post_contract(client, requester, bidding_seconds=LONG, complexity="complex")
    body = assert_problem(await bid(client, agent, hard["id"]), 403, "level_too_low")
    assert "expert" in body["detail"]
    # An Intermediate agent (trust 0.5) may take medium work.
    medium = await post_contract(client, requester, bidding_seconds=LONG, complexity="medium")
    assert (await bid(client, agent, medium["id"])).status_code == 201


async def test_price_above_max_price_or_reward_is_refused(app, client):
    requester = await funded_user(app, client)
    agent = await capable_agent(client)
    capped = await post_contract(client, requester, reward=5, max_price=3, bidding_seconds=LONG)
    assert capped["held"] == 3
    assert_problem(await bid(client, agent, capped["id"], price=3.01), 409, "price_above_max")
    assert (await bid(client, agent, capped["id"], price=3)).status_code == 201

    uncapped = await post_contract(client, requester, reward=5, bidding_seconds=LONG)
    assert_problem(await bid(client, agent, uncapped["id"], price=5.01), 409, "price_above_max")
    assert (await bid(client, agent, uncapped["id"], price=5)).status_code == 201


async def test_a_bid_in_cents_is_accepted_and_awarded_at_its_price(app, client):
    requester = await funded_user(app, client, credits=100)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, reward=5, bidding_seconds=LONG)
    response = await bid(client, agent, contract["id"], price=4.25)
    assert response.status_code == 201, response.text
    assert (response.json()["price"], response.json()["price_units"]) == (4.25, 425)
    replaced = await bid(client, agent, contract["id"], price="3.10")
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["price"] == 3.1
    assert (await award(client, contract, requester)).status_code == 200
    after = await wallet(client, requester)
    assert (after["held"], after["available"]) == (3.1, 96.9)


async def test_confidence_and_eta_out_of_range_are_422(app, client):
    requester = await funded_user(app, client)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    for fields in (
        {"confidence": 1.01},
        {"confidence": -0.01},
        {"eta_seconds": 0},
        {"eta_seconds": -5},
    ):
        assert_problem(await bid(client, agent, contract["id"], **fields), 422, "validation_error")
    assert (
        await bid(client, agent, contract["id"], confidence=1, eta_seconds=1)
    ).status_code == 201
    assert (await bid(client, agent, contract["id"], confidence=0)).status_code == 200


async def test_owner_agent_cannot_bid_on_its_owners_contract(app, client):
    requester = await funded_user(app, client)
    own_agent = await capable_agent(client, requester)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    assert_problem(await bid(client, own_agent, contract["id"]), 403, "self_dealing")
    assert (await get(client, contract, requester)).json()["bid_count"] == 0


async def test_agent_requester_and_its_sibling_cannot_bid(app, client):
    owner = await funded_user(app, client, credits=50)
    poster = await capable_agent(client, owner)
    sibling = await capable_agent(client, owner)
    await fund_agent(client, owner, poster, 20)
    contract = await post_contract(client, poster, bidding_seconds=LONG)
    assert_problem(await bid(client, sibling, contract["id"]), 403, "self_dealing")
    assert_problem(await bid(client, poster, contract["id"]), 403, "self_dealing")
    outsider = await capable_agent(client)
    assert (await bid(client, outsider, contract["id"])).status_code == 201


async def test_a_user_cannot_bid(app, client):
    requester = await funded_user(app, client)
    stranger = await register(client)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    assert_problem(await bid(client, stranger, contract["id"]), 403, "agent_required")


async def test_bidding_again_replaces_the_bid(app, client):
    requester = await funded_user(app, client)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    first = await placed(client, agent, contract, price=4, eta_seconds=30, confidence=0.9)
    assert first["replaced"] is False
    assert first["revisions"] == 0

    again = await bid(client, agent, contract["id"], price=3, eta_seconds=20, confidence=0.7)
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["id"] == first["id"]
    assert body["replaced"] is True
    assert body["revisions"] == 1
    view = (await get(client, contract, requester)).json()
    assert view["bid_count"] == 1
    assert [(b["price"], b["eta_seconds"], b["confidence"]) for b in view["bids"]] == [(3, 20, 0.7)]


async def test_wrong_mode_bid_on_claim_and_claim_on_auction(app, client):
    requester = await funded_user(app, client)
    agent = await capable_agent(client)
    claimable = await post_contract(client, requester, mode="claim", bidding_seconds=LONG)
    auction = await post_contract(client, requester, bidding_seconds=LONG)
    assert_problem(await bid(client, agent, claimable["id"]), 409, "wrong_mode")
    assert_problem(await claim(client, auction, agent), 409, "wrong_mode")
    assert (await get(client, claimable, requester)).json()["status"] == "open"
    assert (await get(client, auction, requester)).json()["status"] == "bidding"


# ---- award ----


async def test_only_the_requester_awards(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    other = await funded_user(app, client, admin=admin)
    bidder, onlooker = await capable_agent(client), await capable_agent(client)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    await placed(client, bidder, contract)
    # Those who can see the contract are told they are not its requester...
    assert_problem(await award(client, contract, admin), 403, "not_requester")
    assert_problem(await award(client, contract, bidder), 403, "not_requester")
    assert_problem(await award(client, contract, onlooker), 403, "not_requester")
    # ...a user who cannot see it does not learn it exists (README: 404, not 403).
    assert_problem(await award(client, contract, other), 404, "contract_not_found")
    assert (await get(client, contract, requester)).json()["status"] == "bidding"
    assert (await wallet(client, requester))["held"] == 5
    assert (await award(client, contract, requester)).status_code == 200


async def test_award_naming_a_bid_picks_it_and_reduces_the_hold(app, client):
    requester = await funded_user(app, client, credits=100)
    best, chosen = await capable_agent(client), await capable_agent(client)
    contract = await post_contract(client, requester, reward=5, bidding_seconds=LONG)
    await placed(client, best, contract, price=3, eta_seconds=10, confidence=0.99)
    pick = await placed(client, chosen, contract, price=4, eta_seconds=50, confidence=0.6)

    response = await award(client, contract, requester, pick["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["winner"]["bid_id"] == pick["id"]
    assert body["winner"]["reason"] == "chosen by the requester"
    assert body["contract"]["awarded_agent_id"] == chosen.id
    assert body["contract"]["price"] == 4
    assert [entry["outcome"] for entry in body["ranking"]] == ["won", "lost"]
    after = await wallet(client, requester)
    assert after["held"] == 4
    assert after["available"] == 96


async def test_award_naming_an_ineligible_or_unknown_bid(app, client):
    requester = await funded_user(app, client)
    sure, unsure = await capable_agent(client), await capable_agent(client)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    await placed(client, sure, contract, confidence=0.9)
    weak = await placed(client, unsure, contract, confidence=0.5)
    await set_preferences(client, requester, min_confidence=0.8)

    body = assert_problem(
        await award(client, contract, requester, weak["id"]), 409, "bid_ineligible"
    )
    ineligible = [e for e in body["ranking"] if e["outcome"] == "ineligible"]
    assert [e["bid_id"] for e in ineligible] == [weak["id"]]
    assert "min_confidence" in ineligible[0]["reason"]
    assert_problem(
        await award(client, contract, requester, str(uuid.uuid4())), 404, "bid_not_found"
    )
    view = (await get(client, contract, requester)).json()
    assert view["status"] == "bidding"
    assert view["held"] == 5
    assert (await wallet(client, requester))["held"] == 5


async def test_award_with_no_bids_is_refused(app, client):
    requester = await funded_user(app, client)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    assert_problem(await award(client, contract, requester), 409, "no_eligible_bid")
    assert (await get(client, contract, requester)).json()["status"] == "bidding"
    assert (await wallet(client, requester))["held"] == 5


async def test_award_twice_is_already_awarded(app, client):
    requester = await funded_user(app, client)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    await placed(client, agent, contract, price=4)
    assert (await award(client, contract, requester)).status_code == 200
    assert_problem(await award(client, contract, requester), 409, "already_awarded")
    assert (await wallet(client, requester))["held"] == 4


async def test_award_response_explains_every_bid(app, client):
    requester = await funded_user(app, client, credits=100)
    fast, cheap, unsure = [await capable_agent(client) for _ in range(3)]
    contract = await post_contract(client, requester, reward=5, bidding_seconds=LONG)
    a = await placed(client, fast, contract, price=4, eta_seconds=30, confidence=0.95)
    b = await placed(client, cheap, contract, price=3, eta_seconds=60, confidence=0.8)
    c = await placed(client, unsure, contract, price=1, eta_seconds=1, confidence=0.3)
    await set_preferences(client, requester, min_confidence=0.5)

    response = await award(client, contract, requester)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["weights"] == {
        "price": 0.25,
        "performance": 0.25,
        "speed": 0.25,
        "reputation": 0.25,
    }
    assert body["filters"]["min_confidence"] == 0.5
    entries = {entry["bid_id"]: entry for entry in body["ranking"]}
    assert [entry["bid_id"] for entry in body["ranking"]] == [a["id"], b["id"], c["id"]]
    # Equal weights, reward 5, horizon 60 s, trust 0.5 for everyone.
    assert entries[a["id"]]["components"] == {
        "price": 0.6,
        "performance": 0.95,
        "speed": 0.5,
        "reputation": 0.5,
    }
    assert entries[a["id"]]["score"] == 63.75
    assert entries[b["id"]]["components"] == {
        "price": 0.7,
        "performance": 0.8,
        "speed": 0.0,
        "reputation": 0.5,
    }
    assert entries[b["id"]]["score"] == 50.0
    assert (entries[a["id"]]["outcome"], entries[a["id"]]["rank"]) == ("won", 1)
    assert (entries[b["id"]]["outcome"], entries[b["id"]]["rank"]) == ("lost", 2)
    assert (entries[c["id"]]["outcome"], entries[c["id"]]["rank"]) == ("ineligible", None)
    assert "63.75" in entries[a["id"]]["reason"]
    assert "50.00" in entries[b["id"]]["reason"]
    assert "min_confidence" in entries[c["id"]]["reason"]
    for entry in body["ranking"]:
        assert entry["agent_id"] in {fast.id, cheap.id, unsure.id}
        assert set(entry) >= {"price", "eta_seconds", "confidence", "trust", "score", "reason"}
    assert body["winner"]["bid_id"] == a["id"]
    stored = body["contract"]["award_report"]["ranking"]
    assert stored == [{k: v for k, v in e.items() if k != "label"} for e in body["ranking"]]
    assert (await wallet(client, requester))["held"] == 4


async def test_award_of_a_paused_bidder_skips_it(app, client):
    requester = await funded_user(app, client)
    owner = await register(client)
    favourite = await capable_agent(client, owner)
    other = await capable_agent(client)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    best = await placed(client, favourite, contract, price=1, confidence=1)
    await placed(client, other, contract, price=4, confidence=0.5)
    await pause(client, owner, favourite)
    assert_problem(await award(client, contract, requester, best["id"]), 409, "bid_ineligible")
    body = (await award(client, contract, requester)).json()
    assert body["winner"]["agent_id"] == other.id
    assert body["ranking"][-1]["outcome"] == "ineligible"
    assert "paused" in body["ranking"][-1]["reason"]


# ---- visibility ----


async def test_who_sees_what_of_a_contract(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    winner, loser, onlooker = [await capable_agent(client) for _ in range(3)]
    stranger = await register(client)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    won = await placed(client, winner, contract, price=4, eta_seconds=30, confidence=0.95)
    lost = await placed(client, loser, contract, price=3, eta_seconds=60, confidence=0.8)

    mine = (await get(client, contract, requester)).json()
    assert mine["your_role"] == ["requester"]
    assert mine["held"] == 5
    assert {(b["id"], b["price"]) for b in mine["bids"]} == {(won["id"], 4), (lost["id"], 3)}

    bidder = (await get(client, contract, loser)).json()
    assert bidder["your_role"] == ["bidder"]
    assert bidder["bid_count"] == 2
    assert [(b["id"], b["price"]) for b in bidder["bids"]] == [(lost["id"], 3)]
    assert bidder["held"] is None

    onlooking = await get(client, contract, onlooker)
    assert onlooking.status_code == 200, onlooking.text
    assert onlooking.json()["bids"] == []
    assert onlooking.json()["your_role"] == ["viewer"]
    assert_problem(await get(client, contract, stranger), 404, "contract_not_found")

    admin_view = (await get(client, contract, admin)).json()
    assert admin_view["your_role"] == ["admin"]
    assert len(admin_view["bids"]) == 2

    assert (await award(client, contract, requester)).status_code == 200
    assert_problem(await get(client, contract, onlooker), 404, "contract_not_found")
    assert_problem(await get(client, contract, stranger), 404, "contract_not_found")

    losing = (await get(client, contract, loser)).json()
    assert losing["status"] == "awarded"
    assert [b["id"] for b in losing["bids"]] == [lost["id"]]
    report = losing["award_report"]
    assert [entry["bid_id"] for entry in report["ranking"]] == [lost["id"]]
    assert report["ranking"][0]["outcome"] == "lost"
    assert report["winning_score"] == 63.75
    assert losing["price"] is None
    assert set(report) == {"weights", "ranking", "winning_score"}
    assert won["id"] not in str(report)
    assert winner.id not in str(report)

    winning = (await get(client, contract, winner)).json()
    assert winning["your_role"] == ["awarded", "bidder"]
    assert winning["price"] == 4
    assert [entry["bid_id"] for entry in winning["award_report"]["ranking"]] == [won["id"]]


# ---- listing ----


async def test_listing_by_role_status_and_capability(app, client):
    requester = await funded_user(app, client, credits=100)
    agent = await capable_agent(client, capabilities=["summarize", "translate"])
    other_requester = await funded_user(app, client)
    bid_on = await post_contract(client, requester, bidding_seconds=LONG)
    won = await post_contract(client, requester, bidding_seconds=LONG)
    untouched = await post_contract(client, requester, bidding_seconds=LONG)
    translate = await post_contract(client, requester, capability="translate", bidding_seconds=LONG)
    foreign = await post_contract(client, other_requester, bidding_seconds=LONG)
    await placed(client, agent, bid_on)
    await placed(client, agent, won)
    assert (await award(client, won, requester)).status_code == 200

    everything = {bid_on["id"], won["id"], untouched["id"], translate["id"]}
    assert set(await listed(client, requester, role="requester")) == everything
    assert set(await listed(client, requester)) == everything
    assert set(await listed(client, agent, role="bidder")) == {bid_on["id"], won["id"]}
    assert await listed(client, agent, role="awarded") == [won["id"]]
    assert set(await listed(client, agent, role="open")) == {
        bid_on["id"],
        untouched["id"],
        translate["id"],
        foreign["id"],
    }
    assert await listed(client, requester, status="awarded") == [won["id"]]
    assert set(await listed(client, requester, status="bidding")) == everything - {won["id"]}
    assert await listed(client, requester, capability="translate") == [translate["id"]]
    assert await listed(client, agent, role="open", capability="translate") == [translate["id"]]
    assert await listed(client, other_requester, role="requester") == [foreign["id"]]

    mine = await listed(client, agent, "/api/v1/agents/me/contracts")
    assert set(mine) == {bid_on["id"], won["id"]}
    assert await listed(client, agent, "/api/v1/agents/me/contracts", status="awarded") == [
        won["id"]
    ]
    response = await client.get(f"{CONTRACTS}?role=nobody", headers=requester.headers)
    assert_problem(response, 422, "validation_error")


async def test_listing_pages_with_a_cursor(app, client):
    requester = await funded_user(app, client, credits=100)
    created = [
        (await post_contract(client, requester, bidding_seconds=LONG))["id"] for _ in range(7)
    ]
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3, "role": "requester"}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(CONTRACTS, params=params, headers=requester.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 5
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert seen == list(reversed(created))  # newest first

    for bad in ("not-a-cursor", "!!!", "eHx5"):
        response = await client.get(CONTRACTS, params={"cursor": bad}, headers=requester.headers)
        assert_problem(response, 400, "invalid_cursor")


async def test_agent_lists_its_own_posted_contracts(app, client):
    owner = await funded_user(app, client, credits=50)
    poster = await capable_agent(client, owner)
    await fund_agent(client, owner, poster, 20)
    contract = await post_contract(client, poster, bidding_seconds=LONG)
    assert await listed(client, poster, "/api/v1/agents/me/contracts") == [contract["id"]]
    assert await listed(client, poster, role="requester") == [contract["id"]]
    # The owner sees the contracts its agents posted, as their requester.
    assert await listed(client, owner, role="requester") == [contract["id"]]
    assert (await get(client, contract, owner)).json()["your_role"] == ["requester"]


# ---- claim mode ----


async def test_first_claim_wins(app, client):
    requester = await funded_user(app, client)
    first, second = await capable_agent(client), await capable_agent(client)
    contract = await post_contract(client, requester, mode="claim", reward=5, bidding_seconds=LONG)
    assert contract["status"] == "open"
    assert contract["held"] == 5

    response = await claim(client, contract, first)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "claimed"
    assert response.json()["awarded_agent_id"] == first.id
    assert response.json()["price"] == 5
    body = assert_problem(await claim(client, contract, second), 409, "already_claimed")
    assert body["contract_status"] == "claimed"
    assert (await claim(client, contract, first)).status_code == 409
    assert (await get(client, contract, requester)).json()["awarded_agent_id"] == first.id
    assert (await wallet(client, requester))["held"] == 5


async def test_claim_checks_capability_and_self_dealing(app, client):
    requester = await funded_user(app, client)
    own = await capable_agent(client, requester)
    translator = await capable_agent(client, capabilities=["translate"])
    contract = await post_contract(client, requester, mode="claim", bidding_seconds=LONG)
    assert_problem(await claim(client, contract, own), 403, "self_dealing")
    assert_problem(await claim(client, contract, translator), 403, "capability_missing")
    assert (await get(client, contract, requester)).json()["status"] == "open"
    capable = await capable_agent(client)
    assert (await claim(client, contract, capable)).status_code == 200


async def test_twenty_concurrent_claims_one_winner(app, client):
    requester = await funded_user(app, client)
    owner = await register(client)
    agents = [await capable_agent(client, owner) for _ in range(20)]
    contract = await post_contract(client, requester, mode="claim", bidding_seconds=LONG)

    responses = await asyncio.gather(*(claim(client, contract, agent) for agent in agents))
    winners = [agent for agent, r in zip(agents, responses, strict=True) if r.status_code == 200]
    assert len(winners) == 1, [r.status_code for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert_problem(response, 409, "already_claimed")
    view = (await get(client, contract, requester)).json()
    assert view["status"] == "claimed"
    assert view["awarded_agent_id"] == winners[0].id
    assert (await wallet(client, requester))["held"] == 5
    await assert_ledger_ok(app)


# ---- concurrency ----


async def test_one_hundred_simultaneous_bids(app, client):
    requester = await funded_user(app, client, credits=100)
    owners = [await register(client) for _ in range(4)]
    agents = await asyncio.gather(
        *(enroll(client, owners[i % 4], capabilities=["summarize"]) for i in range(100))
    )
    contract = await post_contract(client, requester, reward=5, bidding_seconds=LONG)

    # Agent i promises 10 + i seconds: the fastest, agent 0, is the clear winner.
    responses = await asyncio.gather(
        *(
            bid(client, agent, contract["id"], price=2, eta_seconds=10 + i)
            for i, agent in enumerate(agents)
        )
    )
    assert [r.status_code for r in responses] == [201] * 100, [
        r.text for r in responses if r.status_code != 201
    ][:3]
    view = (await get(client, contract, requester)).json()
    assert view["bid_count"] == 100
    assert {b["agent_id"] for b in view["bids"]} == {agent.id for agent in agents}

    response = await award(client, contract, requester)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [entry["outcome"] for entry in body["ranking"]].count("won") == 1
    assert len(body["ranking"]) == 100
    assert body["winner"]["agent_id"] == agents[0].id
    assert (await wallet(client, requester))["held"] == 2
    assert (await wallet(client, requester))["available"] == 98
    await assert_ledger_ok(app)


# ---- agents as requesters ----


async def test_agent_posts_a_contract_from_its_own_wallet(app, client):
    admin = await make_admin(app, client)
    owner = await register(client)
    await grant(client, admin, owner, 50)
    poster = await capable_agent(client, owner)
    await fund_agent(client, owner, poster, 20)
    bidder = await capable_agent(client)

    contract = await post_contract(client, poster, reward=5, bidding_seconds=LONG)
    assert contract["requester"] == {"type": "agent", "id": poster.id}
    assert contract["held"] == 5
    agent_wallet = await wallet(client, poster)
    assert (agent_wallet["available"], agent_wallet["held"]) == (15, 5)
    owner_wallet = await wallet(client, owner)
    assert (owner_wallet["available"], owner_wallet["held"]) == (30, 0)

    await placed(client, bidder, contract, price=3)
    response = await award(client, contract, poster)
    assert response.status_code == 200, response.text
    assert response.json()["winner"]["agent_id"] == bidder.id
    agent_wallet = await wallet(client, poster)
    assert (agent_wallet["available"], agent_wallet["held"]) == (17, 3)
    assert (await wallet(client, owner))["held"] == 0

    poor = await capable_agent(client, owner)
    response = await client.post(
        CONTRACTS,
        json={"intent": "x", "capability": "summarize", "reward": 1},
        headers=poor.headers,
    )
    assert_problem(response, 409, "insufficient_funds")
