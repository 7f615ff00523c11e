"""The money audit log: one append-only row per operation that moves credits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import structlog
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.identity.principal import Principal
from hermes_hub.kit.time import utcnow
from hermes_hub.ledger.journal import TransferRecord
from hermes_hub.ledger.models import AuditEntry

SYSTEM_ACTOR = "system"
_APPEND_ENTRY = insert(cast(Table, AuditEntry.__table__))


def actor_of(principal: Principal) -> str:
    if principal.user is not None:
        return f"user:{principal.user.id}"
    if principal.agent is not None:
        return f"agent:{principal.agent.id}"
    return SYSTEM_ACTOR


def current_request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    transfers: Iterable[TransferRecord] = (),
    details: dict[str, Any] | None = None,
) -> None:
    await session.execute(
        _APPEND_ENTRY,
        {
            "actor": actor,
            "action": action,
            "request_id": current_request_id(),
            "transfer_ids": [str(transfer.id) for transfer in transfers],
            "details": details or {},
            "created_at": utcnow(),
        },
    )
