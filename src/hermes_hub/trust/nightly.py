"""The nightly trust job: the integrity scan, then every agent recomputed (so decay moves
inactive agents toward the prior and today's snapshot exists for everyone).

It runs once per UTC day, at or after ``HERMES_TRUST_NIGHTLY_HOUR``, whichever worker gets
there first: the day's run is claimed by locking a row in ``trust_job_runs`` and recording
the date before any work starts, so a second worker (or a restart) sees the claim and skips.
A run that crashes after its claim is not retried that day; the next night's run covers it,
and ``hermes trust recompute --all`` / ``hermes trust scan`` run it by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
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
