"""Idempotency keys for POSTs that create or move something.

The first request with a key stores its response in the same transaction as its change; a
retry with the same key and the same request gets that response back without running
again; the same key with a different request is a 422. Keys belong to one principal, so
two callers can never see each other's responses. Records are kept for
``RETENTION`` and then purged by the scheduler.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Header
from fastapi.responses import JSONResponse
from sqlalchemy import Integer, String, delete, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from hermes_hub.db.base import Base
from hermes_hub.db.session import Database, dialect_name
from hermes_hub.db.transaction import in_transaction
from hermes_hub.errors import HubError
from hermes_hub.kit.time import utcnow

RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 200


def idempotency_key_header(description: str) -> Any:
    """The ``Idempotency-Key`` header parameter: printable ASCII, at most 200 characters."""
    return Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=r"^[\x21-\x7e]+$",
        description=description,
    )


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"

    principal: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class IdempotencyKeyMismatchError(HubError):
    status = 422
    code = "idempotency_key_mismatch"


def fingerprint(method: str, path: str, payload: Any) -> str:
    canonical = json.dumps(
        {"method": method, "path": path, "body": payload},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]


async def run_idempotent(
    database: Database,
    *,
    principal: str,
    key: str | None,
    request_fingerprint: str,
    work: Callable[[AsyncSession], Awaitable[Outcome]],
) -> JSONResponse:
    """Run ``work`` in one transaction, or replay the response stored under ``key``.

    The key is claimed first, in the same transaction: a concurrent copy waits on it until
    the first commits, then replays the stored response (or, if the first failed and rolled
    back, runs itself).
    """

    async def unit(session: AsyncSession) -> Outcome:
        if key is not None and not await _reserve(session, principal, key, request_fingerprint):
            stored = await session.get(IdempotencyRecord, (principal, key), populate_existing=True)
            if stored is None:  # pragma: no cover - the conflicting row was just seen
                raise HubError("Retry the request.", status=409, code="idempotency_conflict")
            if stored.fingerprint != request_fingerprint:
                raise IdempotencyKeyMismatchError(
                    "This Idempotency-Key was used with a different request; "
                    "use a new key for a new request."
                )
            return Outcome(stored.status_code, stored.body)
        outcome = await work(session)
        if key is not None:
            await session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.principal == principal, IdempotencyRecord.key == key)
                .values(status_code=outcome.status_code, body=outcome.body)
            )
        return outcome

    outcome = await in_transaction(database, unit)
    return JSONResponse(outcome.body, status_code=outcome.status_code)


async def _reserve(
    session: AsyncSession, principal: str, key: str, request_fingerprint: str
) -> bool:
    """Claim the key before doing the work; False if it was already taken.

    A concurrent copy of the request then waits here, on the key, until the first one
    commits, and replays its response, instead of racing it for the same resources (and,
    say, failing for lack of funds the first one just spent).
    """
    dialect = dialect_name(session)
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(IdempotencyRecord)
        .values(
            principal=principal,
            key=key,
            fingerprint=request_fingerprint,
            status_code=0,
            body={},
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["principal", "key"])
    )
    return bool(getattr(result, "rowcount", 0))


async def purge_expired(session: AsyncSession, *, now: datetime | None = None) -> int:
    moment = (now or utcnow()) - RETENTION
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < moment)
    )
    return int(getattr(result, "rowcount", 0) or 0)
