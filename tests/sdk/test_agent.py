"""Agent: subclasses enrolled, served over A2A and working contracts against a live hub (the
app on uvicorn), plus the pure parts (default bid, contract parsing, state files)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import stat
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from hermes_hub.sdk import Agent, Bid, Contract, HermesClient
from hermes_hub.sdk.agent import _StateFiles
from tests.events.conftest import eventually, serve
from tests.sdk.conftest import Connect, Party, fund, sign_up

EXAMPLE = Path(__file__).parents[2] / "examples" / "echo_agent.py"


def example_agent_class() -> type[Agent]:
    """``Echo`` from examples/echo_agent.py, loaded as a module (not as ``__main__``)."""
    spec = importlib.util.spec_from_file_location("echo_agent_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    echo: type[Agent] = module.Echo
    return echo


class Recorder(Agent):
    """Shouts the intent back and remembers every contract it was given; an intent with
    "explode" in it makes ``perform()`` raise."""

    name = "Recorder"
    description = "Shouts back, and fails on request."
    capabilities = ("shout",)
    price = 2

    def __init__(self, **overrides: Any) -> None:
        super().__init__(**overrides)
        self.performed: list[Contract] = []

    async def perform(self, contract: Contract) -> dict[str, Any]:
        self.performed.append(contract)
        if "explode" in contract.intent:
            raise RuntimeError(f"cannot do {contract.intent!r}")
        return {"text": contract.intent.upper(), "context": contract.context}


@pytest.fixture
async def hub_url(app: Any) -> AsyncIterator[str]:
    async with serve(app) as ws_url:
        yield ws_url.replace("ws://", "http://")


@pytest.fixture
async def requester(app: Any, client: httpx.AsyncClient, connect: Connect) -> Party:
    party = await sign_up(connect)
    await fund(app, client, party, 100)
    return party


@pytest.fixture
async def owner(connect: Connect) -> Party:
    return await sign_up(connect)


async def contract_when(
    party: Party, contract_id: str, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The contract as ``party`` sees it, once ``check`` holds."""
    latest: dict[str, Any] = {}

    async def holds() -> bool:
        latest.update(await party.hub.get_contract(contract_id))
        return check(latest)

    await eventually(holds)
    return latest


async def owned_agents(client: httpx.AsyncClient, owner: Party) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/v1/agents", headers={"Authorization": f"Bearer {owner.credential}"}
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# ---- against the live hub ----


async def test_the_example_bids_wins_delivers_and_is_paid(hub_url, requester, owner, tmp_path):
    echo = example_agent_class()()
    async with echo.running(hub_url, owner.credential, state_dir=tmp_path) as handle:
        profile = await echo.hub.me()
        assert profile["id"] == handle.agent_id
        assert profile["endpoint_url"] == handle.url
        assert profile["pricing"]["base_price"] == 1.5
        async with httpx.AsyncClient() as http:
            card = (await http.get(handle.card_url)).json()
        assert card["name"] == "Echo"
        assert [skill["id"] for skill in card["skills"]] == ["echo"]
        assert card["capabilities"]["streaming"] is True

        posted = await requester.hub.create_contract(
            "say hello", "echo", Decimal("5"), bidding_seconds=60
        )
        with_bid = await contract_when(requester, posted["id"], lambda c: c["bid_count"] == 1)
        (bid,) = with_bid["bids"]
        assert bid["agent_id"] == handle.agent_id
        assert bid["price"] == 1.5
        assert bid["eta_seconds"] == 30

        await requester.hub.award(posted["id"])
        delivered = await contract_when(
            requester, posted["id"], lambda c: c["status"] == "delivered"
        )
        assert delivered["delivery"] == {"data": {"text": "SAY HELLO"}}

        settled = await requester.hub.settle(posted["id"], 1.0, rating=5)
        assert settled["status"] == "settled"
        wallet = await echo.hub.wallet()
        assert wallet["available"] == settled["settlement"]["agent_share"] > 0
    assert echo.agent_id is None


async def test_direct_calls_and_claims_reach_perform(hub_url, requester, owner, tmp_path):
    agent = Recorder()
    async with agent.running(hub_url, owner.credential, state_dir=tmp_path) as handle:
        result = await requester.hub.execute_agent(
            handle.agent_id, "whisper", {"volume": 3, "tags": ["a"]}
        )
        posted = await requester.hub.create_contract(
            "claim me", "shout", 3, mode="claim", context={"n": 1}
        )
        claimed = await contract_when(requester, posted["id"], lambda c: c["status"] == "delivered")
    assert result["state"] == "completed", result
    assert result["output"]["text"] == "WHISPER"
    (data,) = result["output"]["data"]
    assert data["text"] == "WHISPER"
    direct, by_claim = agent.performed
    assert direct.direct
    assert direct.id == result["task_id"]
    assert direct.intent == "whisper"
    assert direct.context == {"volume": 3, "tags": ["a"]}
    assert direct.reward == 0
    assert direct.capability == "shout"

    assert claimed["awarded_agent_id"] == handle.agent_id
    assert claimed["delivery"] == {"data": {"text": "CLAIM ME", "context": {"n": 1}}}
    assert by_claim.mode == "claim"
    assert by_claim.price == Decimal("3")
    assert not by_claim.direct


async def test_stored_credentials_are_reused_and_a_refused_key_renewed(
    hub_url, requester, owner, client, tmp_path, caplog
):
    async with Recorder().running(hub_url, owner.credential, state_dir=tmp_path) as first:
        pass
    for name in ("recorder.key", "recorder.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600

    # Without the owner's token no enrollment is possible, so the stored key must do;
    # served (not entered) until stopped.
    second = Recorder()

    async def stop_once_started() -> None:
        await eventually(lambda: second.agent_id is not None)
        assert second.agent_id == first.agent_id
        second.stop()

    with caplog.at_level(logging.WARNING, logger="hermes_hub.sdk.agent"):
        await asyncio.gather(second.serve(hub_url, state_dir=tmp_path), stop_once_started())
    assert second.agent_id is None
    assert "endpoint_url on the hub differ" in caplog.text

    # With it, the new port is published and the hub calls it at once.
    agent = Recorder()
    async with agent.running(hub_url, owner.credential, state_dir=tmp_path) as third:
        assert third.agent_id == first.agent_id
        result = await requester.hub.execute_agent(third.agent_id, "again")
        assert result["output"]["text"] == "AGAIN"

    # A revoked key is replaced by a new key for the same agent, not a second agent.
    headers = {"Authorization": f"Bearer {owner.credential}"}
    keys = (await client.get(f"/api/v1/agents/{first.agent_id}/keys", headers=headers)).json()
    for key in keys:
        revoked = await client.delete(
            f"/api/v1/agents/{first.agent_id}/keys/{key['id']}", headers=headers
        )
        assert revoked.status_code == 200, revoked.text
    async with Recorder().running(hub_url, owner.credential, state_dir=tmp_path) as fourth:
        assert fourth.agent_id == first.agent_id
    assert [agent["id"] for agent in await owned_agents(client, owner)] == [first.agent_id]


async def test_a_failing_perform_delivers_nothing_and_the_agent_carries_on(
    hub_url, requester, owner, tmp_path
):
    agent = Recorder()
    async with agent.running(hub_url, owner.credential, state_dir=tmp_path) as handle:
        failed = await requester.hub.execute_agent(handle.agent_id, "explode now")
        assert failed["state"] == "failed"
        assert failed["output"]["text"] == "RuntimeError: cannot do 'explode now'"

        posted = await requester.hub.create_contract("explode later", "shout", 5)
        await contract_when(requester, posted["id"], lambda c: c["bid_count"] == 1)
        await requester.hub.award(posted["id"])
        await eventually(lambda: any(c.id == posted["id"] for c in agent.performed))

        fine = await requester.hub.execute_agent(handle.agent_id, "still here")
        assert fine["state"] == "completed"
        assert fine["output"]["text"] == "STILL HERE"
        contract = await requester.hub.get_contract(posted["id"])
        assert contract["status"] == "awarded"
        assert contract["delivery"] is None


async def test_work_won_while_away_is_done_at_the_next_start(hub_url, requester, owner, tmp_path):
    async with Recorder().running(hub_url, owner.credential, state_dir=tmp_path) as handle:
        pass
    agent_key = _StateFiles(tmp_path, "recorder").credentials(hub_url)
    assert agent_key is not None
    posted = await requester.hub.create_contract("while away", "shout", 4)
    async with HermesClient(hub_url, api_key=agent_key.api_key) as as_agent:
        await as_agent.submit_bid(posted["id"], 2, 60, 0.9)
    await requester.hub.award(posted["id"])

    agent = Recorder()
    async with agent.running(hub_url, owner.credential, state_dir=tmp_path):
        delivered = await contract_when(
            requester, posted["id"], lambda c: c["status"] == "delivered"
        )
    assert delivered["awarded_agent_id"] == handle.agent_id
    assert delivered["delivery"]["data"]["text"] == "WHILE AWAY"


async def test_without_credentials_or_owner_nothing_starts(tmp_path):
    agent = Recorder()
    # Refused before any connection: nothing listens on the discard port.
    with pytest.raises(ValueError, match="owner's token"):
        async with agent.running("http://127.0.0.1:9", state_dir=tmp_path):
            pass
    assert agent.agent_id is None
    assert not tmp_path.joinpath("recorder.key").exists()


# ---- pure parts ----


def contract(**fields: Any) -> Contract:
    values: dict[str, Any] = {
        "id": "c1",
        "intent": "do it",
        "capability": "shout",
        "reward": Decimal("5"),
    }
    values.update(fields)
    return Contract(**values)


async def test_the_default_bid_asks_the_list_price_for_its_capabilities():
    agent = Recorder()
    offer = await agent.bid(contract())
    assert offer == Bid(price=Decimal("2"), eta_seconds=60, confidence=0.8)
    assert await agent.bid(contract(capability="paint")) is None
    # A list price above what the contract allows is not worth a refused bid.
    assert await agent.bid(contract(max_price=Decimal("1.5"))) is None
    assert await agent.bid(contract(reward=Decimal("1"))) is None


async def test_without_a_list_price_the_default_bid_asks_the_reward():
    class Unpriced(Recorder):
        price = None

    agent = Unpriced(capabilities="Shout")
    assert agent.capabilities == ["shout"]
    offer = await agent.bid(contract(capability="SHOUT"))
    assert offer is not None
    assert offer.price == Decimal("5")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"price": "-1"}, "negative"),
        ({"price": "lots"}, "not an amount"),
        ({"eta_seconds": 0}, "eta_seconds"),
        ({"confidence": 1.5}, "confidence"),
    ],
)
def test_a_bid_is_checked_when_made(fields, message):
    values: dict[str, Any] = {"price": 1, "eta_seconds": 10, "confidence": 0.5, **fields}
    with pytest.raises(ValueError, match=message):
        Bid(**values)


def test_a_contract_from_the_api_keeps_amounts_exact():
    parsed = Contract.from_api(
        {
            "id": "7",
            "intent": "x",
            "capability": "shout",
            "reward": 0.3,
            "reward_units": 30,
            "max_price": 0.5,
            "price": None,
            "status": "bidding",
            "mode": "auction",
            "context": {"a": 1},
            "requester": {"type": "user", "id": "u1"},
            "bidding_closes_at": "2030-01-01T00:00:00Z",
        }
    )
    assert parsed.reward == Decimal("0.30")
    assert parsed.max_price == Decimal("0.5")
    assert parsed.price is None
    assert parsed.price_cap == Decimal("0.5")
    assert parsed.requester_type == "user"
    assert parsed.requester_id == "u1"
    assert parsed.context == {"a": 1}
    assert parsed.bidding_closes_at is not None
    assert parsed.bidding_closes_at.year == 2030
    assert not parsed.direct


def test_names_become_file_names():
    assert Recorder(name="Data Wizard 3000!").slug == "data-wizard-3000"
    assert example_agent_class()().slug == "echo"


def test_an_agent_without_perform_cannot_be_made():
    class Lazy(Agent):
        name = "Lazy"

    with pytest.raises(TypeError, match="perform"):
        Lazy()  # type: ignore[abstract]
