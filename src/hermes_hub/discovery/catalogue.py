"""The marketplace catalogue: listing, profiles, reviews, categories, featured agents,
comparison and favourites. Reads only, apart from favourites."""

from __future__ import annotations

import math
import statistics
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.discovery.models import AgentSearchDoc, Favorite
from hermes_hub.discovery.schemas import (
    AgentProfile,
    BadgeSummary,
    CatalogueAgent,
    CatalogueSort,
    ComparedAgent,
    CompareResponse,
    FavoriteOut,
    FeaturedOut,
    PerformanceStats,
    RatingSummary,
    ReviewOut,
    ReviewPage,
    TrustComponentOut,
)
from hermes_hub.discovery.service import (
    Discovery,
    Filters,
    Viewer,
    effective_category,
    filter_condition,
    search,
    visible_condition,
)
from hermes_hub.errors import HubError
from hermes_hub.identity.errors import AgentNotFoundError
from hermes_hub.identity.models import Agent, AgentStatus, User
from hermes_hub.identity.schemas import pricing_of
from hermes_hub.kit.money import credits_to_units, units_to_credits
from hermes_hub.kit.pagination import Page
from hermes_hub.kit.text import clean_text
from hermes_hub.kit.time import utcnow
from hermes_hub.mesh.models import AgentMetric
from hermes_hub.trust import formula
from hermes_hub.trust.levels import level_for
from hermes_hub.trust.models import Rating, TrustBadge, TrustScore

Online = Callable[[Sequence[uuid.UUID]], Awaitable[set[uuid.UUID]]]

# A text query selects at most this many agents, the most relevant; sorting and paging
# happen within them.
MAX_QUERY_MATCHES = 200
RECENT_REVIEWS = 5
# A forged cursor may say anything; past the matches a page is just empty.
MAX_CURSOR_OFFSET = 1_000_000
LATENCY_SAMPLE = 1000
TRENDING_DAYS = 7
# Price sort puts agents without a list price last.
_NO_PRICE = 2**62


class BadQueryError(HubError):
    status = 422
    code = "invalid_query"


def clean_query(q: str | None) -> str | None:
    if q is None:
        return None
    try:
        cleaned = clean_text(q, allow_joiner=True)
    except ValueError as exc:
        raise BadQueryError(f"q {exc}.") from exc
    return cleaned or None


def price_units_of(max_price: float | None) -> int | None:
    if max_price is None:
        return None
    try:
        return credits_to_units(Decimal(str(max_price)))
    except (ValueError, InvalidOperation) as exc:
        raise HubError(
            "max_price has at most 2 decimal places.", status=422, code="invalid_price"
        ) from exc


def _success_rate(score: TrustScore | None) -> float | None:
    return formula.success_rate_of(score.breakdown) if score is not None else None


async def catalogue_items(
    session: AsyncSession,
    agents: Sequence[Agent],
    *,
    online: Online,
    relevance: dict[uuid.UUID, tuple[float, str]] | None = None,
) -> list[CatalogueAgent]:
    if not agents:
        return []
    ids = [agent.id for agent in agents]
    rows = await session.execute(
        select(Agent.id, TrustScore, effective_category())
        .outerjoin(TrustScore, TrustScore.agent_id == Agent.id)
        .outerjoin(AgentSearchDoc, AgentSearchDoc.agent_id == Agent.id)
        .where(Agent.id.in_(ids))
    )
    extra = {agent_id: (score, category) for agent_id, score, category in rows}
    present = await online(ids)
    items = []
    for agent in agents:
        score, category = extra.get(agent.id, (None, None))
        trust = score.trust if score is not None else formula.PRIOR
        matched = relevance.get(agent.id) if relevance else None
        items.append(
            CatalogueAgent(
                id=agent.id,
                name=agent.name,
                description=agent.description,
                capabilities=agent.capabilities,
                category=category,
                pricing=pricing_of(agent.base_price_units, agent.price_currency),
                organization_id=agent.organization_id,
                trust_score=trust,
                grade=score.grade if score is not None else formula.grade_for(trust),
                level=score.level if score is not None else level_for(trust).value,
                contracts=score.total_outcomes if score is not None else 0,
                success_rate=_success_rate(score),
                mean_rating=score.mean_rating if score is not None else None,
                rating_count=score.rating_count if score is not None else 0,
                online=agent.id in present,
                created_at=agent.created_at,
                relevance=round(matched[0], 4) if matched else None,
                why=matched[1] if matched else None,
            )
        )
    return items


def _trust_key() -> ColumnElement[Any]:
    return func.coalesce(TrustScore.trust, formula.PRIOR)


def _contracts_key() -> ColumnElement[Any]:
    return func.coalesce(TrustScore.total_outcomes, 0)


def _price_key() -> ColumnElement[Any]:
    return func.coalesce(Agent.base_price_units, _NO_PRICE)


async def browse_page(
    session: AsyncSession,
    *,
    viewer: Viewer,
    filters: Filters,
    sort: CatalogueSort,
    position: dict[str, Any] | None,
    limit: int,
    online: Online,
) -> tuple[list[CatalogueAgent], dict[str, Any] | None]:
    """Keyset pages over every visible active agent passing the filters."""
    key, descending = {
        CatalogueSort.TRUST: (_trust_key(), True),
        CatalogueSort.CONTRACTS: (_contracts_key(), True),
        CatalogueSort.PRICE: (_price_key(), False),
    }[sort]
    query = (
        select(Agent, key.label("sort_key"))
        .outerjoin(TrustScore, TrustScore.agent_id == Agent.id)
        .outerjoin(AgentSearchDoc, AgentSearchDoc.agent_id == Agent.id)
        .where(filter_condition(session, viewer, filters))
    )
    if position is not None:
        value, after = _keyset(position)
        beyond = key < value if descending else key > value
        query = query.where(or_(beyond, and_(key == value, Agent.id > after)))
    query = query.order_by(key.desc() if descending else key.asc(), Agent.id).limit(limit + 1)
    rows = (await session.execute(query)).all()
    page = rows[:limit]
    items = await catalogue_items(session, [agent for agent, _ in page], online=online)
    if len(rows) <= limit:
        return items, None
    last_agent, last_value = page[-1]
    return items, {"value": last_value, "id": str(last_agent.id)}


def _keyset(position: dict[str, Any]) -> tuple[float | int, uuid.UUID]:
    value = position.get("value")
    try:
        after = uuid.UUID(str(position.get("id")))
    except ValueError as exc:
        raise HubError("The cursor is malformed.", status=422, code="invalid_cursor") from exc
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or abs(value) > _NO_PRICE
    ):
        raise HubError("The cursor is malformed.", status=422, code="invalid_cursor")
    return value, after


async def search_page(
    session: AsyncSession,
    discovery: Discovery,
    *,
    viewer: Viewer,
    query: str,
    filters: Filters,
    sort: CatalogueSort,
    position: dict[str, Any] | None,
    limit: int,
    online: Online,
) -> tuple[list[CatalogueAgent], dict[str, Any] | None]:
    """Discovery's matches for ``query``, sorted as asked, paged by offset within them."""
    offset = 0
    if position is not None:
        offset = position.get("offset", -1)
        if (
            isinstance(offset, bool)
            or not isinstance(offset, int)
            or not 0 <= offset <= MAX_CURSOR_OFFSET
        ):
            raise HubError("The cursor is malformed.", status=422, code="invalid_cursor")
    result = await search(
        session,
        discovery,
        viewer=viewer,
        query=query,
        filters=filters,
        limit=MAX_QUERY_MATCHES,
        online=online,
    )
    hits = result.hits
    if sort is CatalogueSort.TRUST:
        hits.sort(key=lambda hit: (-hit.trust_value, str(hit.agent.id)))
    elif sort is CatalogueSort.CONTRACTS:
        hits.sort(
            key=lambda hit: (-(hit.trust.total_outcomes if hit.trust else 0), str(hit.agent.id))
        )
    elif sort is CatalogueSort.PRICE:
        hits.sort(
            key=lambda hit: (
                hit.agent.base_price_units if hit.agent.base_price_units is not None else _NO_PRICE,
                str(hit.agent.id),
            )
        )
    page = hits[offset : offset + limit]
    items = await catalogue_items(
        session,
        [hit.agent for hit in page],
        online=online,
        relevance={hit.agent.id: (hit.relevance.relevance, hit.why) for hit in page},
    )
    more = offset + limit < len(hits)
    return items, ({"offset": offset + limit} if more else None)


async def visible_agent(session: AsyncSession, agent_id: uuid.UUID, viewer: Viewer) -> Agent:
    """The agent if the viewer may see it in the catalogue (banned agents are gone)."""
    agent = await session.scalar(
        select(Agent).where(
            Agent.id == agent_id,
            Agent.status != AgentStatus.BANNED.value,
            visible_condition(viewer),
        )
    )
    if agent is None:
        raise AgentNotFoundError("No such agent.")
    return agent


async def rating_summary(session: AsyncSession, agent_id: uuid.UUID) -> RatingSummary:
    rows = (
        await session.execute(
            select(Rating.stars, func.count())
            .where(Rating.agent_id == agent_id)
            .group_by(Rating.stars)
        )
    ).all()
    distribution = {str(stars): 0 for stars in range(1, 6)}
    for stars, count in rows:
        distribution[str(stars)] = int(count)
    count = sum(distribution.values())
    mean = (
        round(sum(int(stars) * n for stars, n in distribution.items()) / count, 3)
        if count
        else None
    )
    return RatingSummary(mean=mean, count=count, distribution=distribution)


def _review_out(rating: Rating) -> ReviewOut:
    return ReviewOut(
        contract_id=rating.contract_id,
        stars=rating.stars,
        quality=rating.quality,
        speed=rating.speed,
        communication=rating.communication,
        comment=rating.comment,
        created_at=rating.created_at,
        updated_at=rating.updated_at,
    )


async def reviews(
    session: AsyncSession, agent_id: uuid.UUID, *, stars: int | None, limit: int, offset: int
) -> ReviewPage:
    condition = Rating.agent_id == agent_id
    if stars is not None:
        condition = and_(condition, Rating.stars == stars)
    total = await session.scalar(select(func.count()).select_from(Rating).where(condition)) or 0
    ratings = await session.scalars(
        select(Rating)
        .where(condition)
        .order_by(Rating.created_at.desc(), Rating.id)
        .limit(limit)
        .offset(offset)
    )
    return ReviewPage(
        items=[_review_out(rating) for rating in ratings],
        limit=limit,
        offset=offset,
        total=total,
        summary=await rating_summary(session, agent_id),
    )


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def performance(
    session: AsyncSession, agent_id: uuid.UUID, score: TrustScore | None
) -> PerformanceStats:
    """Headline numbers; latency and punctuality from the latest outcomes."""
    rows = (
        await session.execute(
            select(AgentMetric.execution_seconds, AgentMetric.on_time)
            .where(AgentMetric.agent_id == agent_id)
            .order_by(AgentMetric.created_at.desc())
            .limit(LATENCY_SAMPLE)
        )
    ).all()
    seconds = [float(value) for value, _ in rows if value is not None]
    earned = score.earned_units if score is not None else 0
    return PerformanceStats(
        contracts=score.total_outcomes if score is not None else 0,
        counted_outcomes=score.counted_outcomes if score is not None else 0,
        success_rate=_success_rate(score),
        on_time_rate=(
            round(sum(1 for _, on_time in rows if on_time) / len(rows), 4) if rows else None
        ),
        median_execution_seconds=statistics.median(seconds) if seconds else None,
        p90_execution_seconds=_percentile(seconds, 0.9),
        earnings=float(units_to_credits(earned)),
    )


async def profile(
    session: AsyncSession, agent: Agent, *, user_id: uuid.UUID | None, online: Online
) -> AgentProfile:
    [item] = await catalogue_items(session, [agent], online=online)
    score = await session.get(TrustScore, agent.id)
    badges = await session.scalars(
        select(TrustBadge)
        .where(TrustBadge.agent_id == agent.id)
        .order_by(TrustBadge.earned_at, TrustBadge.badge)
    )
    recent = await session.scalars(
        select(Rating)
        .where(Rating.agent_id == agent.id)
        .order_by(Rating.created_at.desc(), Rating.id)
        .limit(RECENT_REVIEWS)
    )
    favorites = (
        await session.scalar(
            select(func.count()).select_from(Favorite).where(Favorite.agent_id == agent.id)
        )
        or 0
    )
    is_favorite = None
    if user_id is not None:
        is_favorite = await session.get(Favorite, (user_id, agent.id)) is not None
    return AgentProfile(
        **item.model_dump(),
        endpoint_url=agent.endpoint_url,
        on_probation=score.on_probation if score is not None else False,
        badges=[
            BadgeSummary(
                badge=badge.badge,
                description=formula.BADGE_DESCRIPTIONS.get(badge.badge, ""),
                earned_at=badge.earned_at,
            )
            for badge in badges
        ],
        stats=await performance(session, agent.id, score),
        ratings=await rating_summary(session, agent.id),
        recent_reviews=[_review_out(rating) for rating in recent],
        favorites=favorites,
        is_favorite=is_favorite,
    )


async def category_counts(session: AsyncSession, viewer: Viewer) -> dict[str, int]:
    category = effective_category()
    rows = await session.execute(
        select(category, func.count())
        .select_from(Agent)
        .outerjoin(AgentSearchDoc, AgentSearchDoc.agent_id == Agent.id)
        .where(Agent.status == AgentStatus.ACTIVE.value, visible_condition(viewer))
        .group_by(category)
    )
    return {slug: int(count) for slug, count in rows if slug is not None}


async def featured(
    session: AsyncSession,
    viewer: Viewer,
    *,
    category: str | None,
    limit: int,
    min_outcomes: int,
    online: Online,
) -> FeaturedOut:
    condition = filter_condition(session, viewer, Filters(category=category))
    base = (
        select(Agent)
        .outerjoin(TrustScore, TrustScore.agent_id == Agent.id)
        .outerjoin(AgentSearchDoc, AgentSearchDoc.agent_id == Agent.id)
        .where(condition)
    )
    top_rated = await session.scalars(
        base.where(func.coalesce(TrustScore.counted_outcomes, 0) >= min_outcomes)
        .order_by(_trust_key().desc(), Agent.id)
        .limit(limit)
    )
    since = utcnow() - timedelta(days=TRENDING_DAYS)
    recent_contracts = (
        select(AgentMetric.agent_id, func.count().label("contracts"))
        .where(AgentMetric.created_at >= since)
        .group_by(AgentMetric.agent_id)
        .subquery()
    )
    trending = await session.scalars(
        base.join(recent_contracts, recent_contracts.c.agent_id == Agent.id)
        .order_by(recent_contracts.c.contracts.desc(), Agent.id)
        .limit(limit)
    )
    newest = await session.scalars(base.order_by(Agent.created_at.desc(), Agent.id).limit(limit))
    return FeaturedOut(
        top_rated=await catalogue_items(session, list(top_rated), online=online),
        trending=await catalogue_items(session, list(trending), online=online),
        newest=await catalogue_items(session, list(newest), online=online),
    )


async def compare(
    session: AsyncSession, agents: Sequence[Agent], *, online: Online
) -> CompareResponse:
    items = await catalogue_items(session, agents, online=online)
    compared = []
    for agent, item in zip(agents, items, strict=True):
        score = await session.get(TrustScore, agent.id)
        components = (score.breakdown or {}).get("components", []) if score is not None else []
        compared.append(
            ComparedAgent(
                id=agent.id,
                name=agent.name,
                category=item.category,
                capabilities=agent.capabilities,
                pricing=item.pricing,
                trust_score=item.trust_score,
                grade=item.grade,
                level=item.level,
                trust_components=[
                    TrustComponentOut(
                        name=str(component.get("name")),
                        weight=float(component.get("weight", 0.0)),
                        value=component.get("value"),
                    )
                    for component in components
                ],
                stats=await performance(session, agent.id, score),
                ratings=await rating_summary(session, agent.id),
                online=item.online,
            )
        )
    return CompareResponse(agents=compared)


async def favorites(
    session: AsyncSession, user: User, *, limit: int, offset: int, online: Online
) -> Page[FavoriteOut]:
    condition = and_(
        Favorite.user_id == user.id,
        Agent.status != AgentStatus.BANNED.value,
        visible_condition(Viewer(user_id=user.id)),
    )
    total = (
        await session.scalar(
            select(func.count())
            .select_from(Favorite)
            .join(Agent, Agent.id == Favorite.agent_id)
            .where(condition)
        )
        or 0
    )
    rows = (
        await session.execute(
            select(Agent, Favorite.created_at)
            .join(Favorite, Favorite.agent_id == Agent.id)
            .where(condition)
            .order_by(Favorite.created_at.desc(), Agent.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    items = await catalogue_items(session, [agent for agent, _ in rows], online=online)
    return Page(
        items=[
            FavoriteOut(agent=item, created_at=created_at)
            for item, (_, created_at) in zip(items, rows, strict=True)
        ],
        limit=limit,
        offset=offset,
        total=total,
    )


async def add_favorite(session: AsyncSession, user: User, agent: Agent) -> tuple[Favorite, bool]:
    existing = await session.get(Favorite, (user.id, agent.id))
    if existing is not None:
        return existing, False
    favorite = Favorite(user_id=user.id, agent_id=agent.id, created_at=utcnow())
    session.add(favorite)
    await session.flush()
    return favorite, True


async def remove_favorite(session: AsyncSession, user: User, agent_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(Favorite).where(Favorite.user_id == user.id, Favorite.agent_id == agent_id)
    )
    return bool(getattr(result, "rowcount", 0))
