"""The marketplace catalogue over HTTP: listing (sorts, filters, keyset and offset cursors,
visibility), agent profiles, reviews, categories, featured agents, comparison and
favourites, for signed-in users, agents and anonymous visitors.

The catalogue does not depend on how discovery matches text, and embedding every enrolled
agent costs most of a test's time on a small machine, so most tests run lexical-only;
``TestWithModel`` runs the text-query paths with the embedding model (and pgvector on
PostgreSQL).
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from hermes_hub.discovery.categories import CATEGORY_SLUGS
from hermes_hub.kit.time import utcnow
from hermes_hub.mesh.models import AgentMetric
from tests.discovery.helpers import MARKETPLACE, ban_agent, enroll_indexed
from tests.factories import TestAgent, TestUser, assert_problem, register
from tests.ledger.helpers import make_admin
from tests.mesh.helpers import funded_user
from tests.trust.helpers import finish_contract, reputation_of

AGENTS = f"{MARKETPLACE}/agents"
CATEGORIES = f"{MARKETPLACE}/categories"
FEATURED = f"{MARKETPLACE}/featured"
COMPARE = "/api/v1/compare"
FAVORITES = "/api/v1/users/me/favorites"
SORTS = ("trust", "price", "contracts")
TRUST_COMPONENTS = {
    "success_rate",
    "latency_score",
    "rating_score",
    "uptime_score",
    "consistency_score",
}
REVIEW_FIELDS = {
    "contract_id",
    "stars",
    "quality",
    "speed",
    "communication",
    "comment",
    "created_at",
    "updated_at",
}

# Descriptions written to land in one category each, whether the category comes from the
# embedding model or from shared words.
PROFILES: dict[str, tuple[str, str, list[str]]] = {
    "translator": (
        "Polyglot",
        "Translates documents between English, French and German languages and proofreads "
        "the grammar of the translation.",
        ["translate", "proofread"],
    ),
    "bookkeeper": (
        "Ledger Lee",
        "Bookkeeping, invoices, payments, taxes and budgeting for small businesses; "
        "accounting and financial analysis.",
        ["bookkeeping", "invoices"],
    ),
    "coder": (
        "Code Smith",
        "Software development: writes, reviews, refactors and debugs Python code and "
        "programming tests.",
        ["code-review", "debugging"],
    ),
    "painter": (
        "Pixel",
        "Generates images and illustrations, photo editing, background removal and image "
        "upscaling.",
        ["image-generation"],
    ),
    "guard": (
        "Sentinel",
        "Cyber security: vulnerability scanning, penetration testing, malware analysis and "
        "phishing detection.",
        ["vulnerability-scan"],
    ),
}
AUTO_CATEGORY = {
    "translator": "natural-language",
    "bookkeeper": "finance",
    "coder": "code-generation",
    "painter": "image-processing",
    "guard": "security",
}


LEXICAL_ONLY: dict[str, object] = {"semantic_search": False}


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return dict(LEXICAL_ONLY)


# ---- helpers ----


async def make_agent(
    client: httpx.AsyncClient, owner: TestUser, kind: str, **fields: Any
) -> TestAgent:
    name, description, capabilities = PROFILES[kind]
    return await enroll_indexed(
        client, owner, name=name, description=description, capabilities=capabilities, **fields
    )


async def patch_agent(
    client: httpx.AsyncClient, owner: TestUser, agent: TestAgent, **changes: Any
) -> None:
    response = await client.patch(f"/api/v1/agents/{agent.id}", json=changes, headers=owner.headers)
    assert response.status_code == 200, response.text


async def get_json(
    client: httpx.AsyncClient,
    path: str,
    viewer: Any = None,
    **params: Any,
) -> Any:
    headers = viewer.headers if viewer is not None else None
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def listing(client: httpx.AsyncClient, viewer: Any = None, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = await get_json(client, AGENTS, viewer, **params)
    return body


async def listed_ids(client: httpx.AsyncClient, viewer: Any = None, **params: Any) -> list[str]:
    body = await listing(client, viewer, limit=100, **params)
    assert body["next_cursor"] is None
    return [item["id"] for item in body["items"]]


async def walk(
    client: httpx.AsyncClient, viewer: Any = None, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every item of a listing, page by page; also how many pages it took."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        extra = {"cursor": cursor} if cursor is not None else {}
        body = await listing(client, viewer, **params, **extra)
        assert len(body["items"]) <= params["limit"]
        items.extend(body["items"])
        pages += 1
        assert pages <= 100, "the cursor never ran out"
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    )
    return payload


def price_of(item: dict[str, Any]) -> Decimal | None:
    pricing = item["pricing"]
    return None if pricing is None else Decimal(str(pricing["base_price"]))


def sort_key(sort: str, item: dict[str, Any]) -> tuple[Any, ...]:
    """The documented order of each sort, ties broken by id."""
    if sort == "trust":
        return (-item["trust_score"], item["id"])
    if sort == "contracts":
        return (-item["contracts"], item["id"])
    price = price_of(item)
    return (price is None, price or Decimal(0), item["id"])


async def settle_many(
    client: httpx.AsyncClient,
    requester: TestUser,
    agent: TestAgent,
    count: int,
    capability: str,
    **fields: Any,
) -> list[dict[str, Any]]:
    return [
        await finish_contract(client, requester, agent, capability=capability, **fields)
        for _ in range(count)
    ]


async def rate(
    client: httpx.AsyncClient,
    requester: TestUser,
    agent: TestAgent,
    contract: dict[str, Any],
    stars: int,
    comment: str | None = None,
) -> None:
    body: dict[str, Any] = {"contract_id": contract["id"], "stars": stars}
    if comment is not None:
        body["comment"] = comment
    response = await client.post(
        f"/api/v1/agents/{agent.id}/rate", json=body, headers=requester.headers
    )
    assert response.status_code == 201, response.text


@dataclass
class Market:
    admin: TestUser
    owner: TestUser
    requester: TestUser


async def market(app: FastAPI, client: httpx.AsyncClient, credits: int = 200) -> Market:
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, credits=credits, admin=admin)
    return Market(admin=admin, owner=await register(client), requester=requester)


@dataclass
class Rated:
    market: Market
    agent: TestAgent
    contracts: list[dict[str, Any]]


async def rated_agent(app: FastAPI, client: httpx.AsyncClient) -> Rated:
    """A translator with three settled contracts: 5 stars at settlement (no comment), then
    3 and 5 stars with comments through the rating endpoint, in that order."""
    world = await market(app, client)
    agent = await make_agent(client, world.owner, "translator", pricing={"base_price": 4})
    first = await finish_contract(client, world.requester, agent, capability="translate", rating=5)
    second = await finish_contract(client, world.requester, agent, capability="translate")
    await rate(client, world.requester, agent, second, 3, "Slow, but the French was right.")
    third = await finish_contract(client, world.requester, agent, capability="translate")
    await rate(client, world.requester, agent, third, 5, "Flawless German.")
    return Rated(market=world, agent=agent, contracts=[first, second, third])


# ---- listing without q ----


async def test_default_sort_is_trust_with_ties_by_id(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    world = await market(app, client)
    plain = [await make_agent(client, world.owner, kind) for kind in ("coder", "painter", "guard")]
    proven = await make_agent(client, world.owner, "translator")
    await finish_contract(client, world.requester, proven, capability="translate")

    body = await listing(client)
    assert body["sort"] == "trust"
    assert body["limit"] == 20
    items = body["items"]
    assert items[0]["id"] == proven.id
    assert items[0]["trust_score"] > items[1]["trust_score"]
    assert items[0]["contracts"] == 1
    # The three others are tied on the prior and follow by id.
    assert [item["id"] for item in items[1:]] == sorted(agent.id for agent in plain)
    assert {item["trust_score"] for item in items[1:]} == {0.5}
    assert items == sorted(items, key=lambda item: sort_key("trust", item))
    for item in items:
        assert item["relevance"] is None
        assert item["why"] is None
        assert item["online"] is False
    assert body == await listing(client, sort="trust")


async def test_sort_by_price_ascending_with_unpriced_agents_last(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    prices: list[Any] = [3, None, 1.5, 1.5, None, 0, 12]
    kinds = ["coder", "painter", "guard", "translator", "bookkeeper", "coder", "painter"]
    agents = []
    for kind, price in zip(kinds, prices, strict=True):
        fields = {"pricing": {"base_price": price}} if price is not None else {}
        agents.append(await make_agent(client, owner, kind, **fields))

    items = (await listing(client, sort="price", limit=100))["items"]
    listed = [price_of(item) for item in items]
    assert listed == [
        Decimal(0),
        Decimal("1.5"),
        Decimal("1.5"),
        Decimal(3),
        Decimal(12),
        None,
        None,
    ]
    assert items == sorted(items, key=lambda item: sort_key("price", item))
    assert len(items) == len(agents)


async def test_sort_by_contracts(app: FastAPI, client: httpx.AsyncClient) -> None:
    world = await market(app, client)
    busy = await make_agent(client, world.owner, "translator")
    some = await make_agent(client, world.owner, "bookkeeper")
    idle = await make_agent(client, world.owner, "coder")
    await settle_many(client, world.requester, busy, 2, "translate")
    await settle_many(client, world.requester, some, 1, "bookkeeping")

    body = await listing(client, sort="contracts")
    assert body["sort"] == "contracts"
    assert [item["id"] for item in body["items"]] == [busy.id, some.id, idle.id]
    assert [item["contracts"] for item in body["items"]] == [2, 1, 0]


async def test_sort_by_relevance_needs_a_query(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    await make_agent(client, owner, "coder")
    assert_problem(await client.get(AGENTS, params={"sort": "relevance"}), 422, "query_required")
    assert_problem(
        await client.get(AGENTS, params={"sort": "relevance", "q": "   "}), 422, "query_required"
    )
    assert_problem(await client.get(AGENTS, params={"sort": "newest"}), 422, "validation_error")


async def test_filters_capability_category_trust_and_price(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    world = await market(app, client)
    translator = await make_agent(client, world.owner, "translator", pricing={"base_price": 2})
    bookkeeper = await make_agent(client, world.owner, "bookkeeper", pricing={"base_price": 9})
    coder = await make_agent(client, world.owner, "coder")
    painter = await make_agent(client, world.owner, "painter", pricing={"base_price": 5})
    await finish_contract(client, world.requester, translator, capability="translate")

    # Automatic categories, from each description.
    items = (await listing(client, limit=100))["items"]
    assert {item["id"]: item["category"] for item in items} == {
        translator.id: AUTO_CATEGORY["translator"],
        bookkeeper.id: AUTO_CATEGORY["bookkeeper"],
        coder.id: AUTO_CATEGORY["coder"],
        painter.id: AUTO_CATEGORY["painter"],
    }

    assert await listed_ids(client, capability="translate") == [translator.id]
    assert await listed_ids(client, capability="TRANSLATE") == [translator.id]
    assert await listed_ids(client, capability="invoices") == [bookkeeper.id]
    assert await listed_ids(client, capability="translat") == []

    assert await listed_ids(client, category="finance") == [bookkeeper.id]
    assert await listed_ids(client, category="code-generation") == [coder.id]
    assert await listed_ids(client, category="research") == []
    assert_problem(
        await client.get(AGENTS, params={"category": "cooking"}), 422, "validation_error"
    )

    # The owner's choice overrides the automatic category, and null returns to it.
    await patch_agent(client, world.owner, coder, category="finance")
    assert sorted(await listed_ids(client, category="finance")) == sorted([bookkeeper.id, coder.id])
    assert await listed_ids(client, category="code-generation") == []
    profile = await get_json(client, f"{AGENTS}/{coder.id}")
    assert profile["category"] == "finance"
    await patch_agent(client, world.owner, coder, category=None)
    assert await listed_ids(client, category="code-generation") == [coder.id]

    # min_trust: only the agent with a good outcome is above the prior.
    assert await listed_ids(client, min_trust=0.55) == [translator.id]
    assert len(await listed_ids(client, min_trust=0.5)) == 4
    assert await listed_ids(client, min_trust=1) == []
    assert_problem(await client.get(AGENTS, params={"min_trust": 1.5}), 422, "validation_error")

    # max_price: agents without a list price quote per contract and are never excluded.
    assert sorted(await listed_ids(client, max_price=5)) == sorted(
        [translator.id, coder.id, painter.id]
    )
    assert sorted(await listed_ids(client, max_price=4.99)) == sorted([translator.id, coder.id])
    assert await listed_ids(client, max_price=0) == [coder.id]
    assert_problem(await client.get(AGENTS, params={"max_price": 1.234}), 422, "invalid_price")

    # Filters combine.
    assert await listed_ids(client, category="finance", max_price=5) == []
    assert await listed_ids(client, capability="translate", min_trust=0.55, max_price=2) == [
        translator.id
    ]


async def test_cursor_walks_every_agent_once_for_each_sort(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    world = await market(app, client)
    kinds = ["translator", "bookkeeper", "coder", "painter", "guard", "coder", "painter"]
    # Ties on every key: equal prices, equal contract counts and most agents on the prior
    # trust. One unpriced agent, last by price, so no page of two ends on it (see
    # test_price_cursor_past_unpriced_agents for several).
    prices: list[Any] = [2, 2, None, 1, 1, 2, 3]
    agents = []
    for kind, price in zip(kinds, prices, strict=True):
        fields = {"pricing": {"base_price": price}} if price is not None else {}
        agents.append(await make_agent(client, world.owner, kind, **fields))
    await finish_contract(client, world.requester, agents[0], capability="translate")
    await finish_contract(client, world.requester, agents[1], capability="bookkeeping")
    all_ids = sorted(agent.id for agent in agents)

    for sort in SORTS:
        full = (await listing(client, sort=sort, limit=100))["items"]
        assert full == sorted(full, key=partial(sort_key, sort)), sort
        walked, pages = await walk(client, sort=sort, limit=2)
        walked_ids = [item["id"] for item in walked]
        assert walked_ids == [item["id"] for item in full], sort
        assert sorted(walked_ids) == all_ids, sort
        assert pages == 4, sort
    # A limit that divides the total: the last full page says there is nothing more.
    walked, pages = await walk(client, sort="price", limit=7)
    assert (len(walked), pages) == (7, 1)


async def test_bad_cursors_are_rejected(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    for kind in ("translator", "bookkeeper", "coder"):
        await make_agent(client, owner, kind, pricing={"base_price": 1})
    trust_cursor = (await listing(client, limit=1))["next_cursor"]
    price_cursor = (await listing(client, sort="price", limit=1))["next_cursor"]
    assert trust_cursor is not None
    assert price_cursor is not None
    assert decode_cursor(trust_cursor)["sort"] == "trust"

    garbage = [
        "not-a-cursor!!",
        "%%%",
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
        encode_cursor({"sort": "trust"}),
        encode_cursor({"sort": "trust", "value": "high", "id": str(uuid.uuid4())}),
        encode_cursor({"sort": "trust", "value": True, "id": str(uuid.uuid4())}),
        encode_cursor({"sort": "trust", "value": 0.5, "id": "nope"}),
        encode_cursor({"sort": "trust", "value": 0.5}),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
    ]
    for cursor in garbage:
        response = await client.get(AGENTS, params={"cursor": cursor})
        assert_problem(response, 422, "invalid_cursor")

    # A cursor belongs to the sort that made it.
    assert_problem(
        await client.get(AGENTS, params={"sort": "price", "cursor": trust_cursor}),
        422,
        "invalid_cursor",
    )
    assert_problem(
        await client.get(AGENTS, params={"sort": "contracts", "cursor": price_cursor}),
        422,
        "invalid_cursor",
    )
    assert_problem(await client.get(AGENTS, params={"cursor": price_cursor}), 422, "invalid_cursor")
    assert_problem(await client.get(AGENTS, params={"cursor": "x" * 513}), 422, "validation_error")
    # And the genuine one still works.
    assert (await listing(client, sort="price", limit=1, cursor=price_cursor))["items"]


async def test_private_paused_and_banned_agents_are_hidden(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_admin(app, client)
    owner = await register(client)
    stranger = await register(client)
    public = await make_agent(client, owner, "translator")
    private = await make_agent(client, owner, "bookkeeper", is_public=False)
    paused = await make_agent(client, owner, "coder", status="paused")
    banned = await make_agent(client, owner, "guard")
    await ban_agent(client, admin, banned)
    others_agent = await make_agent(client, stranger, "painter")

    assert await listed_ids(client) == sorted([public.id, others_agent.id])
    assert await listed_ids(client, stranger) == sorted([public.id, others_agent.id])
    assert await listed_ids(client, owner) == sorted([public.id, private.id, others_agent.id])
    # An agent sees public agents and itself.
    assert await listed_ids(client, others_agent) == sorted([public.id, others_agent.id])
    # Admins see private agents, but never paused or banned ones in the catalogue.
    assert await listed_ids(client, admin) == sorted([public.id, private.id, others_agent.id])
    assert await listed_ids(client, owner, category=AUTO_CATEGORY["bookkeeper"]) == [private.id]
    assert await listed_ids(client, stranger, category=AUTO_CATEGORY["bookkeeper"]) == []

    # The same with a text query.
    assert private.id not in await listed_ids(client, stranger, q="bookkeeping invoices taxes")
    assert private.id in await listed_ids(client, owner, q="bookkeeping invoices taxes")
    assert paused.id not in await listed_ids(client, owner, q="debugs python code")

    # Resuming brings the paused agent back.
    await patch_agent(client, owner, paused, status="active")
    assert paused.id in await listed_ids(client)


async def test_bad_token_is_401_not_anonymous(client: httpx.AsyncClient) -> None:
    response = await client.get(AGENTS, headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 401, response.text


# ---- listing with q ----


class TestWithModel:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {}

    async def test_query_orders_by_relevance_and_explains(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        assert app.state.discovery.semantic
        owner = await register(client)
        agents = {kind: await make_agent(client, owner, kind) for kind in PROFILES}
        # Automatic categories from the embedding, the same as from shared words.
        browse = (await listing(client, limit=100))["items"]
        assert {item["id"]: item["category"] for item in browse} == {
            agents[kind].id: AUTO_CATEGORY[kind] for kind in PROFILES
        }

        query = "translate my documents into French"
        body = await listing(client, q=query, limit=100)
        assert body["sort"] == "relevance"
        items = body["items"]
        assert items, body
        assert items[0]["id"] == agents["translator"].id
        assert items[0]["why"] == "capability 'translate' named in the query"
        relevances = [item["relevance"] for item in items]
        assert all(isinstance(value, float) and 0 < value <= 1 for value in relevances)
        # Every agent is on the prior, so the fused score orders them exactly by relevance.
        assert relevances == sorted(relevances, reverse=True)
        assert all(isinstance(item["why"], str) and item["why"] for item in items)

        explicit = await listing(client, q=query, sort="relevance", limit=2)
        assert [item["id"] for item in explicit["items"]] == [item["id"] for item in items[:2]]
        walked, _ = await walk(client, q=query, limit=2)
        assert [item["id"] for item in walked] == [item["id"] for item in items]
        by_price = (await listing(client, q=query, sort="price", limit=100))["items"]
        assert {item["id"] for item in by_price} == {item["id"] for item in items}

        assert await listed_ids(client, q=query, category="finance") == [
            item["id"] for item in items if item["category"] == "finance"
        ]


async def test_query_orders_by_relevance_lexical_only(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    agents = {kind: await make_agent(client, owner, kind) for kind in PROFILES}

    body = await listing(client, q="translate my documents into French", limit=100)
    assert body["sort"] == "relevance"
    items = body["items"]
    assert [item["id"] for item in items][:1] == [agents["translator"].id]
    assert items[0]["why"] == "capability 'translate' named in the query"
    relevances = [item["relevance"] for item in items]
    assert relevances == sorted(relevances, reverse=True)
    assert all(item["why"] for item in items)
    assert agents["guard"].id not in {item["id"] for item in items}

    # A query with no match at all gives an empty page.
    empty = await listing(client, q="zzyzx qwvx")
    assert empty["items"] == []
    assert empty["next_cursor"] is None


async def test_query_with_other_sorts_and_paging(app: FastAPI, client: httpx.AsyncClient) -> None:
    world = await market(app, client)
    prices: dict[str, Any] = {
        "translator": 7,
        "bookkeeper": None,
        "coder": 1,
        "painter": 3,
        "guard": 3,
    }
    agents = {}
    for kind, price in prices.items():
        fields = {"pricing": {"base_price": price}} if price is not None else {}
        agents[kind] = await make_agent(client, world.owner, kind, **fields)
    # Two more that match the query lexically, so the matches span several pages.
    for name, price in (("Babel", 3), ("Lingo", 3), ("Verba", 2)):
        agents[name] = await enroll_indexed(
            client,
            world.owner,
            name=name,
            description="Translates text between languages and proofreads translations.",
            capabilities=["translate"],
            pricing={"base_price": price},
        )
    await finish_contract(client, world.requester, agents["Lingo"], capability="translate")
    query = "translate and proofread text between languages"

    by_relevance = (await listing(client, q=query, limit=100))["items"]
    matched = {item["id"] for item in by_relevance}
    translators = {agents[name].id for name in ("translator", "Babel", "Lingo", "Verba")}
    assert translators <= matched

    for sort in SORTS:
        body = await listing(client, q=query, sort=sort, limit=100)
        assert body["sort"] == sort
        items = body["items"]
        # The same matches, in the requested order, still explained.
        assert {item["id"] for item in items} == matched, sort
        assert items == sorted(items, key=partial(sort_key, sort)), sort
        assert all(item["relevance"] is not None and item["why"] for item in items)

        walked, pages = await walk(client, q=query, sort=sort, limit=2)
        assert [item["id"] for item in walked] == [item["id"] for item in items], sort
        assert pages == (len(items) + 1) // 2

    walked, _ = await walk(client, q=query, limit=1)
    assert [item["id"] for item in walked] == [item["id"] for item in by_relevance]

    # Query cursors are offsets within the matches; they do not fit a browse, and back.
    query_cursor = (await listing(client, q=query, sort="price", limit=1))["next_cursor"]
    assert query_cursor is not None
    assert decode_cursor(query_cursor) == {"sort": "price", "offset": 1}
    assert_problem(
        await client.get(AGENTS, params={"sort": "price", "cursor": query_cursor}),
        422,
        "invalid_cursor",
    )
    browse_cursor = (await listing(client, sort="price", limit=1))["next_cursor"]
    assert browse_cursor is not None
    assert_problem(
        await client.get(AGENTS, params={"q": query, "sort": "price", "cursor": browse_cursor}),
        422,
        "invalid_cursor",
    )
    assert_problem(
        await client.get(
            AGENTS,
            params={"q": query, "cursor": encode_cursor({"sort": "relevance", "offset": -2})},
        ),
        422,
        "invalid_cursor",
    )
    # An offset past the matches is an empty last page.
    beyond = await listing(
        client, q=query, cursor=encode_cursor({"sort": "relevance", "offset": 500})
    )
    assert beyond["items"] == []
    assert beyond["next_cursor"] is None

    # Filters apply within the matches.
    cheap = await listed_ids(client, q=query, max_price=3)
    assert agents["translator"].id not in cheap
    assert {agents[name].id for name in ("Babel", "Lingo", "Verba")} <= set(cheap)
    assert await listed_ids(client, q=query, min_trust=0.55) == [agents["Lingo"].id]


# ---- profile ----


async def test_profile_after_settled_contracts(app: FastAPI, client: httpx.AsyncClient) -> None:
    rated = await rated_agent(app, client)
    agent, world = rated.agent, rated.market
    # Known latencies and one late delivery, so the figures can be checked exactly.
    contract_ids = [uuid.UUID(contract["id"]) for contract in rated.contracts]
    timings = {contract_ids[0]: (10.0, True), contract_ids[1]: (60.0, False)}
    timings[contract_ids[2]] = (20.0, True)
    async with app.state.database.write_sessions.begin() as session:
        for contract_id, (seconds, on_time) in timings.items():
            await session.execute(
                update(AgentMetric)
                .where(AgentMetric.contract_id == contract_id)
                .values(execution_seconds=seconds, on_time=on_time)
            )

    fan = await register(client)
    assert (await client.put(f"{FAVORITES}/{agent.id}", headers=fan.headers)).status_code == 201

    profile = await get_json(client, f"{AGENTS}/{agent.id}", fan)
    reputation = await reputation_of(client, agent, world.owner)
    assert profile["id"] == agent.id
    assert profile["name"] == PROFILES["translator"][0]
    assert profile["description"] == PROFILES["translator"][1]
    assert profile["capabilities"] == PROFILES["translator"][2]
    assert profile["category"] == AUTO_CATEGORY["translator"]
    assert price_of(profile) == Decimal(4)
    assert profile["pricing"]["currency"] == "CRD"
    assert profile["endpoint_url"] is None
    assert profile["on_probation"] is False
    assert profile["online"] is False
    assert profile["relevance"] is None
    assert profile["trust_score"] > 0.5
    assert profile["grade"]
    assert profile["level"]
    assert profile["contracts"] == 3
    assert profile["rating_count"] == 3

    assert [badge["badge"] for badge in profile["badges"]] == ["verified"]
    assert profile["badges"][0]["description"]
    assert profile["badges"][0]["earned_at"]

    success = next(
        component["value"]
        for component in reputation["breakdown"]["components"]
        if component["name"] == "success_rate"
    )
    stats = profile["stats"]
    assert stats["contracts"] == 3
    assert stats["counted_outcomes"] == 3
    assert stats["success_rate"] == success == 1.0
    assert profile["success_rate"] == stats["success_rate"]
    assert stats["on_time_rate"] == pytest.approx(0.6667)
    assert stats["median_execution_seconds"] == 20.0
    assert stats["p90_execution_seconds"] == 60.0
    assert stats["earnings"] > 0

    assert profile["ratings"] == {
        "mean": pytest.approx(4.333, abs=0.001),
        "count": 3,
        "distribution": {"1": 0, "2": 0, "3": 1, "4": 0, "5": 2},
    }
    recent = profile["recent_reviews"]
    assert [review["contract_id"] for review in recent] == [
        rated.contracts[2]["id"],
        rated.contracts[1]["id"],
        rated.contracts[0]["id"],
    ]
    assert [review["stars"] for review in recent] == [5, 3, 5]
    assert [review["comment"] for review in recent] == [
        "Flawless German.",
        "Slow, but the French was right.",
        None,
    ]
    assert all(set(review) == REVIEW_FIELDS for review in recent)

    assert profile["favorites"] == 1
    assert profile["is_favorite"] is True
    other = await get_json(client, f"{AGENTS}/{agent.id}", world.requester)
    assert other["is_favorite"] is False
    assert other["favorites"] == 1
    anonymous = await get_json(client, f"{AGENTS}/{agent.id}")
    assert anonymous["is_favorite"] is None
    # An agent is not a user: it has no favourites.
    as_agent = await get_json(client, f"{AGENTS}/{agent.id}", agent)
    assert as_agent["is_favorite"] is None


async def test_profile_of_a_fresh_agent(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    agent = await make_agent(client, owner, "coder", endpoint_url="http://127.0.0.1:9/a2a")
    profile = await get_json(client, f"{AGENTS}/{agent.id}")
    assert profile["pricing"] is None
    assert profile["endpoint_url"] == "http://127.0.0.1:9/a2a"
    assert profile["trust_score"] == 0.5
    assert profile["contracts"] == 0
    assert profile["stats"] == {
        "contracts": 0,
        "counted_outcomes": 0,
        "success_rate": None,
        "on_time_rate": None,
        "median_execution_seconds": None,
        "p90_execution_seconds": None,
        "earnings": 0.0,
    }
    assert profile["ratings"] == {
        "mean": None,
        "count": 0,
        "distribution": {str(stars): 0 for stars in range(1, 6)},
    }
    assert profile["recent_reviews"] == []
    assert profile["favorites"] == 0


async def test_profile_visibility(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_admin(app, client)
    owner = await register(client)
    stranger = await register(client)
    private = await make_agent(client, owner, "bookkeeper", is_public=False)
    paused = await make_agent(client, owner, "coder", status="paused")
    banned = await make_agent(client, owner, "guard")
    await ban_agent(client, admin, banned)

    path = f"{AGENTS}/{private.id}"
    assert_problem(await client.get(path), 404, "agent_not_found")
    assert_problem(await client.get(path, headers=stranger.headers), 404, "agent_not_found")
    assert (await client.get(path, headers=owner.headers)).status_code == 200
    assert (await client.get(path, headers=private.headers)).status_code == 200
    assert (await client.get(path, headers=admin.headers)).status_code == 200
    assert_problem(
        await client.get(f"{path}/reviews", headers=stranger.headers), 404, "agent_not_found"
    )

    # A paused agent's page stays reachable; a banned agent's is gone for everyone.
    assert (await client.get(f"{AGENTS}/{paused.id}")).status_code == 200
    for viewer in (None, owner, admin):
        headers = viewer.headers if viewer is not None else None
        assert_problem(
            await client.get(f"{AGENTS}/{banned.id}", headers=headers), 404, "agent_not_found"
        )

    unknown = f"{AGENTS}/{uuid.uuid4()}"
    assert_problem(await client.get(unknown), 404, "agent_not_found")
    assert_problem(await client.get(f"{unknown}/reviews"), 404, "agent_not_found")
    assert_problem(await client.get(f"{AGENTS}/not-a-uuid"), 422, "validation_error")


# ---- reviews ----


async def test_reviews_pages_filter_and_summary(app: FastAPI, client: httpx.AsyncClient) -> None:
    rated = await rated_agent(app, client)
    path = f"{AGENTS}/{rated.agent.id}/reviews"
    newest_first = [rated.contracts[2]["id"], rated.contracts[1]["id"], rated.contracts[0]["id"]]
    summary = {
        "mean": pytest.approx(4.333, abs=0.001),
        "count": 3,
        "distribution": {"1": 0, "2": 0, "3": 1, "4": 0, "5": 2},
    }

    everything = await get_json(client, path)
    assert [review["contract_id"] for review in everything["items"]] == newest_first
    assert (everything["limit"], everything["offset"], everything["total"]) == (20, 0, 3)
    assert everything["summary"] == summary

    first = await get_json(client, path, limit=2)
    second = await get_json(client, path, limit=2, offset=2)
    assert [review["contract_id"] for review in first["items"] + second["items"]] == newest_first
    assert first["total"] == second["total"] == 3
    assert (await get_json(client, path, offset=3))["items"] == []

    five = await get_json(client, path, stars=5)
    assert [review["contract_id"] for review in five["items"]] == [newest_first[0], newest_first[2]]
    assert five["total"] == 2
    # The summary describes all the agent's ratings, whatever the filter.
    assert five["summary"] == summary
    three = await get_json(client, path, stars=3)
    assert [review["comment"] for review in three["items"]] == ["Slow, but the French was right."]
    assert (await get_json(client, path, stars=1))["total"] == 0
    assert_problem(await client.get(path, params={"stars": 6}), 422, "validation_error")
    assert_problem(await client.get(path, params={"limit": 0}), 422, "validation_error")

    # Reviewers are not named: no rater, requester or user id anywhere in the payload.
    response = await client.get(path, headers=rated.market.owner.headers)
    assert response.status_code == 200
    for review in response.json()["items"]:
        assert set(review) == REVIEW_FIELDS
    for secret in (rated.market.requester.id, rated.market.requester.email):
        assert secret not in response.text
    profile = await client.get(f"{AGENTS}/{rated.agent.id}")
    assert rated.market.requester.id not in profile.text


# ---- categories ----


async def test_categories_count_visible_active_agents(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_admin(app, client)
    owner = await register(client)
    await make_agent(client, owner, "translator")
    await make_agent(client, owner, "bookkeeper")
    coder = await make_agent(client, owner, "coder")
    await patch_agent(client, owner, coder, category="finance")
    await make_agent(client, owner, "guard", is_public=False)
    await make_agent(client, owner, "painter", status="paused")
    banned = await make_agent(client, owner, "translator")
    await ban_agent(client, admin, banned)

    anonymous = await get_json(client, CATEGORIES)
    assert [category["slug"] for category in anonymous] == list(CATEGORY_SLUGS)
    assert len(anonymous) == 10
    assert all(category["name"] and category["description"] for category in anonymous)
    counts = {category["slug"]: category["agents"] for category in anonymous}
    expected = dict.fromkeys(CATEGORY_SLUGS, 0)
    expected.update({"natural-language": 1, "finance": 2})
    assert counts == expected

    mine = {
        category["slug"]: category["agents"]
        for category in await get_json(client, CATEGORIES, owner)
    }
    assert mine == {**expected, "security": 1}
    stranger = await register(client)
    theirs = await get_json(client, CATEGORIES, stranger)
    assert {category["slug"]: category["agents"] for category in theirs} == expected


# ---- featured ----


class TestFeatured:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {**LEXICAL_ONLY, "trust_leaderboard_min_outcomes": 2}

    async def test_top_rated_trending_and_newest(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        world = await market(app, client)
        seasoned = await make_agent(client, world.owner, "translator")
        veteran = await make_agent(client, world.owner, "bookkeeper")
        novice = await make_agent(client, world.owner, "coder")
        idle = await make_agent(client, world.owner, "painter")
        await settle_many(client, world.requester, seasoned, 2, "translate", rating=5)
        await settle_many(client, world.requester, veteran, 2, "bookkeeping")
        await settle_many(client, world.requester, novice, 1, "code-review")
        hidden = await make_agent(client, world.owner, "guard", is_public=False)
        # The veteran's contracts are older than a week: not trending any more.
        async with app.state.database.write_sessions.begin() as session:
            await session.execute(
                update(AgentMetric)
                .where(AgentMetric.agent_id == uuid.UUID(veteran.id))
                .values(created_at=utcnow() - timedelta(days=8))
            )
            recent = await session.scalars(
                select(AgentMetric.agent_id).where(
                    AgentMetric.created_at >= utcnow() - timedelta(days=7)
                )
            )
            assert uuid.UUID(veteran.id) not in set(recent)

        body = await get_json(client, FEATURED)
        assert set(body) == {"top_rated", "trending", "newest"}
        top = body["top_rated"]
        # At least two counted outcomes; the novice has one and the idle agent none.
        assert {item["id"] for item in top} == {seasoned.id, veteran.id}
        assert top == sorted(top, key=lambda item: sort_key("trust", item))
        assert top[0]["id"] == seasoned.id
        assert [item["id"] for item in body["trending"]] == [seasoned.id, novice.id]
        assert [item["id"] for item in body["newest"]] == [
            idle.id,
            novice.id,
            veteran.id,
            seasoned.id,
        ]

        # The owner also sees the private agent.
        mine = await get_json(client, FEATURED, world.owner)
        assert [item["id"] for item in mine["newest"]] == [
            hidden.id,
            *[item["id"] for item in body["newest"]],
        ]
        assert mine["top_rated"] == body["top_rated"]

        finance = await get_json(client, FEATURED, category="finance")
        assert [item["id"] for item in finance["top_rated"]] == [veteran.id]
        assert finance["trending"] == []
        assert [item["id"] for item in finance["newest"]] == [veteran.id]

        limited = await get_json(client, FEATURED, limit=1)
        assert [len(limited[key]) for key in ("top_rated", "trending", "newest")] == [1, 1, 1]
        assert_problem(await client.get(FEATURED, params={"limit": 21}), 422, "validation_error")
        assert_problem(
            await client.get(FEATURED, params={"category": "nope"}), 422, "validation_error"
        )


async def test_top_rated_uses_the_default_minimum(app: FastAPI, client: httpx.AsyncClient) -> None:
    world = await market(app, client)
    agent = await make_agent(client, world.owner, "translator")
    await finish_contract(client, world.requester, agent, capability="translate")
    body = await get_json(client, FEATURED)
    # One outcome is fewer than the default five.
    assert body["top_rated"] == []
    assert [item["id"] for item in body["trending"]] == [agent.id]


# ---- compare ----


async def test_compare(app: FastAPI, client: httpx.AsyncClient) -> None:
    world = await market(app, client)
    owner = world.owner
    worker = await make_agent(client, owner, "translator", pricing={"base_price": 4})
    await finish_contract(client, world.requester, worker, capability="translate", rating=4)
    coder = await make_agent(client, owner, "coder", pricing={"base_price": 1.25})
    painter = await make_agent(client, owner, "painter")
    order = [coder.id, worker.id, painter.id]

    response = await client.post(COMPARE, json={"agent_ids": order})
    assert response.status_code == 200, response.text
    compared = response.json()["agents"]
    assert [agent["id"] for agent in compared] == order
    by_id = {agent["id"]: agent for agent in compared}
    assert price_of(by_id[coder.id]) == Decimal("1.25")
    assert by_id[painter.id]["pricing"] is None
    for agent in compared:
        assert {component["name"] for component in agent["trust_components"]} == TRUST_COMPONENTS
        assert set(agent["stats"]) >= {"success_rate", "on_time_rate", "median_execution_seconds"}
        assert set(agent["ratings"]) == {"mean", "count", "distribution"}
        assert agent["category"]
        assert agent["grade"]
        assert agent["online"] is False
    translator = by_id[worker.id]
    assert translator["stats"]["contracts"] == 1
    assert translator["stats"]["success_rate"] == 1.0
    assert translator["stats"]["on_time_rate"] == 1.0
    assert translator["stats"]["median_execution_seconds"] is not None
    assert translator["ratings"]["count"] == 1
    assert translator["ratings"]["distribution"]["4"] == 1
    assert translator["trust_score"] > by_id[coder.id]["trust_score"] == 0.5
    success = next(c for c in translator["trust_components"] if c["name"] == "success_rate")
    assert success["value"] == 1.0
    assert success["weight"] > 0
    assert by_id[coder.id]["stats"]["contracts"] == 0

    # Signed in, the result is the same.
    signed_in = await client.post(COMPARE, json={"agent_ids": order}, headers=owner.headers)
    assert signed_in.status_code == 200
    assert [agent["id"] for agent in signed_in.json()["agents"]] == order


async def test_compare_validation_and_visibility(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    stranger = await register(client)
    first = await make_agent(client, owner, "translator")
    second = await make_agent(client, owner, "coder")
    private = await make_agent(client, owner, "bookkeeper", is_public=False)

    for agent_ids in ([first.id], [], [str(uuid.uuid4()) for _ in range(11)]):
        response = await client.post(COMPARE, json={"agent_ids": agent_ids})
        assert_problem(response, 422, "validation_error")
    assert_problem(
        await client.post(COMPARE, json={"agent_ids": [first.id, second.id, first.id]}),
        422,
        "validation_error",
    )
    assert_problem(await client.post(COMPARE, json={}), 422, "validation_error")

    ten = [first.id, second.id, *[str(uuid.uuid4()) for _ in range(8)]]
    assert_problem(await client.post(COMPARE, json={"agent_ids": ten}), 404, "agent_not_found")
    assert_problem(
        await client.post(COMPARE, json={"agent_ids": [first.id, str(uuid.uuid4())]}),
        404,
        "agent_not_found",
    )
    with_private = {"agent_ids": [first.id, private.id]}
    assert_problem(await client.post(COMPARE, json=with_private), 404, "agent_not_found")
    assert_problem(
        await client.post(COMPARE, json=with_private, headers=stranger.headers),
        404,
        "agent_not_found",
    )
    mine = await client.post(COMPARE, json=with_private, headers=owner.headers)
    assert mine.status_code == 200, mine.text

    # Ten visible agents are allowed.
    many = [await make_agent(client, owner, "painter") for _ in range(8)]
    allowed = [first.id, second.id, *[agent.id for agent in many]]
    response = await client.post(COMPARE, json={"agent_ids": allowed})
    assert response.status_code == 200, response.text
    assert [agent["id"] for agent in response.json()["agents"]] == allowed


# ---- favourites ----


async def test_favorites_add_list_remove(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    user = await register(client)
    first = await make_agent(client, owner, "translator")
    second = await make_agent(client, owner, "coder")

    added = await client.put(f"{FAVORITES}/{first.id}", headers=user.headers)
    assert added.status_code == 201, added.text
    assert added.json()["agent"]["id"] == first.id
    again = await client.put(f"{FAVORITES}/{first.id}", headers=user.headers)
    assert again.status_code == 200, again.text
    assert again.json()["created_at"] == added.json()["created_at"]
    assert (await client.put(f"{FAVORITES}/{second.id}", headers=user.headers)).status_code == 201

    page = await get_json(client, FAVORITES, user)
    assert [favorite["agent"]["id"] for favorite in page["items"]] == [second.id, first.id]
    assert page["total"] == 2
    assert page["items"][0]["created_at"] >= page["items"][1]["created_at"]
    paged = await get_json(client, FAVORITES, user, limit=1, offset=1)
    assert [favorite["agent"]["id"] for favorite in paged["items"]] == [first.id]
    assert paged["total"] == 2

    removed = await client.delete(f"{FAVORITES}/{first.id}", headers=user.headers)
    assert removed.status_code == 204, removed.text
    assert_problem(
        await client.delete(f"{FAVORITES}/{first.id}", headers=user.headers),
        404,
        "favorite_not_found",
    )
    assert_problem(
        await client.delete(f"{FAVORITES}/{uuid.uuid4()}", headers=user.headers),
        404,
        "favorite_not_found",
    )
    page = await get_json(client, FAVORITES, user)
    assert [favorite["agent"]["id"] for favorite in page["items"]] == [second.id]
    assert page["total"] == 1
    assert_problem(
        await client.put(f"{FAVORITES}/{uuid.uuid4()}", headers=user.headers),
        404,
        "agent_not_found",
    )


async def test_favorites_are_for_signed_in_users(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    agent = await make_agent(client, owner, "translator")
    path = f"{FAVORITES}/{agent.id}"
    for method, url in (("GET", FAVORITES), ("PUT", path), ("DELETE", path)):
        assert_problem(await client.request(method, url), 401, "not_authenticated")
        assert_problem(
            await client.request(method, url, headers=agent.headers), 403, "user_required"
        )
        response = await client.request(method, url, headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401


async def test_favorites_follow_visibility_and_belong_to_their_user(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_admin(app, client)
    owner = await register(client)
    user = await register(client)
    other = await register(client)
    private = await make_agent(client, owner, "bookkeeper", is_public=False)
    fading = await make_agent(client, owner, "translator")
    doomed = await make_agent(client, owner, "guard")
    kept = await make_agent(client, owner, "coder")

    assert_problem(
        await client.put(f"{FAVORITES}/{private.id}", headers=user.headers), 404, "agent_not_found"
    )
    # The owner may favourite their own private agent.
    assert (await client.put(f"{FAVORITES}/{private.id}", headers=owner.headers)).status_code == 201
    for agent in (kept, fading, doomed):
        response = await client.put(f"{FAVORITES}/{agent.id}", headers=user.headers)
        assert response.status_code == 201, response.text

    page = await get_json(client, FAVORITES, user)
    assert [favorite["agent"]["id"] for favorite in page["items"]] == [
        doomed.id,
        fading.id,
        kept.id,
    ]

    await patch_agent(client, owner, fading, is_public=False)
    await ban_agent(client, admin, doomed)
    page = await get_json(client, FAVORITES, user)
    assert [favorite["agent"]["id"] for favorite in page["items"]] == [kept.id]
    assert page["total"] == 1

    # Someone else's favourites are their own.
    assert (await get_json(client, FAVORITES, other))["items"] == []
    assert (await get_json(client, FAVORITES, other))["total"] == 0
    mine = await get_json(client, FAVORITES, owner)
    assert [favorite["agent"]["id"] for favorite in mine["items"]] == [private.id]
    assert_problem(
        await client.delete(f"{FAVORITES}/{kept.id}", headers=other.headers),
        404,
        "favorite_not_found",
    )
    assert (await get_json(client, f"{AGENTS}/{kept.id}", other))["is_favorite"] is False
    assert (await get_json(client, FAVORITES, user))["total"] == 1

    # Visible again, the favourite is back.
    await patch_agent(client, owner, fading, is_public=True)
    page = await get_json(client, FAVORITES, user)
    assert [favorite["agent"]["id"] for favorite in page["items"]] == [fading.id, kept.id]


# ---- anonymous access ----


async def test_anonymous_visitors_can_browse_everything(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    first = await make_agent(client, owner, "translator")
    second = await make_agent(client, owner, "bookkeeper")
    for path, params in (
        (AGENTS, {}),
        (AGENTS, {"q": "translation"}),
        (AGENTS, {"sort": "price", "category": "finance"}),
        (f"{AGENTS}/{first.id}", {}),
        (f"{AGENTS}/{first.id}/reviews", {}),
        (CATEGORIES, {}),
        (FEATURED, {}),
    ):
        response = await client.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
    response = await client.post(COMPARE, json={"agent_ids": [first.id, second.id]})
    assert response.status_code == 200, response.text
    response = await client.post(
        COMPARE,
        json={"agent_ids": [first.id, second.id]},
        headers={"Authorization": "Bearer nope"},
    )
    assert response.status_code == 401


# ---- bugs ----


async def test_price_cursor_past_unpriced_agents(
    request: pytest.FixtureRequest, backend: str, client: httpx.AsyncClient
) -> None:
    owner = await register(client)
    priced = await make_agent(client, owner, "translator", pricing={"base_price": 1})
    unpriced = [await make_agent(client, owner, kind) for kind in ("coder", "painter", "guard")]
    walked, pages = await walk(client, sort="price", limit=1)
    assert [item["id"] for item in walked] == [priced.id, *sorted(a.id for a in unpriced)]
    assert pages == 4


async def test_max_price_up_to_the_documented_ceiling(
    request: pytest.FixtureRequest, backend: str, client: httpx.AsyncClient
) -> None:
    owner = await register(client)
    agent = await make_agent(client, owner, "translator", pricing={"base_price": 1})
    assert await listed_ids(client, max_price=21474836.47) == [agent.id]
    assert await listed_ids(client, max_price=1_000_000_000) == [agent.id]


async def test_forged_cursor_with_an_out_of_range_value_is_422(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    await make_agent(client, owner, "translator", pricing={"base_price": 1})
    forged = encode_cursor({"sort": "price", "value": 10**30, "id": str(uuid.uuid4())})
    response = await client.get(AGENTS, params={"sort": "price", "cursor": forged})
    assert_problem(response, 422, "invalid_cursor")
