"""Mesh tables: contracts, bids, agent outcome metrics and requester preferences."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hermes_hub.db.base import Base, PortableJSON, UUIDPrimaryKey
from hermes_hub.kit.money import DEFAULT_CURRENCY
from hermes_hub.kit.time import utcnow


class Contract(UUIDPrimaryKey, Base):
    __tablename__ = "mesh_contracts"
    __table_args__ = (
        Index("ix_mesh_contracts_created", "created_at", "id"),
        Index("ix_mesh_contracts_status_capability", "status", "capability"),
    )

    # Exactly one of the two requester columns is set; requester_owner_id is the user who
    # answers for the request (the user, or the agent's owner), for self-dealing checks.
    requester_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    requester_agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agents.id", ondelete="RESTRICT"), index=True
    )
    requester_owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT")
    )
    payer_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT")
    )

    intent: Mapped[str] = mapped_column(Text)
    capability: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    output_schema: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    mode: Mapped[str] = mapped_column(String(16))
    complexity: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(8), default=DEFAULT_CURRENCY)
    reward_units: Mapped[int] = mapped_column(BigInteger)
    max_price_units: Mapped[int | None] = mapped_column(BigInteger)
    held_units: Mapped[int] = mapped_column(BigInteger)
    min_reputation: Mapped[float | None] = mapped_column(Float)
    bidding_seconds: Mapped[int] = mapped_column(Integer)
    deadline_seconds: Mapped[int | None] = mapped_column(Integer)
    delivery_window_seconds: Mapped[int] = mapped_column(Integer)

    status: Mapped[str] = mapped_column(String(16))
    # When the scheduler must next look at this contract (bidding closes, delivery deadline,
    # automatic settlement); NULL once nothing is due.
    next_due_at: Mapped[datetime | None] = mapped_column(index=True)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    bidding_closes_at: Mapped[datetime]
    awarded_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    auto_settle_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    awarded_bid_id: Mapped[uuid.UUID | None]
    awarded_agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agents.id", ondelete="RESTRICT"), index=True
    )
    price_units: Mapped[int | None] = mapped_column(BigInteger)
    promised_eta_seconds: Mapped[int | None] = mapped_column(Integer)
    award_report: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)

    delivery: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    auto_validation_score: Mapped[float | None] = mapped_column(Float)
    validation_errors: Mapped[list[str] | None] = mapped_column(PortableJSON)
    validation_score: Mapped[float | None] = mapped_column(Float)
    settled_by: Mapped[str | None] = mapped_column(String(80))
    rating: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)

    dispute_opened_at: Mapped[datetime | None]
    dispute_response: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    dispute_responded_at: Mapped[datetime | None]
    resolution: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    settlement: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)


class Bid(UUIDPrimaryKey, Base):
    __tablename__ = "mesh_bids"
    __table_args__ = (
        UniqueConstraint("contract_id", "agent_id", name="uq_mesh_bids_contract_agent"),
    )

    contract_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mesh_contracts.id", ondelete="CASCADE")
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="RESTRICT"), index=True
    )
    price_units: Mapped[int] = mapped_column(BigInteger)
    eta_seconds: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)
    # placed_at moves when a bid is replaced: a replacement is a new offer, and the earlier
    # offer wins ties.
    placed_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revisions: Mapped[int] = mapped_column(Integer, default=0)


class AgentMetric(UUIDPrimaryKey, Base):
    """One measured outcome per finished contract: what the trust score is computed from."""

    __tablename__ = "mesh_agent_metrics"
    __table_args__ = (Index("ix_mesh_agent_metrics_created", "created_at"),)

    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    contract_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mesh_contracts.id", ondelete="CASCADE"), unique=True
    )
    # "settled" | "failed" | "dispute"
    outcome: Mapped[str] = mapped_column(String(16))
    success: Mapped[bool] = mapped_column(Boolean)
    validation_score: Mapped[float] = mapped_column(Float)
    execution_seconds: Mapped[float | None] = mapped_column(Float)
    promised_seconds: Mapped[int | None] = mapped_column(Integer)
    on_time: Mapped[bool] = mapped_column(Boolean)
    rating: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Denormalized from the contract so trust and leaderboards read one table.
    requester_owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    agent_owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    capability: Mapped[str | None] = mapped_column(String(64))
    earned_units: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Why the outcome gives no trust credit (e.g. "self_dealing"); NULL when it counts.
    excluded_reason: Mapped[str | None] = mapped_column(String(32))


class Preferences(Base):
    """How a requester (a user or an agent) wants bids weighed; one row per principal."""

    __tablename__ = "mesh_preferences"

    owner_ref: Mapped[str] = mapped_column(String(80), primary_key=True)
    price_weight: Mapped[float] = mapped_column(Float)
    performance_weight: Mapped[float] = mapped_column(Float)
    speed_weight: Mapped[float] = mapped_column(Float)
    reputation_weight: Mapped[float] = mapped_column(Float)
    max_price_units: Mapped[int | None] = mapped_column(BigInteger)
    min_confidence: Mapped[float | None] = mapped_column(Float)
    min_reputation: Mapped[float | None] = mapped_column(Float)
    preset: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
