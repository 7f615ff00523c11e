"""The whole auction lifecycle through the HTTP API, with the money checked at each step."""

from __future__ import annotations

from tests.ledger.helpers import wallet
from tests.mesh.helpers import CONTRACTS, bid, capable_agent, funded_user, post_contract


async def test_auction_lifecycle_moves_money_through_escrow(app, client):
    requester = await funded_user(app, client, credits=100)
    first, second = await capable_agent(client), await capable_agent(client)
    contract = await post_contract(client, requester, reward=5, bidding_seconds=60)
    assert contract["status"] == "bidding"
    assert contract["held"] == 5
    assert (await wallet(client, requester))["held"] == 5

    assert (
        await bid(client, first, contract["id"], price=4, eta_seconds=30, confidence=0.95)
    ).status_code == 201
    assert (
        await bid(client, second, contract["id"], price=3, eta_seconds=60, confidence=0.8)
    ).status_code == 201

    award = await client.post(f"{CONTRACTS}/{contract['id']}/award", headers=requester.headers)
    assert award.status_code == 200, award.text
    body = award.json()
    assert body["contract"]["status"] == "awarded"
    assert body["winner"]["agent_id"] == first.id
    assert [entry["outcome"] for entry in body["ranking"]] == ["won", "lost"]
    assert (await wallet(client, requester))["held"] == 4

    delivered = await client.post(
        f"{CONTRACTS}/{contract['id']}/deliver",
        json={"data": {"summary": "ok"}},
        headers=first.headers,
    )
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["status"] == "delivered"

    settled = await client.post(
        f"{CONTRACTS}/{contract['id']}/settle",
        json={"validation_score": 1.0, "rating": 5},
        headers=requester.headers,
    )
    assert settled.status_code == 200, settled.text
    assert settled.json()["status"] == "settled"
    assert settled.json()["settlement"]["agent_share"] == 3.6
    after = await wallet(client, requester)
    assert after["held"] == 0
    assert after["available"] == 96
    earnings = await client.get("/api/v1/wallet", headers=first.headers)
    assert earnings.json()["available"] == 3.6
