"""The leaderboard: top agents by trust, contracts or earnings over a period, cached.

Only public, active agents appear. Outcomes that give no trust credit (self-dealing, held
back by a flag) do not count toward contracts or earnings either. Ranking by trust needs at
least ``HERMES_TRUST_LEADERBOARD_MIN_OUTCOMES`` counted outcomes; with a period, only agents
with a counted outcome in it are ranked.

The cache is keyed by the query and a generation number that every trust recomputation
bumps after commit (in this process, and in Redis for the other workers).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.identity.models import Agent, AgentStatus
from hermes_hub.identity.service import capability_condition
from hermes_hub.kit.money import units_to_credits
from hermes_hub.mesh.models import AgentMetric
from hermes_hub.trust.models import TrustScore
from hermes_hub.trust.service import counted_condition

LEADERBOARD_SIZE = 100
logger = structlog.get_logger(__name__)


class RankBy(StrEnum):
    TRUST = "trust"
    CONTRACTS = "contracts"
    EARNINGS = "earnings"


class Period(StrEnum):
    WEEK = "week"
    MONTH = "month"
    ALL = "all"


PERIOD_DAYS = {Period.WEEK: 7, Period.MONTH: 30}


def period_start(period: Period, now: datetime) -> datetime | None:
    days = PERIOD_DAYS.get(period)
    return now - timedelta(days=days) if days is not None else None


async def compute(
    session: AsyncSession,
    *,
    by: RankBy,
    period: Period,
    capability: str | None,
    min_outcomes: int,
    now: datetime,
) -> list[dict[str, Any]]:
    since = period_start(period, now)
    in_period = counted_condition()
    if since is not None:
        in_period = in_period & (AgentMetric.created_at >= since)
    activity = (
        select(
            AgentMetric.agent_id.label("agent_id"),
            func.count().label("contracts"),
            func.coalesce(func.sum(AgentMetric.earned_units), 0).label("earned"),
        )
        .where(in_period)
        .group_by(AgentMetric.agent_id)
        .subquery()
    )
    query = (
        select(
            Agent.id,
            Agent.name,
            Agent.capabilities,
            TrustScore.trust,
            TrustScore.grade,
            TrustScore.level,
            TrustScore.counted_outcomes,
            activity.c.contracts,
            activity.c.earned,
        )
        .join(TrustScore, TrustScore.agent_id == Agent.id)
        .join(activity, activity.c.agent_id == Agent.id)
        .where(Agent.is_public.is_(True), Agent.status == AgentStatus.ACTIVE.value)
    )
    if capability is not None:
        query = query.where(capability_condition(session))
    if by is RankBy.TRUST:
        query = query.where(TrustScore.counted_outcomes >= min_outcomes).order_by(
            TrustScore.trust.desc(), activity.c.contracts.desc(), Agent.id
        )
    elif by is RankBy.CONTRACTS:
        query = query.order_by(activity.c.contracts.desc(), TrustScore.trust.desc(), Agent.id)
    else:
        query = query.order_by(activity.c.earned.desc(), TrustScore.trust.desc(), Agent.id)
    rows = await session.execute(
        query.limit(LEADERBOARD_SIZE), {"cap": capability} if capability else {}
    )
    return [
        {
            "rank": rank,
            "agent_id": str(agent_id),
            "name": name,
            "capabilities": capabilities,
            "trust_score": trust,
            "grade": grade,
            "level": level,
            "counted_outcomes": counted,
            "contracts": int(contracts),
            "earnings": float(units_to_credits(int(earned))),
            "earnings_units": int(earned),
        }
        for rank, (
            agent_id,
            name,
            capabilities,
            trust,
            grade,
            level,
            counted,
            contracts,
            earned,
        ) in enumerate(rows, start=1)
    ]


@dataclass
class _Entry:
    generation: tuple[int, int]
    stored_at: float
    rows: list[dict[str, Any]]


class LeaderboardCache:
    """Query results by key and generation; any trust change empties it."""

    # A safety net: even if an invalidation were lost, no answer is older than this.
    MAX_AGE_SECONDS = 60.0
    MAX_ENTRIES = 512

    def __init__(self, redis: Redis | None, *, key: str) -> None:
        self._redis = redis
        self._key = key
        self._local_generation = 0
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._pending: set[asyncio.Task[Any]] = set()

    def invalidate(self) -> None:
        """Called after a commit that changed trust (from a sync after-commit hook)."""
        self._local_generation += 1
        self._entries.clear()
        if self._redis is not None:
            try:
                task = asyncio.get_running_loop().create_task(self._bump_shared())
            except RuntimeError:  # no loop: a CLI run; the other workers' max age applies
                return
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _bump_shared(self) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.incr(self._key)
        except Exception as exc:  # Redis down: the max age still bounds staleness
            logger.warning("leaderboard_invalidation_failed", error=str(exc))

    async def _shared_generation(self) -> int:
        if self._redis is None:
            return 0
        try:
            value = await self._redis.get(self._key)
        except Exception:
            return -1  # unknown: treat every cached entry as stale
        return int(value or 0)

    async def get(
        self, key: tuple[Any, ...]
    ) -> tuple[list[dict[str, Any]] | None, tuple[int, int]]:
        generation = (self._local_generation, await self._shared_generation())
        entry = self._entries.get(key)
        if (
            entry is not None
            and generation[1] >= 0
            and entry.generation == generation
            and time.monotonic() - entry.stored_at < self.MAX_AGE_SECONDS
        ):
            self._entries.move_to_end(key)
            return entry.rows, generation
        return None, generation

    def put(
        self, key: tuple[Any, ...], generation: tuple[int, int], rows: list[dict[str, Any]]
    ) -> None:
        if generation[1] < 0 or generation[0] != self._local_generation:
            return  # changed while we computed: do not keep a possibly stale answer
        self._entries[key] = _Entry(generation=generation, stored_at=time.monotonic(), rows=rows)
        while len(self._entries) > self.MAX_ENTRIES:
            self._entries.popitem(last=False)


async def leaderboard(
    session: AsyncSession,
    cache: LeaderboardCache | None,
    *,
    by: RankBy,
    period: Period,
    capability: str | None,
    min_outcomes: int,
    now: datetime,
) -> tuple[list[dict[str, Any]], bool]:
    """The ranked rows and whether they came from the cache."""
    key = (by.value, period.value, capability, min_outcomes)
    generation = (0, 0)
    if cache is not None:
        rows, generation = await cache.get(key)
        if rows is not None:
            return rows, True
    rows = await compute(
        session, by=by, period=period, capability=capability, min_outcomes=min_outcomes, now=now
    )
    if cache is not None:
        cache.put(key, generation, rows)
    return rows, False
