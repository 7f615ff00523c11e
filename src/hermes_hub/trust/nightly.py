"""Trust recomputed in the background: the nightly job, and after direct calls.

The nightly job: the integrity scan, then every agent recomputed (so decay moves inactive
agents toward the prior and today's snapshot exists for everyone).

It runs once per UTC day, at or after ``HERMES_TRUST_NIGHTLY_HOUR``, whichever worker gets
there first: the day's run is claimed by locking a row in ``trust_job_runs`` and recording
the date before any work starts, so a second worker (or a restart) sees the claim and skips.
A run that crashes after its claim is not retried that day; the next night's run covers it,
and ``hermes trust recompute --all`` / ``hermes trust scan`` run it by hand.

After direct calls: ``CallTrustRefresher`` recomputes the agents the call log just recorded
calls to, at most once per agent per ``HERMES_TRUST_CALL_RECOMPUTE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.config import Settings
from hermes_hub.db.session import Database
from hermes_hub.db.transaction import in_transaction
from hermes_hub.kit.time import utcnow
from hermes_hub.trust import review, service
from hermes_hub.trust.models import TrustJobRun

JOB_NAME = "nightly"
CHECK_EVERY_SECONDS = 300.0
logger = structlog.get_logger(__name__)


def is_due(last_run_on: Any, now: datetime, hour: int) -> bool:
    return now.hour >= hour and last_run_on != now.date()


async def _claim(database: Database, *, settings: Settings, now: datetime, force: bool) -> bool:
    async def claim(session: AsyncSession) -> bool:
        await session.execute(
            service.insert_for(session)(TrustJobRun)
            .values(name=JOB_NAME, summary={})
            .on_conflict_do_nothing(index_elements=["name"])
        )
        run = await session.scalar(
            select(TrustJobRun).where(TrustJobRun.name == JOB_NAME).with_for_update()
        )
        if run is None:  # pragma: no cover - inserted just above
            return False
        if not force and not is_due(run.last_run_on, now, settings.trust_nightly_hour):
            return False
        run.last_run_on = now.date()
        run.finished_at = None
        return True

    return await in_transaction(database, claim)


async def run_nightly(
    database: Database, *, settings: Settings, now: datetime | None = None, force: bool = False
) -> dict[str, Any] | None:
    """Run today's job if it is due (or ``force``); return its summary, or None if skipped."""
    moment = now or utcnow()
    if not await _claim(database, settings=settings, now=moment, force=force):
        return None

    async def scan(session: AsyncSession) -> review.ScanReport:
        return await review.scan(session, settings=settings, now=moment)

    report = await in_transaction(database, scan)
    recomputed = await service.recompute_all(database, settings=settings, now=moment)
    summary = {**report.as_dict(), "agents_recomputed_all": recomputed}

    async def record(session: AsyncSession) -> None:
        run = await session.get(TrustJobRun, JOB_NAME)
        if run is not None:
            run.finished_at = utcnow()
            run.summary = summary

    await in_transaction(database, record)
    logger.info("trust_nightly_done", **summary)
    return summary


class TrustNightly:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            try:
                await run_nightly(self.database, settings=self.settings)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("trust_nightly_failed")
            await asyncio.sleep(CHECK_EVERY_SECONDS)

    def start(self) -> None:
        if self._task is None and self.settings.trust_nightly_enabled:
            self._task = asyncio.create_task(self._loop(), name="trust-nightly")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class CallTrustRefresher:
    """Recomputes, in the background, the trust of agents that just took direct calls.

    The call log reports the agents of each batch it wrote (``note``). An agent not
    recomputed here in the last ``trust_call_recompute_seconds`` is recomputed at once;
    otherwise once that interval has passed. So a call shows in its agent's trust within
    about the interval, costs the call's request nothing, and a busy agent costs one
    recompute per interval however many calls it takes. Each pass is its own transaction;
    a failed pass is logged and its agents wait for their next call or the nightly run.
    The throttle is per worker: with W workers an agent is recomputed at most W times per
    interval.
    """

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._settings = settings
        self._clock = clock
        self._pending: set[uuid.UUID] = set()
        self._recomputed_at: dict[uuid.UUID, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._passes = asyncio.Lock()

    def note(self, agent_ids: Iterable[uuid.UUID]) -> None:
        """These agents took calls that are now in the log."""
        if self._settings.trust_direct_call_weight <= 0:
            return  # direct calls do not count: their trust did not move
        self._pending.update(agent_ids)
        self._wake.set()
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(), name="trust-call-refresh")

    async def _run(self) -> None:
        while self._pending:
            self._wake.clear()
            await self.flush()
            wait = self._seconds_until_due()
            if wait is None:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _seconds_until_due(self) -> float | None:
        if not self._pending:
            return None
        interval = self._settings.trust_call_recompute_seconds
        earliest = min(self._recomputed_at.get(agent_id, -math.inf) for agent_id in self._pending)
        return max(0.0, earliest + interval - self._clock())

    async def flush(self, *, force: bool = False) -> list[uuid.UUID]:
        """Recompute the noted agents whose interval has passed (every noted agent with
        ``force``); return them. Never raises: a failure is logged."""
        async with self._passes:
            moment = self._clock()
            interval = self._settings.trust_call_recompute_seconds
            due = sorted(
                agent_id
                for agent_id in self._pending
                if force or moment - self._recomputed_at.get(agent_id, -math.inf) >= interval
            )
            # An agent last recomputed more than an interval ago is due anyway: forget it.
            self._recomputed_at = {
                agent_id: at
                for agent_id, at in self._recomputed_at.items()
                if moment - at < interval
            }
            if not due:
                return []
            self._pending.difference_update(due)
            self._recomputed_at.update(dict.fromkeys(due, moment))
            try:
                await service.recompute_all(
                    self._database,
                    settings=self._settings,
                    now=utcnow(),
                    agent_ids=due,
                    notify=True,
                )
            except Exception:
                logger.exception("trust_call_recompute_failed", agents=len(due))
            return due

    async def drain(self) -> None:
        """Recompute every noted agent now and stop (at shutdown, and in tests)."""
        # First, so a pass under way finishes instead of being cancelled half done.
        await self.flush(force=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
