from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, field_validator

from hermes_hub.discovery.categories import CATEGORY_SLUGS
from hermes_hub.identity.schemas import CategorySlug, Credits, PricingOut
from hermes_hub.kit.money import credits_to_units
from hermes_hub.kit.schemas import InputModel, not_bool
from hermes_hub.kit.text import clean_text

MAX_QUERY_CHARS = 1000
DEFAULT_RESULTS = 10
# Larger limits are accepted and lowered to this; the response says which limit applied.
MAX_RESULTS = 50
MAX_COMPARE = 10

# The identity schema validates an owner's choice; it must name exactly these categories.
if set(CategorySlug.__args__) != set(CATEGORY_SLUGS):  # type: ignore[attr-defined]
    raise RuntimeError("identity.schemas.CategorySlug and discovery.categories disagree")


def _query_text(value: str) -> str:
    cleaned = clean_text(value, allow_joiner=True)
    if not cleaned:
        raise ValueError("must contain some text")
    return cleaned


QueryText = Annotated[
    str, Field(min_length=1, max_length=MAX_QUERY_CHARS), AfterValidator(_query_text)
]
Score = Annotated[float, BeforeValidator(not_bool), Field(ge=0, le=1)]
Price = Annotated[Credits, BeforeValidator(not_bool), Field(ge=0, le=1_000_000_000)]
Limit = Annotated[int, BeforeValidator(not_bool)]


def price_units(value: Any) -> int | None:
    return None if value is None else credits_to_units(value)


class DiscoverRequest(InputModel):
    query: QueryText
    max_price: Price | None = None
    min_reputation: Score | None = None
    organization_id: uuid.UUID | None = None
    available_now: bool = False
    limit: Limit = Field(
        default=DEFAULT_RESULTS,
        ge=1,
        description=f"At most {MAX_RESULTS}; a larger value is lowered to {MAX_RESULTS}.",
    )

    @field_validator("limit")
    @classmethod
    def _cap_limit(cls, value: int) -> int:
        return min(value, MAX_RESULTS)

    @field_validator("max_price")
    @classmethod
    def _two_decimals(cls, value: Any) -> Any:
        price_units(value)
        return value


class DiscoveredAgent(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    capabilities: list[str]
    category: str | None
    pricing: PricingOut | None
    organization_id: uuid.UUID | None
    relevance: float = Field(description="How well the agent matches the query, 0 to 1.")
    score: float = Field(description="Relevance combined with trust and availability.")
    semantic: float
    lexical: float
    trust_score: float
    grade: str
    online: bool
    why: str = Field(description="What matched: the capability named, or the closest skill.")


class DiscoverResponse(BaseModel):
    query: str
    semantic_search: bool
    mode: str = Field(description="pgvector, in-process or lexical.")
    limit: int
    results: list[DiscoveredAgent]


class CatalogueSort(StrEnum):
    TRUST = "trust"
    PRICE = "price"
    CONTRACTS = "contracts"
    RELEVANCE = "relevance"


class CatalogueAgent(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    capabilities: list[str]
    category: str | None
    pricing: PricingOut | None
    organization_id: uuid.UUID | None
    trust_score: float
    grade: str
    level: str
    contracts: int
    success_rate: float | None
    mean_rating: float | None
    rating_count: int
    online: bool
    created_at: datetime
    relevance: float | None = None
    why: str | None = None


class CataloguePage(BaseModel):
    items: list[CatalogueAgent]
    sort: CatalogueSort
    limit: int
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")


class BadgeSummary(BaseModel):
    badge: str
    description: str
    earned_at: datetime


class ReviewOut(BaseModel):
    contract_id: uuid.UUID
    stars: int
    quality: int | None
    speed: int | None
    communication: int | None
    comment: str | None
    created_at: datetime
    updated_at: datetime


class RatingSummary(BaseModel):
    mean: float | None
    count: int
    distribution: dict[str, int] = Field(description="Number of ratings per star, '1' to '5'.")


class PerformanceStats(BaseModel):
    contracts: int
    counted_outcomes: int
    success_rate: float | None
    on_time_rate: float | None
    median_execution_seconds: float | None
    p90_execution_seconds: float | None
    earnings: float


class AgentProfile(CatalogueAgent):
    endpoint_url: str | None
    on_probation: bool
    badges: list[BadgeSummary]
    stats: PerformanceStats
    ratings: RatingSummary
    recent_reviews: list[ReviewOut]
    favorites: int
    is_favorite: bool | None = Field(description="For a signed-in user; null otherwise.")


class ReviewPage(BaseModel):
    items: list[ReviewOut]
    limit: int
    offset: int
    total: int
    summary: RatingSummary


class CategoryOut(BaseModel):
    slug: str
    name: str
    description: str
    agents: int


class FeaturedOut(BaseModel):
    top_rated: list[CatalogueAgent]
    trending: list[CatalogueAgent]
    newest: list[CatalogueAgent]


class CompareRequest(InputModel):
    agent_ids: list[uuid.UUID] = Field(min_length=2, max_length=MAX_COMPARE)

    @field_validator("agent_ids")
    @classmethod
    def _distinct(cls, value: list[uuid.UUID]) -> list[uuid.UUID]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat an agent")
        return value


class TrustComponentOut(BaseModel):
    name: str
    weight: float
    value: float | None


class ComparedAgent(BaseModel):
    id: uuid.UUID
    name: str
    category: str | None
    capabilities: list[str]
    pricing: PricingOut | None
    trust_score: float
    grade: str
    level: str
    trust_components: list[TrustComponentOut]
    stats: PerformanceStats
    ratings: RatingSummary
    online: bool


class CompareResponse(BaseModel):
    agents: list[ComparedAgent]


class FavoriteOut(BaseModel):
    agent: CatalogueAgent
    created_at: datetime
