"""The durable scheduler: closes bidding, fails missed deadlines, settles automatically.

Nothing is kept in memory that a restart could lose: what is due is the ``next_due_at``
column of each contract. Every worker runs a loop that sleeps until the earliest due time
it knows of (read from the database, and woken early when this worker creates a contract),
or at most ``HERMES_SCHEDULER_POLL_SECONDS``, then handles each due contract in its own
transaction. Workers never act twice on one contract: each locks the row (skipping it if
another worker has it), re-reads the status and due time under the lock, and the state
machine refuses a second award.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.config import Settings
from hermes_hub.db.session import Database
from hermes_hub.db.transaction import in_transaction
from hermes_hub.kit import idempotency
from hermes_hub.kit.time import utcnow
from hermes_hub.mesh import service

logger = structlog.get_logger(__name__)
PURGE_EVERY_SECONDS = 600.0
# A contract whose handling failed is left alone this long, so one broken row cannot turn
# the loop into a busy retry; everything else keeps flowing.
FAILURE_BACKOFF_SECONDS = 30.0
# Overdue work remains only when it failed or another worker holds it: look again soon.
OVERDUE_RECHECK_SECONDS = 0.05
TIMER_SLACK_SECONDS = 0.002


class MeshScheduler:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_purge = 0.0
        self._failed_until: dict[uuid.UUID, float] = {}
        self._last_look: datetime | None = None

    def wake(self) -> None:
        """Look again now: a contract was created, so the next due time may be sooner."""
        self._wake.set()

    async def run_due(self, now: datetime | None = None) -> dict[str, int]:
        """Handle every contract due at ``now``; return how many of each action were taken."""
        moment = now or utcnow()
        self._last_look = moment
        done: dict[str, int] = {}
        async with self.database.read_sessions() as session:
            due = await service.due_contract_ids(session, now=moment)
        clock = asyncio.get_running_loop().time()
        for contract_id in due:
            if self._failed_until.get(contract_id, 0.0) > clock:
                continue

            async def unit(
                session: AsyncSession, contract_id: uuid.UUID = contract_id
            ) -> str | None:
                return await service.run_due(
                    session, contract_id=contract_id, settings=self.settings, now=moment
                )

            try:
                action = await in_transaction(self.database, unit)
            except Exception:  # one bad contract must not stop the others
                logger.exception("scheduler_contract_failed", contract_id=str(contract_id))
                self._failed_until[contract_id] = clock + FAILURE_BACKOFF_SECONDS
                continue
            self._failed_until.pop(contract_id, None)
            if action is not None:
                done[action] = done.get(action, 0) + 1
        return done

    async def _seconds_until_next(self) -> float:
        async with self.database.read_sessions() as session:
            due = await service.next_due_at(session)
        poll = self.settings.scheduler_poll_seconds
        if due is None:
            return poll
        remaining = (due - utcnow()).total_seconds()
        if remaining > 0:
            # A little past the due time: event loops may fire a timer slightly early.
            return min(poll, remaining + TIMER_SLACK_SECONDS)
        if self._last_look is not None and due > self._last_look:
            return 0.0  # it became due after the last look: not a failure, look now
        return OVERDUE_RECHECK_SECONDS

    async def _purge(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_purge < PURGE_EVERY_SECONDS:
            return
        self._last_purge = loop.time()
        await in_transaction(self.database, idempotency.purge_expired)

    async def _loop(self) -> None:
        while True:
            # Cleared before looking, so a wake() during the look is not lost.
            self._wake.clear()
            try:
                await self.run_due()
                await self._purge()
                delay = await self._seconds_until_next()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("scheduler_tick_failed")
                delay = self.settings.scheduler_poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    def start(self) -> None:
        if self._task is None and self.settings.scheduler_enabled:
            self._task = asyncio.create_task(self._loop(), name="mesh-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
