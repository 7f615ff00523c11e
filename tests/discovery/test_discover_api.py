"""POST /api/v1/agents/discover end to end, on both backends: ranking, filters, who sees
what, anonymous use, bad input, lexical-only mode and keeping the index current."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.discovery import ranking
from hermes_hub.discovery.categories import CATEGORY_SLUGS
from hermes_hub.discovery.engine import SemanticMode, pgvector_literal, to_bytes
from hermes_hub.discovery.models import (
    PGVECTOR_COLUMN,
    AgentSearchDoc,
    AgentSearchTerm,
    DiscoveryState,
)
from hermes_hub.discovery.service import (
    MAX_CANDIDATES,
    Discovery,
    Filters,
    Viewer,
    reindex,
    search,
)
from hermes_hub.discovery.text import terms
from hermes_hub.identity.models import Agent
from hermes_hub.trust.formula import PRIOR
from hermes_hub.trust.models import TrustScore
from tests.discovery.helpers import (
    DISCOVER,
    add_member,
    ban_agent,
    create_org,
    discover,
    enroll_indexed,
    make_admin,
    result_ids,
)
from tests.events.conftest import eventually, open_socket, receive, serve
from tests.factories import TestAgent, TestUser, assert_problem, register

AGENT_WS = "/api/v1/ws/agent"

# Unrelated neighbours, so that no test ranks a lone agent.
NEIGHBOURS: tuple[tuple[str, str, list[str]], ...] = (
    (
        "Ledgerly",
        "Bookkeeping and invoice reconciliation for small businesses.",
        ["bookkeeping"],
    ),
    (
        "Lintwise",
        "Reviews Python pull requests and suggests refactorings.",
        ["code-review"],
    ),
    (
        "Cutout",
        "Removes backgrounds from product photos for online shops.",
        ["background-removal"],
    ),
)


async def enroll_neighbours(client: httpx.AsyncClient, owner: TestUser) -> list[TestAgent]:
    return [
        await enroll_indexed(client, owner, name=name, description=text, capabilities=tags)
        for name, text, tags in NEIGHBOURS
    ]


async def search_doc(app: FastAPI, agent: TestAgent) -> AgentSearchDoc | None:
    async with app.state.database.read_sessions() as session:
        document: AgentSearchDoc | None = await session.get(AgentSearchDoc, uuid.UUID(agent.id))
        return document


async def indexed_terms(app: FastAPI, agent: TestAgent) -> set[str]:
    async with app.state.database.read_sessions() as session:
        rows = await session.scalars(
            select(AgentSearchTerm.term).where(AgentSearchTerm.agent_id == uuid.UUID(agent.id))
        )
        return set(rows)


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["id"]: result for result in body["results"]}


# ---- ranking ----


async def test_a_paraphrase_finds_the_right_agent(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    travel = await enroll_indexed(
        client,
        owner,
        name="Wayfarer",
        description=(
            "Trip coordination: flights, hotels and itineraries, holiday packages planned "
            "end to end."
        ),
        capabilities=["trip-planning", "travel-booking"],
        pricing={"base_price": 12.5},
    )
    await enroll_neighbours(client, owner)

    body = await discover(client, "I need help with my vacation", owner.headers)

    assert body["semantic_search"] is True
    assert body["mode"] in {"in-process", "pgvector"}
    assert body["query"] == "I need help with my vacation"
    assert body["limit"] == 10
    first = body["results"][0]
    assert first["id"] == travel.id
    assert first["name"] == "Wayfarer"
    assert first["capabilities"] == ["trip-planning", "travel-booking"]
    assert first["pricing"] == {"base_price": 12.5, "currency": "CRD"}
    assert first["category"] in CATEGORY_SLUGS
    assert first["trust_score"] == PRIOR
    assert first["grade"]
    assert first["online"] is False
    assert first["organization_id"] is None
    assert 0 < first["relevance"] <= 1
    assert first["semantic"] > 0
    # No word in common: the match is by meaning alone.
    assert first["lexical"] == 0
    assert first["why"].startswith("close in meaning to")
    expected_score = first["relevance"] * (ranking.BASE + ranking.W_TRUST * PRIOR)
    assert first["score"] == pytest.approx(expected_score, abs=1e-3)
    scores = [result["score"] for result in body["results"]]
    assert scores == sorted(scores, reverse=True)


async def test_an_exact_capability_tag_wins_and_is_named(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    tagged = await enroll_indexed(
        client,
        owner,
        name="Docsmith",
        description="Turns scanned paperwork into structured data.",
        capabilities=["pdf-extraction"],
    )
    similar = await enroll_indexed(
        client,
        owner,
        name="Paper Reader",
        description="Extracts text and tables from PDF documents.",
        capabilities=["document-parsing"],
    )
    await enroll_neighbours(client, owner)

    for query in ("pdf-extraction", "I want PDF extraction for my contracts"):
        body = await discover(client, query, owner.headers)
        results = by_id(body)
        assert result_ids(body)[0] == tagged.id, body
        assert results[tagged.id]["why"] == "capability 'pdf-extraction' named in the query"
        assert results[tagged.id]["relevance"] > results[similar.id]["relevance"]
        assert "named in the query" not in results[similar.id]["why"]


async def add_hidden_agents(
    session: AsyncSession,
    owner: TestUser,
    count: int,
    *,
    name: str,
    description: str,
    **document: Any,
) -> list[Agent]:
    """``count`` private agents of ``owner`` whose search documents (``document``'s columns)
    are written directly, at revisions past the current one, without embedding anything."""
    revision = await session.scalar(select(DiscoveryState.revision).where(DiscoveryState.id == 1))
    assert revision is not None
    hidden = [
        Agent(
            owner_id=uuid.UUID(owner.id),
            name=f"{name} {index}",
            description=description,
            public_key=base64.b64encode(os.urandom(32)).decode(),
            is_public=False,
        )
        for index in range(count)
    ]
    session.add_all(hidden)
    await session.flush()
    session.add_all(
        AgentSearchDoc(agent_id=agent.id, facets=[], revision=revision + offset, **document)
        for offset, agent in enumerate(hidden, start=1)
    )
    await session.execute(
        update(DiscoveryState).where(DiscoveryState.id == 1).values(revision=revision + count)
    )
    await session.flush()
    return hidden


async def test_a_visible_agent_is_found_behind_many_closer_hidden_ones(
    client: httpx.AsyncClient, app: FastAPI, backend: str, request: pytest.FixtureRequest
) -> None:
    owner = await register(client)
    hidden_owner = await register(client)
    travel = await enroll_indexed(
        client,
        owner,
        name="Wayfarer",
        description="Trip coordination: flights, hotels and itineraries, holiday packages.",
        capabilities=["trip-planning"],
    )
    query = "I need help with my vacation"
    assert result_ids(await discover(client, query)) == [travel.id]

    # Private agents of another owner whose vectors are the query's own: closer than any.
    discovery = app.state.discovery
    vector = await discovery.embedder.query(query)
    async with app.state.database.writer() as session:
        template = await session.get(AgentSearchDoc, uuid.UUID(travel.id))
        assert template is not None
        await add_hidden_agents(
            session,
            hidden_owner,
            MAX_CANDIDATES,
            name="Hidden",
            description="Private.",
            content_hash=template.content_hash,
            model=template.model,
            embedding=to_bytes(vector),
            auto_category=template.auto_category,
            length=template.length,
        )
        if discovery.mode is SemanticMode.PGVECTOR:
            await session.execute(
                text(
                    f"UPDATE agent_search_docs SET {PGVECTOR_COLUMN} = CAST(:vector AS vector) "  # noqa: S608 - a constant column name
                    "WHERE agent_id <> :travel"
                ),
                {"vector": pgvector_literal(vector), "travel": uuid.UUID(travel.id)},
            )
        await session.commit()
    discovery.index.invalidate()

    for headers in (None, owner.headers):
        assert result_ids(await discover(client, query, headers)) == [travel.id]
    assert len(result_ids(await discover(client, query, hidden_owner.headers, limit=50))) == 50


# ---- filters ----


async def survey_agents(
    client: httpx.AsyncClient, owner: TestUser, count: int, **fields: Any
) -> list[TestAgent]:
    """Agents that all match the query "quokka habitat survey"."""
    return [
        await enroll_indexed(
            client,
            owner,
            name=f"Quokka surveyor {index}",
            description="Quokka habitat survey reports for island councils.",
            capabilities=["quokka-survey"],
            **fields,
        )
        for index in range(count)
    ]


SURVEY = "quokka habitat survey"


async def test_max_price_keeps_agents_without_a_price(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    cheap, dear, unpriced = await survey_agents(client, owner, 3)
    for agent, price in ((cheap, 5), (dear, 50)):
        response = await client.patch(
            f"/api/v1/agents/{agent.id}",
            json={"pricing": {"base_price": price}},
            headers=owner.headers,
        )
        assert response.status_code == 200, response.text

    assert set(result_ids(await discover(client, SURVEY, owner.headers))) == {
        cheap.id,
        dear.id,
        unpriced.id,
    }
    body = await discover(client, SURVEY, owner.headers, max_price=10)
    assert set(result_ids(body)) == {cheap.id, unpriced.id}
    assert by_id(body)[unpriced.id]["pricing"] is None
    assert set(result_ids(await discover(client, SURVEY, owner.headers, max_price=5))) == {
        cheap.id,
        unpriced.id,
    }
    assert result_ids(await discover(client, SURVEY, owner.headers, max_price=4.99)) == [
        unpriced.id
    ]


async def test_min_reputation(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await register(client)
    trusted, newcomer = await survey_agents(client, owner, 2)
    async with app.state.database.writer() as session:
        changed = await session.execute(
            update(TrustScore).where(TrustScore.agent_id == uuid.UUID(trusted.id)).values(trust=0.9)
        )
        assert changed.rowcount == 1  # enrollment gave it the prior
        await session.commit()

    everyone = await discover(client, SURVEY, owner.headers, min_reputation=PRIOR)
    assert set(result_ids(everyone)) == {trusted.id, newcomer.id}
    # Equal relevance: trust decides.
    assert result_ids(everyone)[0] == trusted.id
    body = await discover(client, SURVEY, owner.headers, min_reputation=0.8)
    assert result_ids(body) == [trusted.id]
    assert body["results"][0]["trust_score"] == 0.9
    assert result_ids(await discover(client, SURVEY, owner.headers, min_reputation=1)) == []


async def test_organization_filter(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    org = await create_org(client, owner)
    [inside] = await survey_agents(client, owner, 1, organization_id=org["id"])
    [outside] = await survey_agents(client, owner, 1)

    assert set(result_ids(await discover(client, SURVEY, owner.headers))) == {
        inside.id,
        outside.id,
    }
    body = await discover(client, SURVEY, owner.headers, organization_id=org["id"])
    assert result_ids(body) == [inside.id]
    assert body["results"][0]["organization_id"] == org["id"]

    for headers in (owner.headers, None):
        response = await client.post(
            DISCOVER,
            json={"query": SURVEY, "organization_id": str(uuid.uuid4())},
            headers=headers,
        )
        assert_problem(response, 404, "organization_not_found")


async def test_available_now_keeps_agents_with_an_open_socket(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    connected, idle = await survey_agents(client, owner, 2)
    async with serve(app) as base, open_socket(base + AGENT_WS, connected.api_key) as socket:
        assert (await receive(socket))["type"] == "hello"
        everyone = by_id(await discover(client, SURVEY, owner.headers))
        assert everyone[connected.id]["online"] is True
        assert everyone[idle.id]["online"] is False
        body = await discover(client, SURVEY, owner.headers, available_now=True)
        assert result_ids(body) == [connected.id]
        assert body["results"][0]["online"] is True

    async def nobody_available() -> bool:
        body = await discover(client, SURVEY, owner.headers, available_now=True)
        return body["results"] == []

    # Once the socket is closed (the server notices a moment later) nobody is available.
    await eventually(nobody_available)


# ---- who sees what ----


async def test_private_paused_and_banned_agents(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await register(client)
    member = await register(client)
    admin = await register(client)
    stranger = await register(client)
    await make_admin(app, admin)
    org = await create_org(client, owner)
    await add_member(client, owner, org, member)
    [public] = await survey_agents(client, owner, 1)
    [private] = await survey_agents(client, owner, 1, organization_id=org["id"], is_public=False)
    [paused] = await survey_agents(client, owner, 1, status="paused")
    [banned] = await survey_agents(client, owner, 1)
    await ban_agent(client, admin, banned)
    [strangers_agent] = await survey_agents(client, stranger, 1)

    def visible(body: dict[str, Any]) -> set[str]:
        return set(result_ids(body)) & {public.id, private.id, paused.id, banned.id}

    for viewer in (owner, member, admin):
        assert visible(await discover(client, SURVEY, viewer.headers)) == {public.id, private.id}
    for headers in (stranger.headers, strangers_agent.headers, None):
        assert visible(await discover(client, SURVEY, headers)) == {public.id}
    # An agent of the organization sees its private colleague; the private agent sees itself.
    [colleague] = await survey_agents(client, owner, 1, organization_id=org["id"])
    for viewer_agent in (colleague, private):
        assert visible(await discover(client, SURVEY, viewer_agent.headers)) == {
            public.id,
            private.id,
        }
    # Resuming brings the paused agent back.
    response = await client.patch(
        f"/api/v1/agents/{paused.id}", json={"status": "active"}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    assert paused.id in result_ids(await discover(client, SURVEY))


# ---- anonymous use ----


async def test_anonymous_and_bad_credentials(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    [agent] = await survey_agents(client, owner, 1)
    response = await client.post(DISCOVER, json={"query": SURVEY})
    assert response.status_code == 200, response.text
    assert result_ids(response.json()) == [agent.id]

    for token in ("not-a-token", "hhk_unknown"):
        response = await client.post(
            DISCOVER, json={"query": SURVEY}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] in {"invalid_token", "invalid_api_key"}


class TestAnonymousRateLimit:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"rate_limit_anonymous": "3/minute"}

    async def test_anonymous_requests_are_limited_per_ip(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        owner = await register(client)
        for _ in range(3):
            response = await client.post(DISCOVER, json={"query": SURVEY})
            assert response.status_code == 200, response.text
        limited = await client.post(DISCOVER, json={"query": SURVEY})
        body = assert_problem(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 1
        assert body["retry_after"] >= 1
        # The catalogue shares the anonymous budget.
        assert_problem(await client.get("/api/v1/marketplace/agents"), 429, "rate_limited")
        # Signed-in callers are not counted against it.
        response = await client.post(DISCOVER, json={"query": SURVEY}, headers=owner.headers)
        assert response.status_code == 200, response.text
        # Another address has its own budget.
        transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            response = await other.post(DISCOVER, json={"query": SURVEY})
            assert response.status_code == 200, response.text


# ---- bad input ----


async def post_raw(client: httpx.AsyncClient, text: str, headers: dict[str, str]) -> httpx.Response:
    """POST a body given as JSON text, for what httpx cannot encode (lone surrogates)."""
    return await client.post(
        DISCOVER,
        content=text.encode(),
        headers={**headers, "Content-Type": "application/json"},
    )


async def test_bad_input_is_a_422_problem_never_a_500(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    await survey_agents(client, owner, 1)
    bad_bodies: list[Any] = [
        {},
        {"query": ""},
        {"query": "   \n\t "},
        {"query": "x" * 10_000},
        {"query": "word " * 200 + "x"},  # 1,001 characters
        {"query": None},
        {"query": 42},
        {"query": ["quokka"]},
        {"query": "bell \u0007 character"},
        {"query": "nul \u0000 character"},
        {"query": "right-to-left \u202e override"},
        {"query": SURVEY, "limit": 0},
        {"query": SURVEY, "limit": -5},
        {"query": SURVEY, "limit": True},
        {"query": SURVEY, "limit": 2.5},
        {"query": SURVEY, "limit": "ten"},
        {"query": SURVEY, "min_reputation": True},
        {"query": SURVEY, "min_reputation": 1.5},
        {"query": SURVEY, "min_reputation": -0.1},
        {"query": SURVEY, "max_price": True},
        {"query": SURVEY, "max_price": 1.234},
        {"query": SURVEY, "max_price": -1},
        {"query": SURVEY, "max_price": "NaN"},
        {"query": SURVEY, "max_price": "Infinity"},
        {"query": SURVEY, "organization_id": "not-a-uuid"},
        {"query": SURVEY, "available_now": "sometimes"},
        {"query": SURVEY, "unknown": 1},
        {"query": SURVEY, "capability": "quokka-survey"},
        ["not", "an", "object"],
        "just a string",
    ]
    for bad in bad_bodies:
        response = await client.post(DISCOVER, json=bad, headers=owner.headers)
        assert_problem(response, 422, "validation_error")
    raw_bodies = [
        '{"query": "lone \\ud800 surrogate"}',
        '{"query": "\\udfff"}',
        '{"query": "quokka", "limit": 5',  # truncated JSON
        "",
    ]
    for raw in raw_bodies:
        response = await post_raw(client, raw, owner.headers)
        assert_problem(response, 422, "validation_error")
    # Anonymous callers get the same answers.
    assert_problem(await client.post(DISCOVER, json={"query": ""}), 422, "validation_error")


async def test_odd_but_valid_queries(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    [agent] = await survey_agents(client, owner, 1)
    for query in (
        "🧳✈️🏖️",
        "🦘",
        "Ã©Ã¨ mojibake",
        "'; DROP TABLE agents; --",
        "% _ \\ quokka",
        "квокка 袋鼠 quokka",
        "word " * 199 + "x",  # 996 characters after stripping: within the limit
        "the and of to",  # stopwords only
    ):
        body = await discover(client, query, owner.headers)
        assert isinstance(body["results"], list)
    body = await discover(client, "% _ \\ quokka", owner.headers)
    assert result_ids(body)[0] == agent.id
    # Surrounding spaces are trimmed, and the response says which query ran.
    assert (await discover(client, "  quokka  ", owner.headers))["query"] == "quokka"


async def test_an_emoji_sequence_with_a_zero_width_joiner_is_a_query(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    query = "\U0001f469\u200d\U0001f4bb developer"
    body = await discover(client, query, owner.headers)
    assert body["query"] == query
    assert isinstance(body["results"], list)


async def test_limit_is_lowered_to_fifty(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    agents = await survey_agents(client, owner, 3)
    body = await discover(client, SURVEY, owner.headers, limit=10_000)
    assert body["limit"] == 50
    assert len(body["results"]) == 3
    body = await discover(client, SURVEY, owner.headers, limit=2)
    assert body["limit"] == 2
    assert len(body["results"]) == 2
    assert set(result_ids(body)) <= {agent.id for agent in agents}
    assert (await discover(client, SURVEY, owner.headers))["limit"] == 10


# ---- lexical-only mode ----


class TestLexicalOnly:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"semantic_search": False}

    async def test_readyz_says_semantic_search_is_off(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/readyz")
        assert response.status_code == 200, response.text
        discovery = response.json()["checks"]["discovery"]
        assert discovery["ok"] is True
        assert discovery["semantic_search"] is False
        assert discovery["mode"] == "off"
        assert discovery["model"] is None
        assert "HERMES_SEMANTIC_SEARCH" in discovery["reason"]

    async def test_discovery_works_lexically(self, client: httpx.AsyncClient) -> None:
        owner = await register(client)
        travel = await enroll_indexed(
            client,
            owner,
            name="Wayfarer",
            description="Trip coordination: flights, hotels and itineraries.",
            capabilities=["trip-planning"],
        )
        neighbours = await enroll_neighbours(client, owner)

        body = await discover(client, "hotels for a trip", owner.headers)
        assert body["semantic_search"] is False
        assert body["mode"] == "lexical"
        assert result_ids(body) == [travel.id]
        [result] = body["results"]
        assert result["semantic"] == 0
        assert result["lexical"] == 1
        assert result["relevance"] == pytest.approx(1 - ranking.W_TAG)
        assert result["category"] in CATEGORY_SLUGS
        assert "trip" in result["why"] or "hotel" in result["why"]

        # A capability tag named in full.
        body = await discover(client, "background removal", owner.headers)
        assert result_ids(body)[0] == neighbours[2].id
        assert body["results"][0]["why"] == "capability 'background-removal' named in the query"
        assert body["results"][0]["relevance"] == pytest.approx(1.0)
        # Without a shared word nothing is found: there is no meaning to fall back on.
        assert (await discover(client, "I need help with my vacation", owner.headers))[
            "results"
        ] == []

    async def test_a_singular_query_finds_a_plural_description(
        self, client: httpx.AsyncClient
    ) -> None:
        owner = await register(client)
        await enroll_neighbours(client, owner)
        matcher = await enroll_indexed(
            client,
            owner,
            name="Matcher",
            description="Matches supplier invoices against purchase orders.",
            capabilities=["purchasing"],
        )
        assert matcher.id in result_ids(await discover(client, "invoice"))

    async def test_a_long_agent_is_reindexed_when_its_last_tag_changes(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        # Lexical-only: the bug is in the document hash, and embedding this agent costs seconds.
        owner = await register(client)
        tags = [f"{index:02d}" + "a" * 62 for index in range(63)]
        agent = await enroll_indexed(
            client, owner, name="Long", description="x" * 4000, capabilities=[*tags, "ocr"]
        )
        response = await client.patch(
            f"/api/v1/agents/{agent.id}",
            json={"capabilities": [*tags, "translate"]},
            headers=owner.headers,
        )
        assert response.status_code == 200, response.text
        assert "translat" in await indexed_terms(app, agent)


# ---- keeping the index current ----


async def test_patching_the_description_reindexes(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await register(client)
    agent = await enroll_indexed(
        client,
        owner,
        name="Workshop",
        description="Restores antique clocks and pocket watches.",
        capabilities=["repairs"],
    )
    await enroll_neighbours(client, owner)
    before = await search_doc(app, agent)
    assert before is not None
    assert {"antiqu", "clock"} <= await indexed_terms(app, agent)
    assert result_ids(await discover(client, "antique clocks", owner.headers))[0] == agent.id

    response = await client.patch(
        f"/api/v1/agents/{agent.id}",
        json={"description": "Tunes grand pianos and harpsichords."},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text

    after = await search_doc(app, agent)
    assert after is not None
    assert after.content_hash != before.content_hash
    assert after.revision > before.revision
    terms = await indexed_terms(app, agent)
    assert {"piano", "harpsichord"} <= terms
    assert not {"antiqu", "clock"} & terms
    found = by_id(await discover(client, "grand pianos", owner.headers))
    assert found[agent.id]["lexical"] == 1
    assert found[agent.id]["relevance"] == max(r["relevance"] for r in found.values())
    old = by_id(await discover(client, "antique clocks", owner.headers))
    # The old words are gone; only a faint similarity in meaning may remain.
    assert agent.id not in old or old[agent.id]["lexical"] == 0


async def test_patching_only_the_price_keeps_the_document(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    [agent] = await survey_agents(client, owner, 1)
    before = await search_doc(app, agent)
    assert before is not None
    for change in (
        {"pricing": {"base_price": 7}},
        {"pricing": None},
        {"is_public": False},
        {"max_calls_per_hour": 10},
        {"status": "paused"},
        {"status": "active"},
        {"metadata": {"note": "no agent card here"}},
    ):
        response = await client.patch(
            f"/api/v1/agents/{agent.id}", json=change, headers=owner.headers
        )
        assert response.status_code == 200, response.text
        after = await search_doc(app, agent)
        assert after is not None
        assert (after.content_hash, after.revision, after.updated_at) == (
            before.content_hash,
            before.revision,
            before.updated_at,
        ), change


async def test_an_agent_card_skill_is_searchable(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    agent = await enroll_indexed(
        client,
        owner,
        name="Polyglot",
        description="A general assistant.",
        capabilities=["assistant"],
        metadata={
            "agent_card": {
                "skills": [
                    {
                        "name": "Sanskrit transliteration",
                        "description": "Devanagari to IAST",
                        "tags": ["transliteration"],
                    }
                ]
            }
        },
    )
    await enroll_neighbours(client, owner)
    body = await discover(client, "transliteration", owner.headers)
    assert result_ids(body)[0] == agent.id
    assert "transliteration" in body["results"][0]["why"].lower()


async def test_patching_the_category_overrides_the_automatic_one(
    client: httpx.AsyncClient,
) -> None:
    owner = await register(client)
    [agent] = await survey_agents(client, owner, 1)

    async def category() -> str:
        return str(by_id(await discover(client, SURVEY, owner.headers))[agent.id]["category"])

    automatic = await category()
    assert automatic in CATEGORY_SLUGS
    chosen = "finance" if automatic != "finance" else "security"
    for value, expected in ((chosen, chosen), (None, automatic)):
        response = await client.patch(
            f"/api/v1/agents/{agent.id}", json={"category": value}, headers=owner.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["category"] == value
        assert await category() == expected
    response = await client.patch(
        f"/api/v1/agents/{agent.id}", json={"category": "astrology"}, headers=owner.headers
    )
    assert_problem(response, 422, "validation_error")


async def test_reindex_picks_up_an_agent_created_without_the_api(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    await survey_agents(client, owner, 1)
    async with app.state.database.writer() as session:
        direct = Agent(
            owner_id=uuid.UUID(owner.id),
            name="Imported surveyor",
            description="Wombat burrow survey reports.",
            public_key=base64.b64encode(os.urandom(32)).decode(),
            capabilities=["wombat-survey"],
        )
        session.add(direct)
        await session.commit()
    unindexed = await discover(client, "wombat burrow survey", owner.headers)
    assert str(direct.id) not in result_ids(unindexed)

    assert await reindex(app.state.database, app.state.discovery) == 1
    assert await reindex(app.state.database, app.state.discovery) == 0

    body = await discover(client, "wombat burrow survey", owner.headers)
    assert result_ids(body)[0] == str(direct.id)
    assert body["results"][0]["category"] in CATEGORY_SLUGS


async def test_another_worker_sees_agents_indexed_and_changed_here(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Each worker keeps its own postings (and matrix); it loads what others indexed."""
    other = Discovery(app.state.database, app.state.discovery.settings)
    await other.start()
    owner = await register(client)
    await enroll_neighbours(client, owner)
    # Words no other agent of the database has (PostgreSQL keeps other tests' agents).
    before, after = f"clockzq{uuid.uuid4().hex[:8]}", f"pianozq{uuid.uuid4().hex[:8]}"
    # As the index holds them (stemmed: a final "e" of the random part goes).
    [before_term], [after_term] = terms(before), terms(after)

    async def found(query: str) -> list[str]:
        async with app.state.database.read_sessions() as session:
            result = await search(
                session, other, viewer=Viewer(), query=query, filters=Filters(), limit=5
            )
        return [str(hit.agent.id) for hit in result.hits]

    await found(before)  # the other worker's index is loaded and current
    agent = await enroll_indexed(
        client,
        owner,
        name="Workshop",
        description=f"Restores antique clocks and pocket watches ({before}).",
        capabilities=["repairs"],
    )
    assert other.index.terms.document_frequency(before_term) == 0  # it has not looked yet
    other.index.invalidate()  # as REFRESH_INTERVAL_SECONDS passing would
    assert (await found(f"antique clocks {before}"))[0] == agent.id
    assert other.index.terms.document_frequency(before_term) == 1

    response = await client.patch(
        f"/api/v1/agents/{agent.id}",
        json={"description": f"Tunes grand pianos ({after}).", "capabilities": ["piano-tuning"]},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    other.index.invalidate()
    assert (await found(f"grand piano tuning {after}"))[0] == agent.id
    assert other.index.terms.document_frequency(before_term) == 0
    assert other.index.terms.document_frequency(after_term) == 1
    assert other.index.terms.tags(uuid.UUID(agent.id)) == ("piano-tuning",)


async def test_concurrent_first_writers_recreate_the_revision_row(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The migration creates discovery_state's row; without it, simultaneous enrollments
    must not fail on inserting it twice."""
    owner = await register(client)
    async with app.state.database.writer() as session:
        await session.execute(delete(DiscoveryState))
        await session.commit()
    agents = await asyncio.gather(
        *(
            enroll_indexed(
                client, owner, name=f"Racer {index}", description="Races.", capabilities=["race"]
            )
            for index in range(12)
        )
    )
    async with app.state.database.read_sessions() as session:
        revisions = list(
            await session.scalars(
                select(AgentSearchDoc.revision).where(
                    AgentSearchDoc.agent_id.in_([uuid.UUID(agent.id) for agent in agents])
                )
            )
        )
        state = await session.scalar(select(DiscoveryState.revision))
    assert sorted(revisions) == list(range(1, 13))
    assert state == 12


async def test_lexical_matches_of_hidden_agents_do_not_crowd_out_a_visible_one(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    hidden_owner = await register(client)
    visible = await enroll_indexed(
        client,
        owner,
        name="Fieldnotes",
        description="Ecology surveys of many small marsupials, among them the quokka, "
        "with population counts, habitat maps and detailed seasonal reports.",
        capabilities=["ecology"],
    )
    discovery = app.state.discovery
    async with app.state.database.writer() as session:
        hidden = await add_hidden_agents(
            session,
            hidden_owner,
            MAX_CANDIDATES + 5,
            name="Quokka",
            description="Quokka quokka.",
            content_hash="x",
            model="",
            length=4.0,
        )
        session.add_all(AgentSearchTerm(term="quokka", agent_id=a.id, weight=4.0) for a in hidden)
        await session.commit()
    discovery.index.invalidate()

    for viewer in (Viewer(), Viewer(user_id=uuid.UUID(owner.id))):
        async with app.state.database.read_sessions() as session:
            result = await search(
                session,
                discovery,
                viewer=viewer,
                query="quokka",
                filters=Filters(),
                limit=10,
                use_semantic=False,
            )
        assert [str(hit.agent.id) for hit in result.hits] == [visible.id]
    async with app.state.database.read_sessions() as session:
        result = await search(
            session,
            discovery,
            viewer=Viewer(user_id=uuid.UUID(hidden_owner.id)),
            query="quokka",
            filters=Filters(),
            limit=10,
            use_semantic=False,
        )
    assert len(result.hits) == 10
    assert visible.id not in [str(hit.agent.id) for hit in result.hits]
