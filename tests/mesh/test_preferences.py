"""Requester preferences through the HTTP API: defaults, validation, presets, per-principal
isolation, the ranking preview, and the award following the requester's preferences."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hermes_hub.kit.time import utcnow
from tests.factories import assert_problem, enroll, register
from tests.ledger.helpers import wallet
from tests.mesh.helpers import CONTRACTS, bid, capable_agent, funded_user, post_contract

USER_PREFS = "/api/v1/users/me/preferences"
AGENT_PREFS = "/api/v1/agents/me/preferences"
WEIGHT_FIELDS = ("price_weight", "performance_weight", "speed_weight", "reputation_weight")
BALANCED = {
    "price_weight": 25,
    "performance_weight": 25,
    "speed_weight": 25,
    "reputation_weight": 25,
}

PRESET_WEIGHTS = {
    "balanced": ((25, 25, 25, 25), (0.25, 0.25, 0.25, 0.25)),
    "cheapest": ((70, 10, 10, 10), (0.7, 0.1, 0.1, 0.1)),
    "fastest": ((10, 10, 70, 10), (0.1, 0.1, 0.7, 0.1)),
    "premium": ((5, 40, 10, 45), (0.05, 0.4, 0.1, 0.45)),
}

# The seed's worked example (issue 4): reward 5, equal weights.
SEED_BIDS = [
    {"label": "A", "price": 4.00, "eta_seconds": 30, "confidence": 0.95, "trust": 0.92},
    {"label": "B", "price": 3.00, "eta_seconds": 60, "confidence": 0.80, "trust": 0.75},
]
# The same offers at the prior trust every real agent has today (0.5): here the preferences
# alone decide. Balanced: A 63.75, B 50. Cheapest: A 61.5, B 62.
A_OFFER = {"price": 4, "eta_seconds": 30, "confidence": 0.95}
B_OFFER = {"price": 3, "eta_seconds": 60, "confidence": 0.8}


def _weights(body):
    return tuple(body[field] for field in WEIGHT_FIELDS)


def _normalized(body):
    n = body["normalized"]
    return (n["price"], n["performance"], n["speed"], n["reputation"])


async def _preview(client, principal, body, base=USER_PREFS):
    response = await client.post(f"{base}/preview", json=body, headers=principal.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _contract_with_a_and_b(app, client, requester=None, **fields):
    """A funded requester's contract with bid A (4, 30 s, 0.95) then bid B (3, 60 s, 0.8)."""
    requester = requester or await funded_user(app, client, credits=20)
    first, second = await capable_agent(client), await capable_agent(client)
    contract = await post_contract(client, requester, reward=5, bidding_seconds=600, **fields)
    placed_a = await bid(client, first, contract["id"], **A_OFFER)
    assert placed_a.status_code == 201, placed_a.text
    placed_b = await bid(client, second, contract["id"], **B_OFFER)
    assert placed_b.status_code == 201, placed_b.text
    return requester, contract, (first, placed_a.json()), (second, placed_b.json())


# ---- reading and writing ----


async def test_defaults_are_balanced(client):
    user = await register(client)
    response = await client.get(USER_PREFS, headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert _weights(body) == (25, 25, 25, 25)
    assert _normalized(body) == (0.25, 0.25, 0.25, 0.25)
    assert body["preset"] == "balanced"
    assert body["max_price"] is None
    assert body["min_confidence"] is None
    assert body["min_reputation"] is None


async def test_put_stores_weights_and_filters(client):
    user = await register(client)
    body = {
        "price_weight": 50,
        "performance_weight": 30,
        "speed_weight": 20,
        "reputation_weight": 0,
        "max_price": 3.5,
        "min_confidence": 0.7,
        "min_reputation": 0.4,
    }
    response = await client.put(USER_PREFS, json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    saved = response.json()
    assert _weights(saved) == (50, 30, 20, 0)
    assert _normalized(saved) == (0.5, 0.3, 0.2, 0.0)
    assert saved["preset"] is None
    assert (saved["max_price"], saved["min_confidence"], saved["min_reputation"]) == (3.5, 0.7, 0.4)
    again = (await client.get(USER_PREFS, headers=user.headers)).json()
    assert again == saved

    # A second PUT replaces everything, filters included.
    custom = {
        "price_weight": 10,
        "performance_weight": 10,
        "speed_weight": 60,
        "reputation_weight": 20,
    }
    response = await client.put(USER_PREFS, json=custom, headers=user.headers)
    assert response.status_code == 200, response.text
    replaced = response.json()
    assert _normalized(replaced) == (0.1, 0.1, 0.6, 0.2)
    assert replaced["max_price"] is None
    assert replaced["min_confidence"] is None
    assert replaced["min_reputation"] is None


ALL_ZERO = dict.fromkeys(WEIGHT_FIELDS, 0)
BAD_PREFERENCES = {
    "all-zero": ALL_ZERO,
    "all-zero-with-filters": {**ALL_ZERO, "max_price": 3},
    "negative": {**BALANCED, "price_weight": -1},
    "above-100": {**BALANCED, "speed_weight": 100.01},
    "not-a-number": {**BALANCED, "reputation_weight": "lots"},
    "null-weight": {**BALANCED, "performance_weight": None},
    "unknown-field": {**BALANCED, "colour": "blue"},
    "missing-weight": {"price_weight": 25, "performance_weight": 25, "speed_weight": 25},
    "min_confidence-above-1": {**BALANCED, "min_confidence": 1.5},
    "min_reputation-negative": {**BALANCED, "min_reputation": -0.1},
    "max_price-zero": {**BALANCED, "max_price": 0},
    "max_price-negative": {**BALANCED, "max_price": -3},
    "max_price-sub-unit": {**BALANCED, "max_price": 1.005},
}


def _raw(**override: str) -> bytes:
    fields = dict.fromkeys(WEIGHT_FIELDS, "25") | override
    return ("{" + ", ".join(f'"{key}": {value}' for key, value in fields.items()) + "}").encode()


RAW_BAD_PREFERENCES = {
    "nan": _raw(price_weight="NaN"),
    "infinity": _raw(performance_weight="Infinity"),
    "minus-infinity": _raw(speed_weight="-Infinity"),
    "huge": _raw(speed_weight="1e400"),
    "nan-filter": _raw(min_confidence="NaN"),
}


async def test_put_refuses_bad_values(client):
    user = await register(client)
    for base in (USER_PREFS, AGENT_PREFS):
        for case, body in BAD_PREFERENCES.items():
            response = await client.put(base, json=body, headers=user.headers)
            assert response.status_code == 422, (base, case, response.text)
            assert_problem(response, 422, "validation_error")
        for case, raw in RAW_BAD_PREFERENCES.items():
            headers = {**user.headers, "Content-Type": "application/json"}
            response = await client.put(base, content=raw, headers=headers)
            assert response.status_code == 422, (base, case, response.text)
            assert_problem(response, 422, "validation_error")
    # Nothing was written.
    after = (await client.get(USER_PREFS, headers=user.headers)).json()
    assert after["preset"] == "balanced"
    assert _weights(after) == (25, 25, 25, 25)


# ---- presets ----


async def test_presets_set_their_weights(client):
    user = await register(client)
    # Balanced last, so each preset changes something.
    for name in ("cheapest", "fastest", "premium", "balanced"):
        raw, normalized = PRESET_WEIGHTS[name]
        response = await client.put(f"{USER_PREFS}/preset/{name}", headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["preset"] == name
        assert _weights(body) == raw
        assert _normalized(body) == pytest.approx(normalized)
        assert sum(_normalized(body)) == pytest.approx(1)
        assert (await client.get(USER_PREFS, headers=user.headers)).json() == body


async def test_presets_keep_the_filters(client):
    user = await register(client)
    filters = {"max_price": 3.5, "min_confidence": 0.6, "min_reputation": 0.3}
    put = await client.put(
        USER_PREFS, json={**BALANCED, "price_weight": 1, **filters}, headers=user.headers
    )
    assert put.status_code == 200, put.text
    for name in ("cheapest", "premium"):
        response = await client.put(f"{USER_PREFS}/preset/{name}", headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["preset"] == name
        assert _weights(body) == PRESET_WEIGHTS[name][0]
        assert {key: body[key] for key in filters} == filters


async def test_unknown_preset_is_404_and_changes_nothing(client):
    user = await register(client)
    await client.put(f"{USER_PREFS}/preset/fastest", headers=user.headers)
    response = await client.put(f"{USER_PREFS}/preset/cheapskate", headers=user.headers)
    body = assert_problem(response, 404, "preset_not_found")
    assert "cheapest" in body["detail"]
    assert (await client.get(USER_PREFS, headers=user.headers)).json()["preset"] == "fastest"


# ---- whose preferences ----


async def test_each_principal_has_its_own_preferences(client):
    owner = await register(client)
    agent = await enroll(client, owner, capabilities=["summarize"])
    stranger = await register(client)

    response = await client.put(f"{AGENT_PREFS}/preset/cheapest", headers=agent.headers)
    assert response.status_code == 200, response.text
    assert response.json()["preset"] == "cheapest"
    # The agent reads the same preferences through either address.
    assert (await client.get(AGENT_PREFS, headers=agent.headers)).json()["preset"] == "cheapest"
    assert (await client.get(USER_PREFS, headers=agent.headers)).json()["preset"] == "cheapest"
    # Its owner's are untouched.
    assert (await client.get(USER_PREFS, headers=owner.headers)).json()["preset"] == "balanced"

    response = await client.put(
        USER_PREFS, json={**BALANCED, "speed_weight": 100, "max_price": 2}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    agent_view = (await client.get(AGENT_PREFS, headers=agent.headers)).json()
    assert agent_view["preset"] == "cheapest"
    assert agent_view["max_price"] is None

    # A stranger sees neither.
    stranger_view = (await client.get(USER_PREFS, headers=stranger.headers)).json()
    assert stranger_view["preset"] == "balanced"
    assert _weights(stranger_view) == (25, 25, 25, 25)
    assert stranger_view["max_price"] is None


async def test_preferences_need_authentication(client):
    requests = [
        ("GET", "", None),
        ("PUT", "", BALANCED),
        ("PUT", "/preset/cheapest", None),
        ("POST", "/preview", {"bids": SEED_BIDS, "reward": 5}),
    ]
    for base in (USER_PREFS, AGENT_PREFS):
        for method, suffix, body in requests:
            anonymous = await client.request(method, base + suffix, json=body)
            assert_problem(anonymous, 401, "not_authenticated")
            forged = await client.request(
                method, base + suffix, json=body, headers={"Authorization": "Bearer forged"}
            )
            assert_problem(forged, 401, "invalid_token")


# ---- preview ----


async def test_preview_reproduces_the_seed_example(client):
    user = await register(client)
    body = await _preview(client, user, {"bids": SEED_BIDS, "reward": 5})
    assert body["weights"] == {
        "price": 0.25,
        "performance": 0.25,
        "speed": 0.25,
        "reputation": 0.25,
    }
    assert body["filters"] == {"max_price": None, "min_confidence": None, "min_reputation": None}
    a, b = body["ranking"]
    assert (a["label"], a["score"], a["outcome"], a["rank"]) == ("A", 74.25, "won", 1)
    assert (b["label"], b["score"], b["outcome"], b["rank"]) == ("B", 56.25, "lost", 2)
    assert a["components"] == {"price": 0.6, "performance": 0.95, "speed": 0.5, "reputation": 0.92}
    assert b["components"] == {"price": 0.7, "performance": 0.8, "speed": 0.0, "reputation": 0.75}
    assert (a["price"], a["price_units"], a["trust"]) == (4.0, 400, 0.92)
    assert a["agent_id"] is None
    assert a["reason"] == "highest score (74.25, next 56.25)"
    assert body["winner"] == a


async def test_preview_follows_saved_preferences(client):
    user = await register(client)
    # With the seed's trust scores, even `cheapest` keeps A ahead: 65.7 against 64.5.
    await client.put(f"{USER_PREFS}/preset/cheapest", headers=user.headers)
    seed = await _preview(client, user, {"bids": SEED_BIDS, "reward": 5})
    assert seed["weights"] == {"price": 0.7, "performance": 0.1, "speed": 0.1, "reputation": 0.1}
    assert [(r["label"], r["score"]) for r in seed["ranking"]] == [("A", 65.7), ("B", 64.5)]

    # At equal trust the price weight decides: `cheapest` makes B win, `balanced` A.
    equal_trust = [{**offer, "trust": 0.5} for offer in SEED_BIDS]
    cheapest = await _preview(client, user, {"bids": equal_trust, "reward": 5})
    assert [(r["label"], r["score"]) for r in cheapest["ranking"]] == [("B", 62.0), ("A", 61.5)]
    assert cheapest["winner"]["label"] == "B"
    await client.put(f"{USER_PREFS}/preset/balanced", headers=user.headers)
    balanced = await _preview(client, user, {"bids": equal_trust, "reward": 5})
    assert [(r["label"], r["score"]) for r in balanced["ranking"]] == [("A", 63.75), ("B", 50.0)]


async def test_preview_with_preferences_in_the_request_leaves_saved_ones_alone(client):
    user = await register(client)
    only_price = {
        "price_weight": 1,
        "performance_weight": 0,
        "speed_weight": 0,
        "reputation_weight": 0,
    }
    body = await _preview(client, user, {"bids": SEED_BIDS, "reward": 5, "preferences": only_price})
    assert [(r["label"], r["score"]) for r in body["ranking"]] == [("B", 70.0), ("A", 60.0)]
    assert (await client.get(USER_PREFS, headers=user.headers)).json()["preset"] == "balanced"


async def test_preview_applies_filters_and_the_deadline_horizon(client):
    user = await register(client)
    await client.put(USER_PREFS, json={**BALANCED, "max_price": 3.5}, headers=user.headers)
    body = await _preview(client, user, {"bids": SEED_BIDS, "reward": 5, "deadline_seconds": 120})
    assert body["filters"]["max_price"] == 3.5
    b, a = body["ranking"]
    # Horizon 120 s: A's speed is 0.75, B's 0.5.
    assert (b["label"], b["outcome"], b["score"], b["components"]["speed"]) == (
        "B",
        "won",
        68.75,
        0.5,
    )
    assert (a["label"], a["outcome"], a["score"], a["components"]["speed"]) == (
        "A",
        "ineligible",
        80.5,
        0.75,
    )
    assert a["rank"] is None
    assert a["reason"] == "price 4.00 is above the preference max_price 3.50"


async def test_preview_breaks_ties_by_trust_then_order(client):
    user = await register(client)
    offer = {"price": 4, "eta_seconds": 30}
    twins = [
        {"label": "first", **offer, "confidence": 0.9, "trust": 0.6},
        {"label": "second", **offer, "confidence": 0.9, "trust": 0.6},
    ]
    body = await _preview(client, user, {"bids": twins, "reward": 5})
    assert [r["label"] for r in body["ranking"]] == ["first", "second"]
    assert body["ranking"][0]["score"] == body["ranking"][1]["score"]
    assert body["winner"]["reason"].endswith("bid earlier")
    # Equal weights trade confidence for trust one to one: the same score, more trust wins.
    trusted = {"label": "trusted", **offer, "confidence": 0.8, "trust": 0.7}
    body = await _preview(client, user, {"bids": [*twins, trusted], "reward": 5})
    assert [r["label"] for r in body["ranking"]] == ["trusted", "first", "second"]
    assert len({r["score"] for r in body["ranking"]}) == 1
    assert body["winner"]["reason"].endswith("higher trust")


async def test_agent_preview_uses_the_agents_preferences(client):
    owner = await register(client)
    agent = await enroll(client, owner, capabilities=["summarize"])
    await client.put(f"{AGENT_PREFS}/preset/cheapest", headers=agent.headers)
    equal_trust = [{**offer, "trust": 0.5} for offer in SEED_BIDS]
    as_agent = await _preview(client, agent, {"bids": equal_trust, "reward": 5}, base=AGENT_PREFS)
    as_owner = await _preview(client, owner, {"bids": equal_trust, "reward": 5})
    assert as_agent["winner"]["label"] == "B"
    assert as_owner["winner"]["label"] == "A"


async def test_preview_ranks_a_contracts_real_bids(app, client):
    requester, contract, (first, bid_a), (second, bid_b) = await _contract_with_a_and_b(
        app, client, deadline_seconds=120
    )
    body = await _preview(client, requester, {"contract_id": contract["id"]})
    a, b = body["ranking"]
    assert (a["bid_id"], a["agent_id"], a["label"]) == (bid_a["id"], first.id, None)
    assert (b["bid_id"], b["agent_id"]) == (bid_b["id"], second.id)
    # Trust is the prior 0.5; horizon is the contract's 120 s.
    assert a["components"] == {"price": 0.6, "performance": 0.95, "speed": 0.75, "reputation": 0.5}
    assert (a["score"], b["score"]) == (70.0, 62.5)
    assert body["winner"]["bid_id"] == bid_a["id"]

    # Switching the preset changes the preview, and nothing about the contract.
    await client.put(f"{USER_PREFS}/preset/cheapest", headers=requester.headers)
    cheap = await _preview(client, requester, {"contract_id": contract["id"]})
    assert cheap["winner"]["bid_id"] == bid_b["id"]
    shown = await client.get(f"{CONTRACTS}/{contract['id']}", headers=requester.headers)
    assert shown.json()["status"] == "bidding"

    # The award gives the scores the preview showed.
    award = await client.post(f"{CONTRACTS}/{contract['id']}/award", headers=requester.headers)
    assert award.status_code == 200, award.text
    assert [(r["bid_id"], r["score"]) for r in award.json()["ranking"]] == [
        (r["bid_id"], r["score"]) for r in cheap["ranking"]
    ]


async def test_preview_of_someone_elses_contract_is_refused(app, client):
    _, contract, (bidder, _), _ = await _contract_with_a_and_b(app, client)
    stranger = await register(client)
    response = await client.post(
        f"{USER_PREFS}/preview", json={"contract_id": contract["id"]}, headers=stranger.headers
    )
    assert_problem(response, 404, "contract_not_found")
    # A bidder may see the contract, but not rank the others' bids.
    response = await client.post(
        f"{AGENT_PREFS}/preview", json={"contract_id": contract["id"]}, headers=bidder.headers
    )
    assert_problem(response, 403, "not_requester")
    missing = "00000000-0000-4000-8000-000000000000"
    response = await client.post(
        f"{USER_PREFS}/preview", json={"contract_id": missing}, headers=stranger.headers
    )
    assert_problem(response, 404, "contract_not_found")


BAD_PREVIEWS = {
    "both": {"contract_id": "00000000-0000-4000-8000-000000000000", "bids": SEED_BIDS, "reward": 5},
    "neither": {},
    "reward-only": {"reward": 5},
    "bids-without-reward": {"bids": SEED_BIDS},
    "no-bids": {"bids": [], "reward": 5},
    "trust-above-1": {"bids": [{**SEED_BIDS[0], "trust": 1.2}], "reward": 5},
    "confidence-negative": {"bids": [{**SEED_BIDS[0], "confidence": -0.1}], "reward": 5},
    "eta-zero": {"bids": [{**SEED_BIDS[0], "eta_seconds": 0}], "reward": 5},
    "negative-price": {"bids": [{**SEED_BIDS[0], "price": -4}], "reward": 5},
    "reward-zero": {"bids": SEED_BIDS, "reward": 0},
    "unknown-field": {"bids": SEED_BIDS, "reward": 5, "weights": "mine"},
    "all-zero-preferences": {"bids": SEED_BIDS, "reward": 5, "preferences": ALL_ZERO},
}


async def test_preview_refuses_bad_requests(client):
    user = await register(client)
    for case, body in BAD_PREVIEWS.items():
        response = await client.post(f"{USER_PREFS}/preview", json=body, headers=user.headers)
        assert response.status_code == 422, (case, response.text)
        assert_problem(response, 422, "validation_error")


# ---- the award follows the requester's preferences ----


@pytest.mark.parametrize(
    ("preset", "winner", "scores"),
    [
        ("balanced", "A", {"A": 63.75, "B": 50.0}),
        ("cheapest", "B", {"A": 61.5, "B": 62.0}),
        ("fastest", "A", {"A": 55.5, "B": 20.0}),
        ("premium", "A", {"A": 68.5, "B": 58.0}),
    ],
)
async def test_award_uses_the_requesters_preset(app, client, preset, winner, scores):
    requester = await funded_user(app, client, credits=20)
    response = await client.put(f"{USER_PREFS}/preset/{preset}", headers=requester.headers)
    assert response.status_code == 200, response.text
    _, contract, (first, _), (second, _) = await _contract_with_a_and_b(app, client, requester)
    agents = {first.id: "A", second.id: "B"}

    award = await client.post(f"{CONTRACTS}/{contract['id']}/award", headers=requester.headers)
    assert award.status_code == 200, award.text
    body = award.json()
    assert body["weights"] == dict(
        zip(("price", "performance", "speed", "reputation"), PRESET_WEIGHTS[preset][1], strict=True)
    )
    assert agents[body["winner"]["agent_id"]] == winner
    assert {agents[r["agent_id"]]: r["score"] for r in body["ranking"]} == scores
    assert body["contract"]["status"] == "awarded"
    assert body["contract"]["awarded_agent_id"] == body["winner"]["agent_id"]
    # The hold shrinks to the winning price.
    assert (await wallet(client, requester))["held"] == (3 if winner == "B" else 4)


async def test_award_applies_the_requesters_filters(app, client):
    requester = await funded_user(app, client, credits=20)
    await client.put(USER_PREFS, json={**BALANCED, "max_price": 3.5}, headers=requester.headers)
    _, contract, (first, _), (second, _) = await _contract_with_a_and_b(app, client, requester)
    award = await client.post(f"{CONTRACTS}/{contract['id']}/award", headers=requester.headers)
    assert award.status_code == 200, award.text
    body = award.json()
    assert body["winner"]["agent_id"] == second.id
    assert body["filters"]["max_price"] == 3.5
    ineligible = body["ranking"][-1]
    assert (ineligible["agent_id"], ineligible["outcome"]) == (first.id, "ineligible")
    assert ineligible["reason"] == "price 4.00 is above the preference max_price 3.50"


async def test_filters_that_exclude_every_bid_block_the_award_and_expire_at_close(app, client):
    requester = await funded_user(app, client, credits=20)
    await client.put(
        USER_PREFS, json={**BALANCED, "min_confidence": 0.99}, headers=requester.headers
    )
    _, contract, _, _ = await _contract_with_a_and_b(app, client, requester)
    award = await client.post(f"{CONTRACTS}/{contract['id']}/award", headers=requester.headers)
    body = assert_problem(award, 409, "no_eligible_bid")
    assert [r["outcome"] for r in body["ranking"]] == ["ineligible", "ineligible"]

    await app.state.mesh_scheduler.run_due(now=utcnow() + timedelta(seconds=601))
    shown = await client.get(f"{CONTRACTS}/{contract['id']}", headers=requester.headers)
    assert shown.json()["status"] == "expired"
    money = await wallet(client, requester)
    assert (money["held"], money["available"]) == (0, 20)


async def test_scheduled_award_uses_the_requesters_preferences(app, client):
    requester = await funded_user(app, client, credits=20)
    await client.put(f"{USER_PREFS}/preset/cheapest", headers=requester.headers)
    _, contract, _, (second, bid_b) = await _contract_with_a_and_b(app, client, requester)
    await app.state.mesh_scheduler.run_due(now=utcnow() + timedelta(seconds=601))
    shown = await client.get(f"{CONTRACTS}/{contract['id']}", headers=requester.headers)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["status"] == "awarded"
    assert body["awarded_agent_id"] == second.id
    assert body["award_report"]["awarded_by"] == "system:scheduler"
    assert body["award_report"]["weights"]["price"] == 0.7
    assert body["award_report"]["ranking"][0]["bid_id"] == bid_b["id"]


async def test_an_agent_requester_is_ranked_by_its_own_preferences(app, client):
    owner = await funded_user(app, client, credits=20)
    requester = await enroll(client, owner, capabilities=["plan"])
    funding = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 10, "destination": f"agent:{requester.id}"},
        headers=owner.headers,
    )
    assert funding.status_code == 201, funding.text
    # The owner prefers speed; the agent prefers price. The agent's contract follows the agent.
    await client.put(f"{USER_PREFS}/preset/fastest", headers=owner.headers)
    await client.put(f"{AGENT_PREFS}/preset/cheapest", headers=requester.headers)
    _, contract, _, (second, _) = await _contract_with_a_and_b(app, client, requester)

    award = await client.post(f"{CONTRACTS}/{contract['id']}/award", headers=requester.headers)
    assert award.status_code == 200, award.text
    body = award.json()
    assert body["weights"]["price"] == 0.7
    assert body["winner"]["agent_id"] == second.id
