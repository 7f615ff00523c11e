"""HTTP routes of discovery and the marketplace catalogue.

Public by design: anonymous visitors (rate limited per IP) see public agents; a signed-in
user or agent also sees the private agents it may call. Thin: parse, call services.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.db.session import DbSession, ReadSession
from hermes_hub.discovery import catalogue
from hermes_hub.discovery.categories import CATEGORIES
from hermes_hub.discovery.schemas import (
    MAX_QUERY_CHARS,
    MAX_RESULTS,
    AgentProfile,
    CataloguePage,
    CatalogueSort,
    CategoryOut,
    CompareRequest,
    CompareResponse,
    DiscoveredAgent,
    DiscoverRequest,
    DiscoverResponse,
    FavoriteOut,
    FeaturedOut,
    ReviewPage,
    price_units,
)
from hermes_hub.discovery.service import Discovery, Filters, Viewer, search
from hermes_hub.errors import HubError
from hermes_hub.events.errors import PresenceUnavailableError
from hermes_hub.identity.deps import CurrentUser, OptionalPrincipal
from hermes_hub.identity.errors import OrganizationNotFoundError
from hermes_hub.identity.models import Organization
from hermes_hub.identity.schemas import CategorySlug, pricing_of
from hermes_hub.kit.pagination import Page
from hermes_hub.trust.formula import grade_for

discover_router = APIRouter(prefix="/api/v1/agents", tags=["discovery"])
marketplace_router = APIRouter(prefix="/api/v1/marketplace", tags=["marketplace"])
compare_router = APIRouter(prefix="/api/v1", tags=["marketplace"])
favorites_router = APIRouter(prefix="/api/v1/users/me/favorites", tags=["marketplace"])

PageSize = Annotated[int, Query(ge=1, le=100)]


def _discovery(request: Request) -> Discovery:
    engine: Discovery = request.app.state.discovery
    return engine


def online_lookup(request: Request, *, required: bool) -> catalogue.Online:
    """Presence is advisory: if Redis is down, agents show offline, unless the caller asked
    for available agents only, which then fails with 503 rather than lie."""
    presence = request.app.state.presence

    async def lookup(agent_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        try:
            found: set[uuid.UUID] = await presence.online(agent_ids)
        except PresenceUnavailableError:
            if required:
                raise
            return set()
        return found

    return lookup


async def _check_organization(session: AsyncSession, organization_id: uuid.UUID | None) -> None:
    if organization_id is not None and await session.get(Organization, organization_id) is None:
        raise OrganizationNotFoundError("No such organization.")


@discover_router.post(
    "/discover",
    response_model=DiscoverResponse,
    operation_id="discover_agents",
    description=(
        "Find agents from a sentence. Semantic similarity (when the embedding model is "
        "installed) is fused with BM25 over names, descriptions and capability tags, then "
        "combined with trust and availability; the formula is in the README. "
        f"`limit` defaults to 10 and is lowered to {MAX_RESULTS}; queries have at most "
        f"{MAX_QUERY_CHARS} characters. Without credentials only public agents are searched, "
        "under a per-IP rate limit."
    ),
)
async def discover_agents(
    # Only reads: a read session keeps searches out of SQLite's one-writer queue.
    body: DiscoverRequest,
    viewer: OptionalPrincipal,
    session: ReadSession,
    request: Request,
) -> DiscoverResponse:
    await _check_organization(session, body.organization_id)
    result = await search(
        session,
        _discovery(request),
        viewer=Viewer.of(viewer),
        query=body.query,
        filters=Filters(
            max_price_units=price_units(body.max_price),
            min_reputation=body.min_reputation,
            organization_id=body.organization_id,
            available_now=body.available_now,
        ),
        limit=body.limit,
        online=online_lookup(request, required=body.available_now),
    )
    return DiscoverResponse(
        query=body.query,
        semantic_search=result.semantic,
        mode=result.mode,
        limit=body.limit,
        results=[
            DiscoveredAgent(
                id=hit.agent.id,
                name=hit.agent.name,
                description=hit.agent.description,
                capabilities=hit.agent.capabilities,
                category=hit.category,
                pricing=pricing_of(hit.agent.base_price_units, hit.agent.price_currency),
                organization_id=hit.agent.organization_id,
                relevance=round(hit.relevance.relevance, 4),
                score=round(hit.score, 4),
                semantic=round(hit.relevance.semantic, 4),
                lexical=round(hit.relevance.lexical, 4),
                trust_score=hit.trust_value,
                grade=hit.trust.grade if hit.trust else grade_for(hit.trust_value),
                online=hit.online,
                why=hit.why,
            )
            for hit in result.hits
        ],
    )


# ---- the catalogue ----


def _encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: CatalogueSort) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursorError("The cursor is not one this endpoint returned.") from exc
    if not isinstance(payload, dict) or payload.get("sort") != sort.value:
        raise InvalidCursorError("The cursor belongs to a different sort order.")
    return payload


class InvalidCursorError(HubError):
    status = 422
    code = "invalid_cursor"


@marketplace_router.get(
    "/agents",
    response_model=CataloguePage,
    operation_id="list_marketplace_agents",
    description=(
        "The catalogue. Filters combine; with `q` the agents are those discovery finds for "
        f"it (at most {catalogue.MAX_QUERY_MATCHES}), sorted by relevance unless `sort` says "
        "otherwise; without `q` every visible active agent, sorted by trust by default. "
        "Page with the returned `next_cursor`."
    ),
)
async def list_marketplace_agents(
    viewer: OptionalPrincipal,
    session: DbSession,
    request: Request,
    q: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
    capability: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    category: CategorySlug | None = None,
    min_trust: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_price: Annotated[float | None, Query(ge=0, le=1_000_000_000)] = None,
    sort: CatalogueSort | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: PageSize = 20,
) -> CataloguePage:
    query = catalogue.clean_query(q)
    chosen = sort or (CatalogueSort.RELEVANCE if query else CatalogueSort.TRUST)
    if chosen is CatalogueSort.RELEVANCE and not query:
        raise HubError(
            "Sorting by relevance needs a search text in q.",
            status=422,
            code="query_required",
        )
    filters = Filters(
        max_price_units=catalogue.price_units_of(max_price),
        min_reputation=min_trust,
        capability=capability,
        category=category,
    )
    position = _decode_cursor(cursor, chosen) if cursor else None
    online = online_lookup(request, required=False)
    if query:
        items, next_position = await catalogue.search_page(
            session,
            _discovery(request),
            viewer=Viewer.of(viewer),
            query=query,
            filters=filters,
            sort=chosen,
            position=position,
            limit=limit,
            online=online,
        )
    else:
        items, next_position = await catalogue.browse_page(
            session,
            viewer=Viewer.of(viewer),
            filters=filters,
            sort=chosen,
            position=position,
            limit=limit,
            online=online,
        )
    return CataloguePage(
        items=items,
        sort=chosen,
        limit=limit,
        next_cursor=(
            _encode_cursor({"sort": chosen.value, **next_position}) if next_position else None
        ),
    )


@marketplace_router.get(
    "/agents/{agent_id}", response_model=AgentProfile, operation_id="get_marketplace_agent"
)
async def get_marketplace_agent(
    agent_id: uuid.UUID, viewer: OptionalPrincipal, session: DbSession, request: Request
) -> AgentProfile:
    """Everything an agent's page shows: profile, price, trust and badges, performance,
    rating summary and the latest reviews."""
    agent = await catalogue.visible_agent(session, agent_id, Viewer.of(viewer))
    return await catalogue.profile(
        session,
        agent,
        user_id=viewer.user.id if viewer is not None and viewer.user is not None else None,
        online=online_lookup(request, required=False),
    )


@marketplace_router.get(
    "/agents/{agent_id}/reviews", response_model=ReviewPage, operation_id="list_agent_reviews"
)
async def list_agent_reviews(
    agent_id: uuid.UUID,
    viewer: OptionalPrincipal,
    session: DbSession,
    stars: Annotated[int | None, Query(ge=1, le=5)] = None,
    limit: PageSize = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ReviewPage:
    """Ratings with their comments, newest first; reviewers are not named."""
    agent = await catalogue.visible_agent(session, agent_id, Viewer.of(viewer))
    return await catalogue.reviews(session, agent.id, stars=stars, limit=limit, offset=offset)


@marketplace_router.get(
    "/categories", response_model=list[CategoryOut], operation_id="list_categories"
)
async def list_categories(viewer: OptionalPrincipal, session: DbSession) -> list[CategoryOut]:
    """The ten categories with how many visible active agents each holds. An agent's
    category is its owner's choice, else the one nearest its description."""
    counts = await catalogue.category_counts(session, Viewer.of(viewer))
    return [
        CategoryOut(
            slug=category.slug,
            name=category.name,
            description=category.description,
            agents=counts.get(category.slug, 0),
        )
        for category in CATEGORIES
    ]


@marketplace_router.get("/featured", response_model=FeaturedOut, operation_id="list_featured")
async def list_featured(
    viewer: OptionalPrincipal,
    session: DbSession,
    request: Request,
    category: CategorySlug | None = None,
    limit: Annotated[int, Query(ge=1, le=20)] = 6,
) -> FeaturedOut:
    """Top rated (highest trust with enough measured outcomes), trending (most contracts in
    the last 7 days) and the newest agents; optionally within one category."""
    return await catalogue.featured(
        session,
        Viewer.of(viewer),
        category=category,
        limit=limit,
        # As many measured outcomes as the leaderboard asks before ranking by trust.
        min_outcomes=_discovery(request).settings.trust_leaderboard_min_outcomes,
        online=online_lookup(request, required=False),
    )


@compare_router.post("/compare", response_model=CompareResponse, operation_id="compare_agents")
async def compare_agents(
    body: CompareRequest, viewer: OptionalPrincipal, session: ReadSession, request: Request
) -> CompareResponse:
    """Two to ten agents side by side: price, trust and its components, success rate,
    latency, punctuality and ratings. An agent the caller may not see is 404."""
    agents = [
        await catalogue.visible_agent(session, agent_id, Viewer.of(viewer))
        for agent_id in body.agent_ids
    ]
    return await catalogue.compare(session, agents, online=online_lookup(request, required=False))


# ---- favourites ----


@favorites_router.get("", response_model=Page[FavoriteOut], operation_id="list_favorites")
async def list_favorites(
    user: CurrentUser,
    session: DbSession,
    request: Request,
    limit: PageSize = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Page[FavoriteOut]:
    """The user's favourite agents that they can still see, most recently added first."""
    return await catalogue.favorites(
        session,
        user,
        limit=limit,
        offset=offset,
        online=online_lookup(request, required=False),
    )


@favorites_router.put(
    "/{agent_id}",
    response_model=FavoriteOut,
    operation_id="add_favorite",
    responses={200: {"description": "Already a favourite."}, 201: {"description": "Added."}},
    status_code=status.HTTP_201_CREATED,
)
async def add_favorite(
    agent_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    request: Request,
    response: Response,
) -> FavoriteOut:
    agent = await catalogue.visible_agent(session, agent_id, Viewer(user_id=user.id))
    favorite, created = await catalogue.add_favorite(session, user, agent)
    if not created:
        response.status_code = status.HTTP_200_OK
    [item] = await catalogue.catalogue_items(
        session, [agent], online=online_lookup(request, required=False)
    )
    return FavoriteOut(agent=item, created_at=favorite.created_at)


@favorites_router.delete(
    "/{agent_id}", status_code=status.HTTP_204_NO_CONTENT, operation_id="remove_favorite"
)
async def remove_favorite(agent_id: uuid.UUID, user: CurrentUser, session: DbSession) -> None:
    removed = await catalogue.remove_favorite(session, user, agent_id)
    if not removed:
        raise HubError(
            "This agent is not among your favourites.", status=404, code="favorite_not_found"
        )


routers = (discover_router, marketplace_router, compare_router, favorites_router)
