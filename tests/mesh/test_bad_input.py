"""Malformed and hostile input to the mesh API, and idempotent retries: a refused request
changes nothing (no contract, no hold, no bid), a retried one changes nothing twice."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.factories import TestAgent, TestUser, assert_problem, register
from tests.ledger.helpers import grant, make_admin, wallet
from tests.mesh.helpers import CONTRACTS, bid, capable_agent, funded_user, post_contract

LONG = 600
VALID = {"intent": "Summarize this report", "capability": "summarize", "reward": 5}


def url(contract_id: str, action: str = "") -> str:
    return f"{CONTRACTS}/{contract_id}" + (f"/{action}" if action else "")


async def create(
    client: httpx.AsyncClient, who: Any, key: str | None = None, **fields: Any
) -> httpx.Response:
    headers = dict(who.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {**VALID, "bidding_seconds": LONG, **fields}
    return await client.post(CONTRACTS, json=body, headers=headers)


async def create_raw(client: httpx.AsyncClient, who: Any, raw: str) -> httpx.Response:
    """Send JSON text as written, for values json.dumps will not produce (NaN, Infinity)."""
    headers = {**who.headers, "Content-Type": "application/json"}
    return await client.post(CONTRACTS, content=raw.encode(), headers=headers)


async def contract_ids(client: httpx.AsyncClient, who: Any) -> list[str]:
    response = await client.get(CONTRACTS, params={"role": "requester"}, headers=who.headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def assert_nothing_created(
    client: httpx.AsyncClient, who: Any, before: dict[str, Any]
) -> None:
    assert await contract_ids(client, who) == []
    assert await wallet(client, who) == before


async def delivered_contract(
    app: Any, client: httpx.AsyncClient
) -> tuple[TestUser, TestAgent, dict[str, Any]]:
    requester = await funded_user(app, client, credits=100)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, reward=5, bidding_seconds=LONG)
    assert (await bid(client, agent, contract["id"], price=4)).status_code == 201
    awarded = await client.post(url(contract["id"], "award"), headers=requester.headers)
    assert awarded.status_code == 200, awarded.text
    delivered = await client.post(
        url(contract["id"], "deliver"), json={"data": {"summary": "ok"}}, headers=agent.headers
    )
    assert delivered.status_code == 200, delivered.text
    return requester, agent, delivered.json()


# ---- amounts ----

BAD_AMOUNTS = [
    -1,
    0,
    "0.00",
    1.001,
    "4.251",
    10**13,
    "1e400",
    "NaN",
    "Infinity",
    True,
    "five",
    None,
]


@pytest.mark.parametrize("field", ["reward", "max_price"])
async def test_bad_amounts_on_create_are_422(app, client, field):
    requester = await funded_user(app, client, credits=100)
    before = await wallet(client, requester)
    for amount in BAD_AMOUNTS:
        if field == "max_price" and amount is None:
            continue  # max_price is optional: null means no cap
        response = await create(client, requester, **{field: amount})
        assert_problem(response, 422, "validation_error")
    for raw_number in ("NaN", "Infinity", "-Infinity", "1e400", "4.2500000000000001"):
        raw = json.dumps({**VALID, "bidding_seconds": LONG})[:-1] + f', "{field}": {raw_number}}}'
        if field == "reward":
            raw = raw.replace('"reward": 5, ', "")
        response = await create_raw(client, requester, raw)
        assert_problem(response, 422, "validation_error")
    await assert_nothing_created(client, requester, before)


async def test_bad_prices_on_bid_are_422(app, client):
    requester = await funded_user(app, client, credits=100)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    for price in BAD_AMOUNTS:
        assert_problem(
            await bid(client, agent, contract["id"], price=price), 422, "validation_error"
        )
    for raw_number in ("NaN", "Infinity", "1e400", "4.001"):
        raw = f'{{"price": {raw_number}, "eta_seconds": 30, "confidence": 0.9}}'
        response = await client.post(
            url(contract["id"], "bid"),
            content=raw.encode(),
            headers={**agent.headers, "Content-Type": "application/json"},
        )
        assert_problem(response, 422, "validation_error")
    raw = '{"price": 4, "eta_seconds": 30, "confidence": NaN}'
    response = await client.post(
        url(contract["id"], "bid"),
        content=raw.encode(),
        headers={**agent.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 422, "validation_error")
    view = (await client.get(url(contract["id"]), headers=requester.headers)).json()
    assert view["bid_count"] == 0


# ---- windows, fields, intent ----


async def test_bad_windows_unknown_fields_and_intent_are_422(app, client):
    requester = await funded_user(app, client, credits=100)
    before = await wallet(client, requester)
    for fields in (
        {"bidding_seconds": 0},
        {"bidding_seconds": 3601},
        {"bidding_seconds": -1},
        {"bidding_seconds": 1.5},
        {"deadline_seconds": 0},
        {"deadline_seconds": -60},
        {"surprise": 1},
        {"intent": ""},
        {"intent": "   \n\t "},
        {"intent": "x" * 10_001},
        {"intent": "nul\x00byte"},
        {"capability": ""},
        {"capability": "has spaces"},
        {"complexity": "trivial"},
        {"mode": "lottery"},
        {"min_reputation": 1.5},
        {"min_reputation": -0.1},
        {"context": "not an object"},
        {"output_schema": ["not", "an", "object"]},
    ):
        response = await create(client, requester, **fields)
        assert_problem(response, 422, "validation_error")
    missing = await client.post(CONTRACTS, json={"intent": "x"}, headers=requester.headers)
    assert_problem(missing, 422, "validation_error")
    await assert_nothing_created(client, requester, before)

    for fields in (
        {"bidding_seconds": 1},
        {"bidding_seconds": 3600},
        {"intent": "x" * 10_000},
    ):
        response = await create(client, requester, **fields)
        assert response.status_code == 201, (fields, response.text)


async def test_unknown_fields_on_bid_award_settle_are_422(app, client):
    requester, _agent, contract = await delivered_contract(app, client)
    other = await post_contract(client, requester, bidding_seconds=LONG)
    bidder = await capable_agent(client)
    response = await bid(client, bidder, other["id"], surprise=True)
    assert_problem(response, 422, "validation_error")
    response = await client.post(
        url(other["id"], "award"), json={"bid": "x"}, headers=requester.headers
    )
    assert_problem(response, 422, "validation_error")
    response = await client.post(
        url(contract["id"], "settle"),
        json={"validation_score": 1, "tip": 5},
        headers=requester.headers,
    )
    assert_problem(response, 422, "validation_error")
    view = (await client.get(url(contract["id"]), headers=requester.headers)).json()
    assert view["status"] == "delivered"


# ---- output_schema ----


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "nope"},
        {"type": "object", "properties": {"a": {"type": 5}}},
        {"minLength": -1},
        {"required": "a"},
        {"$ref": "https://example.com/schema.json"},
        {"type": "object", "properties": {"a": {"$ref": "http://169.254.169.254/latest"}}},
        {
            "items": [{"$ref": "file:///etc/passwd"}],
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
        {"$dynamicRef": "other.json#meta"},
    ],
)
async def test_invalid_output_schema_creates_nothing(app, client, schema):
    requester = await funded_user(app, client, credits=100)
    before = await wallet(client, requester)
    response = await create(client, requester, output_schema=schema)
    assert_problem(response, 422, "invalid_output_schema")
    await assert_nothing_created(client, requester, before)


async def test_a_valid_output_schema_with_local_refs_is_accepted(app, client):
    requester = await funded_user(app, client, credits=100)
    schema = {
        "type": "object",
        "$defs": {"text": {"type": "string", "minLength": 1}},
        "properties": {"summary": {"$ref": "#/$defs/text"}},
        "required": ["summary"],
    }
    response = await create(client, requester, output_schema=schema)
    assert response.status_code == 201, response.text
    assert response.json()["output_schema"] == schema


# ---- money the requester does not have ----


async def test_requester_who_cannot_afford_gets_409_and_nothing(app, client):
    admin = await make_admin(app, client)
    poor = await funded_user(app, client, credits=3, admin=admin)
    before = await wallet(client, poor)
    assert_problem(await create(client, poor, reward=5), 409, "insufficient_funds")
    # The hold is max_price when there is one: a reward it can pay does not help.
    assert_problem(await create(client, poor, reward=2, max_price=4), 409, "insufficient_funds")
    assert_problem(await create(client, poor, reward=5, mode="claim"), 409, "insufficient_funds")
    await assert_nothing_created(client, poor, before)
    assert before["available"] == 3

    broke = await register(client)
    before = await wallet(client, broke)
    assert_problem(await create(client, broke, reward=0.01), 409, "insufficient_funds")
    await assert_nothing_created(client, broke, before)

    # Exactly what it has is enough; then nothing is left for another.
    assert (await create(client, poor, reward=3)).status_code == 201
    assert_problem(await create(client, poor, reward=0.01), 409, "insufficient_funds")
    after = await wallet(client, poor)
    assert (after["available"], after["held"]) == (0, 3)
    assert len(await contract_ids(client, poor)) == 1
    await grant(client, admin, poor, 1)
    assert (await create(client, poor, reward=1)).status_code == 201


# ---- ids ----


async def test_non_uuid_and_unknown_contract_ids(app, client):
    requester = await funded_user(app, client, credits=100)
    admin = await make_admin(app, client)
    agent = await capable_agent(client)
    for bad in ("nope", "123", "00000000-0000-0000-0000-00000000000g"):
        assert_problem(
            await client.get(url(bad), headers=requester.headers), 422, "validation_error"
        )
        assert_problem(await bid(client, agent, bad), 422, "validation_error")
        assert_problem(
            await client.post(url(bad, "award"), headers=requester.headers),
            422,
            "validation_error",
        )
    unknown = str(uuid.uuid4())
    assert_problem(
        await client.get(url(unknown), headers=requester.headers), 404, "contract_not_found"
    )
    assert_problem(await client.get(url(unknown), headers=admin.headers), 404, "contract_not_found")
    assert_problem(await bid(client, agent, unknown), 404, "contract_not_found")
    for action, who, body in (
        ("award", requester, None),
        ("cancel", requester, None),
        ("claim", agent, None),
        ("deliver", agent, {"data": {}}),
        ("settle", requester, {"validation_score": 1}),
        ("dispute/respond", agent, {"statement": "it was fine"}),
        ("dispute/resolve", admin, {"outcome": "refund"}),
    ):
        response = await client.post(url(unknown, action), json=body, headers=who.headers)
        assert_problem(response, 404, "contract_not_found")


# ---- settle and dispute bodies ----


async def test_settle_out_of_range_is_422_and_changes_nothing(app, client):
    requester, agent, contract = await delivered_contract(app, client)
    for body in (
        {"validation_score": 1.5},
        {"validation_score": -0.1},
        {"validation_score": "high"},
        {"validation_score": 1, "rating": 6},
        {"validation_score": 1, "rating": 0},
        {"validation_score": 1, "rating": 4.5},
        {"rating": 5},
    ):
        response = await client.post(
            url(contract["id"], "settle"), json=body, headers=requester.headers
        )
        assert_problem(response, 422, "validation_error")
    raw = await client.post(
        url(contract["id"], "settle"),
        content=b'{"validation_score": NaN}',
        headers={**requester.headers, "Content-Type": "application/json"},
    )
    assert_problem(raw, 422, "validation_error")
    view = (await client.get(url(contract["id"]), headers=requester.headers)).json()
    assert view["status"] == "delivered"
    assert (await wallet(client, requester))["held"] == 4
    assert (await wallet(client, agent))["total"] == 0


async def test_dispute_resolution_bodies(app, client):
    requester, _agent, contract = await delivered_contract(app, client)
    admin = await make_admin(app, client)
    disputed = await client.post(
        url(contract["id"], "settle"), json={"validation_score": 0.2}, headers=requester.headers
    )
    assert disputed.status_code == 200, disputed.text
    assert disputed.json()["status"] == "disputed"
    resolve = url(contract["id"], "dispute/resolve")
    for body in (
        {"outcome": "partial"},
        {"outcome": "partial", "percent": 0},
        {"outcome": "partial", "percent": 100},
        {"outcome": "partial", "percent": 50.5},
        {"outcome": "refund", "percent": 50},
        {"outcome": "pay_agent", "percent": 50},
        {"outcome": "split"},
        {},
    ):
        response = await client.post(resolve, json=body, headers=admin.headers)
        assert_problem(response, 422, "validation_error")
    view = (await client.get(url(contract["id"]), headers=requester.headers)).json()
    assert view["status"] == "disputed"
    assert (await wallet(client, requester))["held"] == 4

    response = await client.post(
        resolve, json={"outcome": "partial", "percent": 50}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "resolved"
    assert (await wallet(client, requester))["held"] == 0


# ---- idempotency ----


async def test_create_with_a_key_twice_creates_once(app, client):
    requester = await funded_user(app, client, credits=100)
    first = await create(client, requester, key="create-1")
    assert first.status_code == 201, first.text
    again = await create(client, requester, key="create-1")
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert await contract_ids(client, requester) == [first.json()["id"]]
    after = await wallet(client, requester)
    assert (after["available"], after["held"]) == (95, 5)

    changed = await create(client, requester, key="create-1", reward=6)
    assert_problem(changed, 422, "idempotency_key_mismatch")
    assert await contract_ids(client, requester) == [first.json()["id"]]
    assert (await wallet(client, requester))["held"] == 5

    fresh = await create(client, requester, key="create-2")
    assert fresh.status_code == 201, fresh.text
    assert fresh.json()["id"] != first.json()["id"]
    assert (await wallet(client, requester))["held"] == 10


async def test_one_key_for_two_users_does_not_collide(app, client):
    admin = await make_admin(app, client)
    alice = await funded_user(app, client, credits=100, admin=admin)
    bob = await funded_user(app, client, credits=100, admin=admin)
    by_alice = await create(client, alice, key="shared-key")
    by_bob = await create(client, bob, key="shared-key", reward=7)
    assert by_alice.status_code == by_bob.status_code == 201, (by_alice.text, by_bob.text)
    assert by_alice.json()["id"] != by_bob.json()["id"]
    assert by_bob.json()["reward"] == 7
    assert await contract_ids(client, alice) == [by_alice.json()["id"]]
    assert await contract_ids(client, bob) == [by_bob.json()["id"]]
    assert (await wallet(client, alice))["held"] == 5
    assert (await wallet(client, bob))["held"] == 7


async def test_concurrent_creations_by_one_requester_all_succeed(app, client):
    """Five different contracts posted at once by one requester: each holds its own reward.
    (The contract row references the payer's ledger account, so its insert takes a key-share
    lock on that account before the hold locks it for update.)"""
    requester = await funded_user(app, client, credits=100)
    responses = await asyncio.gather(
        *(create(client, requester, intent=f"job {i}") for i in range(5))
    )
    assert [r.status_code for r in responses] == [201] * 5, [r.text for r in responses]
    assert len(await contract_ids(client, requester)) == 5
    after = await wallet(client, requester)
    assert (after["available"], after["held"]) == (75, 25)


@pytest.mark.parametrize("credits", [100, 5])
async def test_concurrent_duplicates_with_one_key_create_one_contract(app, client, credits):
    """Five copies of one request at once get one contract and the same answer, even when
    the wallet covers only one hold (the copies must replay, not fail for lack of funds)."""
    requester = await funded_user(app, client, credits=credits)
    responses = await asyncio.gather(*(create(client, requester, key="burst") for _ in range(5)))
    assert [r.status_code for r in responses] == [201] * 5, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await contract_ids(client, requester) == [responses[0].json()["id"]]
    after = await wallet(client, requester)
    assert (after["available"], after["held"]) == (credits - 5, 5)


async def test_bid_retry_with_a_key_is_replayed(app, client):
    requester = await funded_user(app, client, credits=100)
    agent = await capable_agent(client)
    contract = await post_contract(client, requester, bidding_seconds=LONG)
    headers = {**agent.headers, "Idempotency-Key": "bid-1"}
    body = {"price": 4, "eta_seconds": 30, "confidence": 0.9}
    first = await client.post(url(contract["id"], "bid"), json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post(url(contract["id"], "bid"), json=body, headers=headers)
    # A replay, not a replacement: 201 with revision 0, not 200 with revision 1.
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.json()["revisions"] == 0
    view = (await client.get(url(contract["id"]), headers=requester.headers)).json()
    assert view["bid_count"] == 1
    assert view["bids"][0]["revisions"] == 0

    changed = await client.post(
        url(contract["id"], "bid"), json={**body, "price": 3}, headers=headers
    )
    assert_problem(changed, 422, "idempotency_key_mismatch")
    view = (await client.get(url(contract["id"]), headers=requester.headers)).json()
    assert view["bids"][0]["price"] == 4


async def test_settle_retry_with_a_key_pays_once(app, client):
    requester, agent, contract = await delivered_contract(app, client)
    headers = {**requester.headers, "Idempotency-Key": "settle-1"}
    body = {"validation_score": 1.0, "rating": 5}
    first = await client.post(url(contract["id"], "settle"), json=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "settled"
    paid = await wallet(client, agent)
    spent = await wallet(client, requester)

    again = await client.post(url(contract["id"], "settle"), json=body, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert await wallet(client, agent) == paid
    assert await wallet(client, requester) == spent
    assert paid["available"] == 3.6
    assert (spent["available"], spent["held"]) == (96, 0)

    without_key = await client.post(
        url(contract["id"], "settle"), json=body, headers=requester.headers
    )
    assert_problem(without_key, 409, "already_settled")
    assert await wallet(client, agent) == paid


async def test_malformed_idempotency_keys_are_422(app, client):
    requester = await funded_user(app, client, credits=100)
    before = await wallet(client, requester)
    for key in ("", "has space", "x" * 201, "tab\tkey"):
        response = await create(client, requester, key=key)
        assert_problem(response, 422, "validation_error")
    await assert_nothing_created(client, requester, before)
