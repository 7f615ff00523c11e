"""The acceptance path as a new user would try it: a real server, several agents competing
over real WebSockets, the award made by the scheduler when bidding closes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.events.conftest import open_socket, receive, receive_event, serve
from tests.ledger.helpers import wallet
from tests.mesh.helpers import CONTRACTS, capable_agent, funded_user

AGENT_WS = "/api/v1/ws/agent"
USER_WS = "/api/v1/ws/user"


async def next_of_type(socket: Any, type_: str) -> dict[str, Any]:
    while True:
        event = await receive_event(socket)
        if event["type"] == type_:
            return event


async def test_agents_compete_over_sockets_and_the_scheduler_awards(app, client):
    requester = await funded_user(app, client, credits=50)
    agents = [await capable_agent(client) for _ in range(3)]
    outsider = await capable_agent(client, capabilities=["translate"])
    offers = [(4, 30, 0.95), (3, 60, 0.8), (4.5, 50, 0.7)]  # balanced: the first wins

    async with serve(app) as ws_base, contextlib.AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(open_socket(ws_base + AGENT_WS, agent.api_key))
            for agent in agents
        ]
        outsider_socket = await stack.enter_async_context(
            open_socket(ws_base + AGENT_WS, outsider.api_key)
        )
        requester_socket = await stack.enter_async_context(
            open_socket(ws_base + USER_WS, requester.token)
        )
        for socket in [*sockets, outsider_socket, requester_socket]:
            assert (await receive(socket))["type"] == "hello"
        for agent in agents:
            presence = await client.get(
                f"/api/v1/agents/{agent.id}/presence", headers=requester.headers
            )
            assert presence.json()["online"] is True

        created = await client.post(
            CONTRACTS,
            json={
                "intent": "Summarize the quarterly report",
                "capability": "summarize",
                "reward": 5,
                "bidding_seconds": 2,
                "output_schema": {
                    "type": "object",
                    "required": ["summary"],
                    "properties": {"summary": {"type": "string"}},
                },
            },
            headers=requester.headers,
        )
        assert created.status_code == 201, created.text
        contract_id = created.json()["id"]

        async def compete(agent: Any, socket: Any, offer: tuple[float, int, float]) -> None:
            announced = await next_of_type(socket, "contract.created")
            assert announced["data"]["contract_id"] == contract_id
            price, eta, confidence = offer
            response = await client.post(
                f"{CONTRACTS}/{contract_id}/bid",
                json={"price": price, "eta_seconds": eta, "confidence": confidence},
                headers=agent.headers,
            )
            assert response.status_code == 201, response.text

        await asyncio.gather(
            *(compete(a, s, o) for a, s, o in zip(agents, sockets, offers, strict=True))
        )
        bids_seen = [await next_of_type(requester_socket, "contract.bid") for _ in agents]
        assert {b["data"]["bid"]["agent_id"] for b in bids_seen} == {a.id for a in agents}

        # Nobody calls award: the scheduler does when the window closes.
        awards = [await next_of_type(s, "contract.awarded") for s in sockets]
        roles = [a["data"]["role"] for a in awards]
        assert roles == ["winner", "loser", "loser"]
        assert awards[1]["data"]["your_bid"]["outcome"] == "lost"
        assert "price" in awards[1]["data"]["your_bid"]  # its own price, nobody else's
        assert (await next_of_type(requester_socket, "contract.awarded"))["data"]["winner"][
            "agent_id"
        ] == agents[0].id

        delivered = await client.post(
            f"{CONTRACTS}/{contract_id}/deliver",
            json={"data": {"summary": "Revenue up 12%."}},
            headers=agents[0].headers,
        )
        assert delivered.status_code == 200, delivered.text
        note = await next_of_type(requester_socket, "contract.delivered")
        assert note["data"]["auto_validation_score"] == 1.0

        settled = await client.post(
            f"{CONTRACTS}/{contract_id}/settle",
            json={"validation_score": 0.9, "rating": 5},
            headers=requester.headers,
        )
        assert settled.status_code == 200, settled.text
        paid = await next_of_type(sockets[0], "contract.settled")
        assert paid["data"]["settlement"]["released"] == 3.6  # 90% of the 4.00 price

        # The outsider (no capability) heard nothing about any of it.
        with contextlib.suppress(TimeoutError):
            stray = await receive_event(outsider_socket, seconds=0.3)
            raise AssertionError(f"the outsider was told {stray}")

    assert (await wallet(client, requester))["total"] == 50 - 3.6
    earnings = await client.get("/api/v1/wallet", headers=agents[0].headers)
    assert earnings.json()["total"] == 3.24  # 3.60 released minus the 10% fee
    after = await client.get(f"/api/v1/agents/{agents[0].id}/presence", headers=requester.headers)
    assert after.json()["online"] is False
