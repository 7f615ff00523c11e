"""Trust tables: current scores, badges, daily history, ratings, integrity flags and bans."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from hermes_hub.db.base import Base, PortableJSON, UUIDPrimaryKey
from hermes_hub.kit.time import utcnow


class TrustScore(Base):
    """An agent's current published trust and what it was computed from."""

    __tablename__ = "trust_scores"
    __table_args__ = (Index("ix_trust_scores_trust", "trust"),)

    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    trust: Mapped[float] = mapped_column(Float)
    raw: Mapped[float | None] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(4))
    level: Mapped[str] = mapped_column(String(16))
    effective_outcomes: Mapped[float] = mapped_column(Float, default=0.0)
    counted_outcomes: Mapped[int] = mapped_column(Integer, default=0)
    total_outcomes: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    mean_rating: Mapped[float | None] = mapped_column(Float)
    earned_units: Mapped[int] = mapped_column(BigInteger, default=0)
    on_probation: Mapped[bool] = mapped_column(Boolean, default=False)
    breakdown: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrustBadge(Base):
    __tablename__ = "trust_badges"

    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    badge: Mapped[str] = mapped_column(String(32), primary_key=True)
    earned_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrustDaily(Base):
    """The last score of each UTC day, for charts."""

    __tablename__ = "trust_daily"

    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    trust: Mapped[float] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(4))
    counted_outcomes: Mapped[int] = mapped_column(Integer, default=0)


class Rating(UUIDPrimaryKey, Base):
    """The requester's rating of a settled contract: one per contract."""

    __tablename__ = "trust_ratings"

    contract_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mesh_contracts.id", ondelete="CASCADE"), unique=True
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    rater_owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    rater_ref: Mapped[str] = mapped_column(String(80))
    stars: Mapped[int] = mapped_column(SmallInteger)
    quality: Mapped[int | None] = mapped_column(SmallInteger)
    speed: Mapped[int | None] = mapped_column(SmallInteger)
    communication: Mapped[int | None] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    editable_until: Mapped[datetime]


class RaterWeight(Base):
    """How much a rater's ratings count (1 unless they are consistent outliers)."""

    __tablename__ = "trust_rater_weights"

    rater_owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    weight: Mapped[float] = mapped_column(Float)
    compared_ratings: Mapped[int] = mapped_column(Integer)
    mean_deviation: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrustFlag(UUIDPrimaryKey, Base):
    """A suspicion raised by the integrity scan (or a re-enrollment of a banned agent).

    While a flag is open or confirmed, its contracts give no trust credit; a dismissed flag
    gives them back. A whitewash flag puts its agent on probation (capped at the prior).
    """

    __tablename__ = "trust_flags"
    __table_args__ = (Index("ix_trust_flags_status", "status", "created_at"),)

    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    fingerprint: Mapped[str] = mapped_column(String(128), unique=True)
    subject_agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    accounts: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    agent_ids: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    resolution_note: Mapped[str | None] = mapped_column(Text)


class FlaggedContract(Base):
    __tablename__ = "trust_flagged_contracts"

    flag_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("trust_flags.id", ondelete="CASCADE"), primary_key=True
    )
    contract_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mesh_contracts.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class AgentBan(UUIDPrimaryKey, Base):
    """A banned agent's identity, remembered so a re-enrollment cannot wash it clean."""

    __tablename__ = "trust_agent_bans"

    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), unique=True
    )
    public_key: Mapped[str] = mapped_column(String(64), index=True)
    name_key: Mapped[str] = mapped_column(String(100), index=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    banned_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    banned_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrustJobRun(Base):
    """When a periodic trust job last ran, so several workers run it once a day."""

    __tablename__ = "trust_job_runs"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_run_on: Mapped[date | None] = mapped_column(Date)
    finished_at: Mapped[datetime | None]
    summary: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
