from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from hermes_hub.db.base import Base, UUIDPrimaryKey
from hermes_hub.kit.money import DEFAULT_CURRENCY
from hermes_hub.kit.time import utcnow


class UserRole(StrEnum):
    ADMIN = "admin"
    USER = "user"


class OrgRole(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class AgentStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    # Set only by an admin ban: keys revoked, no work, trust frozen; never set by the owner.
    BANNED = "banned"


class User(UUIDPrimaryKey, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=UserRole.USER.value)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Organization(UUIDPrimaryKey, Base):
    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OrgMembership(Base):
    __tablename__ = "org_memberships"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(UUIDPrimaryKey, Base):
    __tablename__ = "agents"

    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    capabilities: Mapped[list[str]] = mapped_column(default=list)
    endpoint_url: Mapped[str | None] = mapped_column(String(2048))
    # "metadata" is reserved on declarative classes, hence the attribute name.
    agent_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    base_price_units: Mapped[int | None] = mapped_column(BigInteger)
    price_currency: Mapped[str] = mapped_column(String(8), default=DEFAULT_CURRENCY)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    max_calls_per_hour: Mapped[int | None] = mapped_column(Integer)
    # Unknown callers get 403 approval_required and leave a request the owner can approve.
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The owner's choice of marketplace category; unset means discovery's automatic one.
    category: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=AgentStatus.ACTIVE.value)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AgentApiKey(UUIDPrimaryKey, Base):
    __tablename__ = "agent_api_keys"

    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    prefix: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Enrollment(UUIDPrimaryKey, Base):
    __tablename__ = "agent_enrollments"
    __table_args__ = (
        UniqueConstraint("challenge", name="uq_agent_enrollments_challenge"),
        Index("ix_agent_enrollments_owner_id", "owner_id"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    public_key: Mapped[str] = mapped_column(String(64))
    capabilities: Mapped[list[str]] = mapped_column(default=list)
    endpoint_url: Mapped[str | None] = mapped_column(String(2048))
    enrollment_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    challenge: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))


class PermissionEffect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class PermissionSubject(StrEnum):
    AGENT = "agent"
    USER = "user"
    ORGANIZATION = "organization"


class AgentPermission(UUIDPrimaryKey, Base):
    """One ACL rule on an agent: may this agent, user or organization call it."""

    __tablename__ = "agent_permissions"
    __table_args__ = (
        UniqueConstraint(
            "agent_id", "subject_type", "subject_id", name="uq_agent_permissions_rule"
        ),
        Index("ix_agent_permissions_subject", "subject_type", "subject_id"),
    )

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[uuid.UUID]
    effect: Mapped[str] = mapped_column(String(8))
    # Per-caller limit for this subject; NULL falls back to the agent's own max_calls_per_hour.
    max_calls_per_hour: Mapped[int | None] = mapped_column(Integer)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OrganizationPermission(UUIDPrimaryKey, Base):
    """An org-level rule: this agent, user or organization may call every agent of the org."""

    __tablename__ = "organization_permissions"
    __table_args__ = (
        UniqueConstraint(
            "organization_id", "subject_type", "subject_id", name="uq_organization_permissions_rule"
        ),
        Index("ix_organization_permissions_subject", "subject_type", "subject_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[uuid.UUID]
    max_calls_per_hour: Mapped[int | None] = mapped_column(Integer)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessRequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class AccessRequest(UUIDPrimaryKey, Base):
    """A caller's request to call an agent that requires approval; one open request per pair."""

    __tablename__ = "agent_access_requests"
    __table_args__ = (
        UniqueConstraint(
            "agent_id", "subject_type", "subject_id", name="uq_agent_access_requests_pair"
        ),
    )

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(16), default=AccessRequestStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
