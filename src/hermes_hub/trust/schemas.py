"""Request and response bodies of the trust endpoints."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

from hermes_hub.kit.schemas import InputModel, not_bool

# Strict: "5" and 5.0 are not star counts.
StarCount = Annotated[int, BeforeValidator(not_bool), Field(strict=True, ge=1, le=5)]


class RatingFields(InputModel):
    stars: StarCount
    quality: StarCount | None = None
    speed: StarCount | None = None
    communication: StarCount | None = None
    comment: str | None = Field(default=None, max_length=5000)


class RatingCreate(RatingFields):
    contract_id: uuid.UUID


class RatingOut(BaseModel):
    id: uuid.UUID
    contract_id: uuid.UUID
    agent_id: uuid.UUID
    stars: int
    quality: int | None
    speed: int | None
    communication: int | None
    comment: str | None
    created_at: datetime
    updated_at: datetime
    editable_until: datetime


class TrustScoreOut(BaseModel):
    agent_id: uuid.UUID
    trust_score: float
    grade: str
    level: str
    on_probation: bool
    computed_at: datetime | None


class BadgeOut(BaseModel):
    badge: str
    description: str
    earned_at: datetime


class ReputationStats(BaseModel):
    contracts: int = Field(description="Finished contracts measured, counted or not.")
    counted_outcomes: int = Field(description="Outcomes that give trust credit.")
    success_rate: float | None
    mean_rating: float | None
    rating_count: int
    earnings: float
    earnings_units: int


class ReputationOut(TrustScoreOut):
    breakdown: dict[str, Any]
    badges: list[BadgeOut]
    stats: ReputationStats


class TrustPoint(BaseModel):
    day: date
    trust_score: float
    grade: str
    counted_outcomes: int


class TrustHistoryOut(BaseModel):
    agent_id: uuid.UUID
    points: list[TrustPoint]


class OutcomeOut(BaseModel):
    contract_id: uuid.UUID | None = Field(
        description="Shown to the agent's owner, its organization and admins only."
    )
    capability: str | None
    outcome: str
    success: bool
    validation_score: float
    on_time: bool
    execution_seconds: float | None
    promised_seconds: int | None
    rating: int | None
    counts_for_trust: bool
    excluded_reason: str | None
    created_at: datetime


class LeaderboardRow(BaseModel):
    rank: int
    agent_id: uuid.UUID
    name: str
    capabilities: list[str]
    trust_score: float
    grade: str
    level: str
    counted_outcomes: int
    contracts: int
    earnings: float
    earnings_units: int


class LeaderboardOut(BaseModel):
    by: str
    period: str
    capability: str | None
    min_outcomes_for_trust: int
    cached: bool
    items: list[LeaderboardRow]


class FlagOut(BaseModel):
    id: uuid.UUID
    kind: str
    status: str
    subject_agent_id: uuid.UUID | None
    accounts: list[str]
    agent_ids: list[str]
    contracts_held_back: int
    detail: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    resolved_by: uuid.UUID | None
    resolution_note: str | None


class FlagResolution(InputModel):
    decision: Literal["confirm", "dismiss"]
    note: str | None = Field(default=None, max_length=5000)


class BanRequest(InputModel):
    reason: str = Field(min_length=1, max_length=5000)


class ScanOut(BaseModel):
    trades: int
    findings: int
    new_flags: int
    contracts_held_back: int
    raters_down_weighted: int
    agents_recomputed: int


class RecomputeRequest(InputModel):
    agent_ids: list[uuid.UUID] | None = Field(default=None, max_length=10_000)


class RecomputeOut(BaseModel):
    agents_recomputed: int
