"""One requester, one agent, three contracts: trust moves, the API explains it."""

from __future__ import annotations

import pytest

from tests.ledger.helpers import make_admin
from tests.mesh.helpers import capable_agent, funded_user
from tests.trust.helpers import MARKETPLACE, finish_contract, reputation_of, trust_of


@pytest.mark.asyncio
async def test_settlements_raise_trust_and_the_reputation_explains_it(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, credits=100, admin=admin)
    agent = await capable_agent(client)
    assert (await trust_of(client, agent, requester))["trust_score"] == 0.5
    for _ in range(3):
        await finish_contract(client, requester, agent, score=1.0, rating=5)
    score = await trust_of(client, agent, requester)
    assert score["trust_score"] > 0.5
    reputation = await reputation_of(client, agent, requester)
    assert reputation["stats"]["contracts"] == 3
    assert reputation["stats"]["counted_outcomes"] == 3
    assert {b["badge"] for b in reputation["badges"]} == {"verified"}
    raw = reputation["breakdown"]["raw_score"]
    assert raw == pytest.approx(
        sum(c["weight"] * c["value"] for c in reputation["breakdown"]["components"])
    )
    history = await client.get(f"/api/v1/agents/{agent.id}/history", headers=requester.headers)
    assert history.status_code == 200, history.text
    assert history.json()["total"] == 3
    board = await client.get(
        f"{MARKETPLACE}/leaderboard", params={"by": "contracts"}, headers=requester.headers
    )
    assert board.status_code == 200, board.text
    assert board.json()["items"][0]["agent_id"] == agent.id
