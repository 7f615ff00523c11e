"""Write events into the log with the change that caused them, and read them back.

``publish`` only inserts rows in the caller's transaction; once that transaction commits,
the event broker found in ``session.info`` (if any) pushes the rows to live sockets. A
rollback therefore never announces anything, and a socket that missed a push (another
worker, a lost Redis message, a disconnect) finds the rows in the log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.db.session import after_commit
from hermes_hub.events.models import Event
from hermes_hub.kit.time import utcnow

BROKER_INFO_KEY = "hermes_event_broker"
MAX_REPLAY = 1000


@dataclass(frozen=True)
class EventRecord:
    id: int
    recipient: str
    type: str
    data: dict[str, Any]
    created_at: datetime

    def as_message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "data": self.data,
            "created_at": self.created_at.isoformat(),
        }


class EventSink(Protocol):
    def deliver(self, records: Sequence[EventRecord]) -> None: ...


def agent_recipient(agent_id: uuid.UUID) -> str:
    return f"agent:{agent_id}"


def user_recipient(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


async def publish(
    session: AsyncSession, recipients: Iterable[str], type_: str, data: dict[str, Any]
) -> list[EventRecord]:
    """Log ``type_`` with ``data`` for each recipient (once each); push after commit."""
    unique = list(dict.fromkeys(recipients))
    if not unique:
        return []
    now = utcnow()
    rows = [{"recipient": r, "type": type_, "data": data, "created_at": now} for r in unique]
    # No sort_by_parameter_order: it would make SQLite insert row by row. Recipients are
    # unique in one call, so each returned row names its own.
    result = await session.execute(insert(Event).returning(Event.id, Event.recipient), rows)
    records = sorted(
        (
            EventRecord(id=event_id, recipient=recipient, type=type_, data=data, created_at=now)
            for event_id, recipient in result.all()
        ),
        key=lambda record: record.id,
    )
    sink: EventSink | None = session.info.get(BROKER_INFO_KEY)
    if sink is not None:
        after_commit(session, lambda: sink.deliver(records))
    return records


async def read_since(
    session: AsyncSession, recipient: str, after_id: int, *, limit: int = MAX_REPLAY
) -> list[EventRecord]:
    """The recipient's events with an id above ``after_id``, oldest first."""
    rows = (
        await session.scalars(
            select(Event)
            .where(Event.recipient == recipient, Event.id > after_id)
            .order_by(Event.id)
            .limit(limit)
        )
    ).all()
    return [
        EventRecord(
            id=row.id,
            recipient=row.recipient,
            type=row.type,
            data=row.data,
            created_at=row.created_at,
        )
        for row in rows
    ]


async def latest_id(session: AsyncSession, recipient: str) -> int:
    """The id of the recipient's newest event, or 0."""
    value = await session.scalar(
        select(Event.id).where(Event.recipient == recipient).order_by(Event.id.desc()).limit(1)
    )
    return int(value or 0)
