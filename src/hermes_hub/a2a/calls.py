"""The call log and task ownership, written off the request path in small batches.

A gateway call should cost the caller the forwarding and little else, so its log row is not
written inside the call: rows queue in memory and one background transaction writes each
batch. Task owners are kept in memory as well, so the worker that forwarded a call answers
the follow-up ``GetTask`` without waiting for the batch; other workers read the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import Table, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.a2a.models import AgentCall, TaskOwner
from hermes_hub.db.session import Database, dialect_name
from hermes_hub.kit.time import utcnow

FLUSH_INTERVAL_SECONDS = 0.2
FLUSH_BATCH = 500
MAX_REMEMBERED_TASKS = 50_000
MAX_ERROR_LENGTH = 500
# While the database is unreachable rows wait in memory, up to this many of each kind; later
# ones are counted and dropped. Retries back off from the flush interval to this delay.
MAX_QUEUED = 50_000
MAX_RETRY_DELAY_SECONDS = 10.0

CALLS_TABLE = cast(Table, AgentCall.__table__)
TASK_OWNERS_TABLE = cast(Table, TaskOwner.__table__)

logger = structlog.get_logger(__name__)


@dataclass
class CallRecord:
    target_agent_id: uuid.UUID
    caller_agent_id: uuid.UUID | None
    caller_user_id: uuid.UUID | None
    caller_owner_id: uuid.UUID | None
    channel: str
    method: str
    started_at: datetime
    latency_ms: float
    outcome: str
    error: str | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target_agent_id": self.target_agent_id,
            "caller_agent_id": self.caller_agent_id,
            "caller_user_id": self.caller_user_id,
            "caller_owner_id": self.caller_owner_id,
            "channel": self.channel,
            "method": self.method,
            "started_at": self.started_at,
            "latency_ms": self.latency_ms,
            "outcome": self.outcome,
            "error": self.error[:MAX_ERROR_LENGTH] if self.error else None,
        }


class CallRecorder:
    def __init__(
        self,
        database: Database,
        *,
        on_written: Callable[[set[uuid.UUID]], None] | None = None,
    ) -> None:
        self._database = database
        # Told which agents each written batch called (trust recomputes them).
        self._on_written = on_written
        self._calls: list[CallRecord] = []
        self._owners: list[dict[str, Any]] = []
        self._known_owners: OrderedDict[tuple[uuid.UUID, str], str] = OrderedDict()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        # Set after a failed write: the delay before the next try (0 when writes succeed).
        self._retry_delay = 0.0
        self._overflow = 0

    # ---- recording ----

    def record(self, call: CallRecord) -> None:
        if len(self._calls) >= MAX_QUEUED:
            self._overflow += 1
            return
        self._calls.append(call)
        self._ensure_running()
        if len(self._calls) >= FLUSH_BATCH:
            self._wake.set()

    def remember_task(self, agent_id: uuid.UUID, task_id: str, caller: str) -> None:
        """The first caller to see a task id owns it."""
        key = (agent_id, task_id)
        if not task_id or key in self._known_owners:
            return
        self._known_owners[key] = caller
        if len(self._known_owners) > MAX_REMEMBERED_TASKS:
            self._known_owners.popitem(last=False)
        if len(self._owners) >= MAX_QUEUED:
            self._overflow += 1
            return
        self._owners.append(
            {"agent_id": agent_id, "task_id": task_id, "caller": caller, "created_at": utcnow()}
        )
        self._ensure_running()

    async def task_owner(self, agent_id: uuid.UUID, task_id: str) -> str | None:
        known = self._known_owners.get((agent_id, task_id))
        if known is not None:
            return known
        async with self._database.read_sessions() as session:
            owner: str | None = await session.scalar(
                select(TaskOwner.caller).where(
                    TaskOwner.agent_id == agent_id, TaskOwner.task_id == task_id
                )
            )
        return owner

    # ---- writing ----

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self._calls or self._owners:
            if self._retry_delay:
                # A full queue must not cut the back-off short.
                await asyncio.sleep(self._retry_delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_SECONDS)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write what is queued. A row the database refuses (its agent was deleted since, a
        duplicate id) is dropped alone; on any other failure every row stays queued and the
        next try waits longer. The log must never fail a call, so nothing is raised."""
        async with self._flushing:
            calls, self._calls = self._calls, []
            owners, self._owners = self._owners, []
            if not calls and not owners:
                return
            try:
                try:
                    await self._write_batch(calls, owners)
                except (IntegrityError, DataError):
                    await self._write_one_by_one(calls, owners)
            except Exception as exc:  # the database is away or busy: keep the rows, back off
                self._requeue(calls, owners)
                self._retry_delay = min(
                    max(2 * self._retry_delay, FLUSH_INTERVAL_SECONDS), MAX_RETRY_DELAY_SECONDS
                )
                logger.warning(
                    "a2a_call_log_not_written",
                    calls=len(calls),
                    owners=len(owners),
                    retry_in_seconds=self._retry_delay,
                    error=repr(exc),
                )
            else:
                self._retry_delay = 0.0
                self._announce(calls)
            if self._overflow:
                logger.warning("a2a_call_log_queue_full", dropped=self._overflow)
                self._overflow = 0

    async def _write_batch(self, calls: list[CallRecord], owners: list[dict[str, Any]]) -> None:
        async with self._database.writer() as session:
            await _write(session, calls, owners)
            await session.commit()

    async def _write_one_by_one(
        self, calls: list[CallRecord], owners: list[dict[str, Any]]
    ) -> None:
        """Write each row under its own savepoint, dropping (and counting) the ones refused."""
        refused = {"calls": 0, "owners": 0}
        error: Exception | None = None
        rows: list[tuple[str, list[CallRecord], list[dict[str, Any]]]] = [
            ("calls", [call], []) for call in calls
        ]
        rows += [("owners", [], [owner]) for owner in owners]
        async with self._database.writer() as session:
            for kind, call_rows, owner_rows in rows:
                try:
                    async with session.begin_nested():
                        await _write(session, call_rows, owner_rows)
                except (IntegrityError, DataError) as exc:
                    refused[kind] += 1
                    error = exc
            await session.commit()
        logger.warning("a2a_call_log_rows_dropped", **refused, error=repr(error))

    def _requeue(self, calls: list[CallRecord], owners: list[dict[str, Any]]) -> None:
        """Put rows back in front of those queued since, within ``MAX_QUEUED`` (newest dropped)."""
        self._calls[:0] = calls
        self._owners[:0] = owners
        for queued in (self._calls, self._owners):
            overflow = len(queued) - MAX_QUEUED
            if overflow > 0:
                del queued[MAX_QUEUED:]
                self._overflow += overflow

    def _announce(self, calls: list[CallRecord]) -> None:
        # Never raises: the batch is written, and a retry would write it twice.
        if self._on_written is None or not calls:
            return
        try:
            self._on_written({call.target_agent_id for call in calls})
        except Exception:
            logger.exception("a2a_call_listener_failed")

    async def drain(self) -> None:
        """Write everything queued (at shutdown, and in tests)."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def _write(
    session: AsyncSession, calls: list[CallRecord], owners: list[dict[str, Any]]
) -> None:
    # Core inserts on the tables: plain rows need none of the ORM's bulk-insert bookkeeping,
    # which was a good part of the log's cost under load.
    if calls:
        await session.execute(insert(CALLS_TABLE), [call.row() for call in calls])
    if owners:
        dialect_insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
        # Another worker may have recorded the same task first; its owner stands.
        await session.execute(dialect_insert(TASK_OWNERS_TABLE).on_conflict_do_nothing(), owners)
