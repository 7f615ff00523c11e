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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.a2a.models import AgentCall, TaskOwner
from hermes_hub.db.session import Database, dialect_name
from hermes_hub.kit.time import utcnow

FLUSH_INTERVAL_SECONDS = 0.2
FLUSH_BATCH = 500
MAX_REMEMBERED_TASKS = 50_000
MAX_ERROR_LENGTH = 500

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
    def __init__(self, database: Database) -> None:
        self._database = database
        self._calls: list[CallRecord] = []
        self._owners: list[dict[str, Any]] = []
        self._known_owners: OrderedDict[tuple[uuid.UUID, str], str] = OrderedDict()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()

    # ---- recording ----

    def record(self, call: CallRecord) -> None:
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_SECONDS)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        async with self._flushing:
            calls, self._calls = self._calls, []
            owners, self._owners = self._owners, []
            if not calls and not owners:
                return
            try:
                async with self._database.writer() as session:
                    await _write(session, calls, owners)
                    await session.commit()
            except Exception as exc:  # the log must never fail a call; keep the rows for later
                logger.warning("a2a_call_log_not_written", calls=len(calls), error=repr(exc))
                self._calls[:0] = calls
                self._owners[:0] = owners

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
    if calls:
        await session.execute(insert(AgentCall), [call.row() for call in calls])
    if owners:
        dialect_insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
        # Another worker may have recorded the same task first; its owner stands.
        await session.execute(dialect_insert(TaskOwner).on_conflict_do_nothing(), owners)
