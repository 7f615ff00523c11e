"""The event log: one row per recipient per event, written in the transaction of the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hermes_hub.db.base import Base
from hermes_hub.kit.time import utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
EventSequence = BigInteger().with_variant(Integer(), "sqlite")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_recipient_id", "recipient", "id"),)

    # Ids only grow, so a client resumes with "everything after the last id I saw".
    id: Mapped[int] = mapped_column(EventSequence, primary_key=True, autoincrement=True)
    # "agent:<uuid>" or "user:<uuid>": the principal this event is for.
    recipient: Mapped[str] = mapped_column(String(80))
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
