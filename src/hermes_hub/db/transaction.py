"""Run a unit of work in its own transaction, retrying when the database asks for it.

PostgreSQL may abort a transaction with a serialization failure (40001) or a deadlock
(40P01); the right answer is to run the whole unit again from the start. A unique violation
is retried once too, because two concurrent requests with the same idempotency key both miss
the existing row and race to insert it: on the retry the loser finds the winner's row and
returns it. SQLite writers queue on the database lock and need no retry.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.db.session import Database, run_after_commit

T = TypeVar("T")

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
MAX_ATTEMPTS = 8
MAX_INTEGRITY_RETRIES = 1

logger = structlog.get_logger(__name__)


def sqlstate(error: DBAPIError) -> str | None:
    original = error.orig
    for attribute in ("sqlstate", "pgcode"):
        value = getattr(original, attribute, None)
        if isinstance(value, str):
            return value
    cause = getattr(original, "__cause__", None)
    value = getattr(cause, "sqlstate", None)
    return value if isinstance(value, str) else None


async def in_transaction(
    database: Database,
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    attempts: int = MAX_ATTEMPTS,
) -> T:
    """Run ``work`` in a fresh write transaction and commit; retry it on transient conflicts."""
    integrity_retries = 0
    for attempt in range(1, attempts + 1):
        try:
            async with database.writer() as session:
                result = await work(session)
                await session.commit()
                run_after_commit(session)
                return result
        except IntegrityError:
            if integrity_retries >= MAX_INTEGRITY_RETRIES or attempt == attempts:
                raise
            integrity_retries += 1
        except DBAPIError as error:
            if sqlstate(error) not in RETRYABLE_SQLSTATES or attempt == attempts:
                raise
            logger.info("transaction_retry", attempt=attempt, sqlstate=sqlstate(error))
            # Jittered backoff so the transactions that collided do not collide again.
            await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311
    raise AssertionError("unreachable")  # pragma: no cover
