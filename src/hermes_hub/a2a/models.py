from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hermes_hub.db.base import Base, UUIDPrimaryKey
from hermes_hub.kit.time import utcnow


class AgentCardRecord(Base):
    """The A2A Agent Card an agent's endpoint serves, as last fetched, and its health."""

    __tablename__ = "a2a_agent_cards"

    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    # The card as the agent published it (validated); the hub's own card is derived from it.
    card: Mapped[dict[str, Any] | None]
    card_url: Mapped[str | None] = mapped_column(String(2048))
    # The interface the hub forwards to: a JSON-RPC URL and the protocol version it speaks.
    rpc_url: Mapped[str | None] = mapped_column(String(2048))
    protocol_version: Mapped[str | None] = mapped_column(String(16))
    fetched_at: Mapped[datetime | None]
    checked_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # Set after 3 failed checks in a row; cleared by the next good one.
    unavailable: Mapped[bool] = mapped_column(Boolean, default=False)
    unavailable_since: Mapped[datetime | None]


class AgentCall(UUIDPrimaryKey, Base):
    """One call through the gateway or the execute API: who called whom, how long, how it ended."""

    __tablename__ = "a2a_calls"
    __table_args__ = (
        Index("ix_a2a_calls_target_started", "target_agent_id", "started_at"),
        Index("ix_a2a_calls_caller_agent", "caller_agent_id"),
    )

    target_agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    caller_agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    caller_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # Who answers for the call, for trust's per-requester cap: the caller's owning user.
    caller_owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # "a2a" (the JSON-RPC gateway) or "execute" (the REST execute API).
    channel: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(48))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    latency_ms: Mapped[float]
    # The agent's doing: "ok" | "agent_error" | "unreachable" | "timeout" | "malformed" |
    # "dropped". The caller's: "canceled" | "invalid_request" (never reached the agent, or
    # the agent refused what was sent) | "rejected" (another caller's task).
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(500))


class TaskOwner(Base):
    """Which caller started a task on an agent: only they may read, cancel or follow it
    through the hub (the agent sees every call as coming from the hub)."""

    __tablename__ = "a2a_task_owners"

    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    task_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # "agent:<uuid>" or "user:<uuid>", as ``Principal.rate_limit_key``.
    caller: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
