"""Request and response bodies of the mesh API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, model_validator

from hermes_hub.identity.schemas import Capability
from hermes_hub.kit.money import CreditAmount, Credits
from hermes_hub.kit.schemas import FreeJSON, InputModel, JSONObject, not_bool
from hermes_hub.kit.text import clean_text
from hermes_hub.mesh.states import ContractMode, ContractStatus
from hermes_hub.trust.levels import Complexity
from hermes_hub.trust.schemas import StarCount

MAX_WINDOW_SECONDS = 30 * 86_400


Unit = Annotated[float, BeforeValidator(not_bool), Field(ge=0, le=1)]
Weight = Annotated[float, BeforeValidator(not_bool), Field(ge=0, le=100)]
Seconds = Annotated[int, BeforeValidator(not_bool), Field(gt=0, le=MAX_WINDOW_SECONDS)]


def _intent(value: str) -> str:
    cleaned = clean_text(value, multiline=True)
    if not cleaned:
        raise ValueError("intent must not be blank")
    return cleaned


class ContractCreate(InputModel):
    intent: Annotated[str, Field(min_length=1, max_length=10_000), AfterValidator(_intent)]
    capability: Capability
    context: JSONObject | None = None
    reward: CreditAmount
    bidding_seconds: Annotated[int, BeforeValidator(not_bool), Field(ge=1, le=3600)] = 5
    deadline_seconds: Seconds | None = Field(
        default=None, description="Delivery window after award."
    )
    max_price: CreditAmount | None = None
    min_reputation: Unit | None = None
    complexity: Complexity = Complexity.SIMPLE
    mode: ContractMode = ContractMode.AUCTION
    output_schema: JSONObject | None = Field(
        default=None, description="A JSON Schema the delivery is validated against."
    )


class BidCreate(InputModel):
    price: CreditAmount
    eta_seconds: Seconds
    confidence: Unit
    note: str | None = Field(default=None, max_length=2000)


class AwardRequest(InputModel):
    bid_id: uuid.UUID | None = None


class DeliverRequest(InputModel):
    data: FreeJSON


class SettleRequest(InputModel):
    validation_score: Unit
    rating: StarCount | None = None
    comment: str | None = Field(default=None, max_length=5000)


class DisputeResponse(InputModel):
    statement: str = Field(min_length=1, max_length=10_000)
    evidence: FreeJSON = None


class DisputeResolution(InputModel):
    outcome: Literal["refund", "partial", "pay_agent"]
    percent: Annotated[int, BeforeValidator(not_bool), Field(ge=1, le=99)] | None = None
    note: str | None = Field(default=None, max_length=5000)

    @model_validator(mode="after")
    def _percent_for_partial(self) -> DisputeResolution:
        if self.outcome == "partial" and self.percent is None:
            raise ValueError("a partial outcome needs percent (1..99) paid to the agent")
        if self.outcome != "partial" and self.percent is not None:
            raise ValueError("percent is only for a partial outcome")
        return self


class PreferencesIn(InputModel):
    price_weight: Weight
    performance_weight: Weight
    speed_weight: Weight
    reputation_weight: Weight
    max_price: CreditAmount | None = None
    min_confidence: Unit | None = None
    min_reputation: Unit | None = None

    @model_validator(mode="after")
    def _some_weight(self) -> PreferencesIn:
        weights = (
            self.price_weight,
            self.performance_weight,
            self.speed_weight,
            self.reputation_weight,
        )
        if not any(weights):
            raise ValueError("at least one weight must be above zero")
        return self


class PreferencesOut(BaseModel):
    price_weight: float
    performance_weight: float
    speed_weight: float
    reputation_weight: float
    max_price: Credits | None
    min_confidence: float | None
    min_reputation: float | None
    preset: str | None
    normalized: dict[str, float]


class PreviewBid(InputModel):
    label: str | None = Field(default=None, max_length=100)
    price: CreditAmount
    eta_seconds: Seconds
    confidence: Unit
    trust: Unit = 0.5


class PreviewRequest(InputModel):
    contract_id: uuid.UUID | None = None
    bids: list[PreviewBid] | None = Field(default=None, min_length=1, max_length=200)
    reward: CreditAmount | None = None
    deadline_seconds: Seconds | None = None
    preferences: PreferencesIn | None = Field(
        default=None, description="Try these instead of your saved preferences."
    )

    @model_validator(mode="after")
    def _one_source(self) -> PreviewRequest:
        if (self.contract_id is None) == (self.bids is None):
            raise ValueError("send either contract_id or bids")
        if self.bids is not None and self.reward is None:
            raise ValueError("bids need the reward they are priced against")
        if self.contract_id is not None and (
            self.reward is not None or self.deadline_seconds is not None
        ):
            raise ValueError("reward and deadline_seconds come from the contract; omit them")
        return self


class RankingEntry(BaseModel):
    bid_id: str
    agent_id: str | None
    label: str | None = None
    price: float
    price_units: int
    eta_seconds: int
    confidence: float
    trust: float
    components: dict[str, float]
    score: float
    outcome: Literal["won", "lost", "ineligible"]
    reason: str
    rank: int | None


class RankingOut(BaseModel):
    weights: dict[str, float]
    filters: dict[str, Any]
    ranking: list[RankingEntry]
    winner: RankingEntry | None


class BidOut(BaseModel):
    id: uuid.UUID
    contract_id: uuid.UUID
    agent_id: uuid.UUID
    price: Credits
    price_units: int
    eta_seconds: int
    confidence: float
    note: str | None
    placed_at: datetime
    revisions: int


class BidPlaced(BidOut):
    replaced: bool


class PartyOut(BaseModel):
    type: Literal["user", "agent"]
    id: uuid.UUID


class DisputeOut(BaseModel):
    opened_at: datetime | None
    response: dict[str, Any] | None
    responded_at: datetime | None
    resolution: dict[str, Any] | None


class ContractOut(BaseModel):
    id: uuid.UUID
    status: ContractStatus
    mode: ContractMode
    intent: str
    capability: str
    complexity: Complexity
    context: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    reward: Credits
    reward_units: int
    max_price: Credits | None
    min_reputation: float | None
    bidding_seconds: int
    deadline_seconds: int | None
    delivery_window_seconds: int
    requester: PartyOut
    created_at: datetime
    bidding_closes_at: datetime
    awarded_at: datetime | None
    deadline_at: datetime | None
    delivered_at: datetime | None
    auto_settle_at: datetime | None
    closed_at: datetime | None
    bid_count: int
    your_role: list[str] = Field(
        description="How you relate to it: requester, bidder, awarded, admin, or viewer."
    )
    # What follows is shown only to the parties entitled to it (None otherwise).
    held: Credits | None = Field(default=None, description="What escrow holds for it now.")
    bids: list[BidOut] | None = None
    awarded_agent_id: uuid.UUID | None = None
    price: Credits | None = None
    promised_eta_seconds: int | None = None
    award_report: dict[str, Any] | None = None
    delivery: dict[str, Any] | None = None
    auto_validation_score: float | None = None
    validation_errors: list[str] | None = None
    validation_score: float | None = None
    rating: int | None = None
    comment: str | None = None
    settlement: dict[str, Any] | None = None
    dispute: DisputeOut | None = None


class AwardOut(RankingOut):
    contract: ContractOut
    expired: bool


class ContractPage(BaseModel):
    items: list[ContractOut]
    next_cursor: str | None
