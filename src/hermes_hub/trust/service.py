"""Trust recomputation: read an agent's counted outcomes, apply the formula, store the score,
its badges and today's snapshot.

The same function serves the incremental update (inside a settlement, failure, ruling or
rating, for one agent) and the batch (``hermes trust recompute --all``, in chunks), so the
two give the same numbers. Each agent's score row is locked before its outcomes are read,
so two transactions touching one agent apply one after the other and the later one sees
the earlier one's outcome.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hermes_hub.config import Settings
from hermes_hub.db.session import Database, after_commit, dialect_name
from hermes_hub.db.transaction import in_transaction
from hermes_hub.events import log as events
from hermes_hub.identity.models import Agent, AgentStatus, OrgMembership
from hermes_hub.mesh.models import AgentMetric
from hermes_hub.trust import formula
from hermes_hub.trust.formula import Outcome, TrustParams, TrustResult
from hermes_hub.trust.levels import level_for
from hermes_hub.trust.models import (
    FlaggedContract,
    RaterWeight,
    Rating,
    TrustBadge,
    TrustDaily,
    TrustFlag,
    TrustScore,
)

# Where the process-wide "trust changed" hook lives in session.info (the leaderboard cache).
CHANGE_LISTENER_INFO_KEY = "hermes_trust_change_listener"

FLAG_WHITEWASH = "whitewash"
FLAG_DISMISSED = "dismissed"


def params_from(settings: Settings) -> TrustParams:
    return TrustParams(
        prior=formula.PRIOR,
        prior_strength=settings.trust_prior_strength,
        half_life_days=settings.trust_half_life_days,
        requester_cap_min=settings.trust_requester_cap_min,
        requester_cap_share=settings.trust_requester_cap_share,
    )


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT, for ON CONFLICT clauses."""
    return pg_insert if dialect_name(session) == "postgresql" else sqlite_insert


# ---- what counts ----


async def exclusion_reason(
    session: AsyncSession,
    *,
    requester_owner_id: uuid.UUID,
    requester_agent_id: uuid.UUID | None,
    agent: Agent,
) -> str | None:
    """Why an outcome between this requester and agent gives no trust credit, if it doesn't.

    Self-dealing: the same owner on both sides, or both sides in one organization (the
    agent belongs to an organization the requester is in, the requesting agent belongs to
    the agent's organization or to one its owner is in, or the two owners share any
    organization).
    """
    if requester_owner_id == agent.owner_id:
        return "self_dealing"
    if requester_agent_id is not None:
        requester_org = await session.scalar(
            select(Agent.organization_id).where(Agent.id == requester_agent_id)
        )
        if requester_org is not None:
            if requester_org == agent.organization_id:
                return "same_organization"
            # An organization's agent hiring an agent owned by one of its members.
            member = await session.scalar(
                select(OrgMembership.user_id).where(
                    OrgMembership.organization_id == requester_org,
                    OrgMembership.user_id == agent.owner_id,
                )
            )
            if member is not None:
                return "same_organization"
    mine = aliased(OrgMembership)
    theirs = aliased(OrgMembership)
    shared_org = await session.scalar(
        select(mine.organization_id)
        .join(theirs, theirs.organization_id == mine.organization_id)
        .where(mine.user_id == requester_owner_id, theirs.user_id == agent.owner_id)
        .limit(1)
    )
    if shared_org is not None:
        return "same_organization"
    if agent.organization_id is not None:
        member = await session.scalar(
            select(OrgMembership.user_id).where(
                OrgMembership.organization_id == agent.organization_id,
                OrgMembership.user_id == requester_owner_id,
            )
        )
        if member is not None:
            return "same_organization"
    return None


def flagged_condition() -> Any:
    """True for a metric whose contract an open or confirmed flag holds back."""
    return exists().where(
        FlaggedContract.contract_id == AgentMetric.contract_id,
        TrustFlag.id == FlaggedContract.flag_id,
        TrustFlag.status != FLAG_DISMISSED,
    )


def counted_condition() -> Any:
    return and_(AgentMetric.excluded_reason.is_(None), ~flagged_condition())


async def counted_outcomes(
    session: AsyncSession, agent_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Outcome]]:
    rows = await session.execute(
        select(
            AgentMetric.agent_id,
            AgentMetric.contract_id,
            AgentMetric.requester_owner_id,
            AgentMetric.created_at,
            AgentMetric.success,
            AgentMetric.on_time,
            AgentMetric.validation_score,
            Rating.stars,
            func.coalesce(RaterWeight.weight, 1.0),
        )
        .outerjoin(Rating, Rating.contract_id == AgentMetric.contract_id)
        .outerjoin(RaterWeight, RaterWeight.rater_owner_id == Rating.rater_owner_id)
        .where(AgentMetric.agent_id.in_(agent_ids), counted_condition())
    )
    outcomes: dict[uuid.UUID, list[Outcome]] = defaultdict(list)
    for agent_id, contract_id, requester, at, success, on_time, score, stars, weight in rows:
        outcomes[agent_id].append(
            Outcome(
                key=str(contract_id),
                # An outcome without a known requester is its own requester: never pooled.
                requester=str(requester) if requester is not None else f"contract:{contract_id}",
                at=at,
                success=bool(success),
                on_time=bool(on_time),
                validation_score=float(score),
                stars=stars,
                rating_weight=float(weight),
            )
        )
    return outcomes


async def agents_on_probation(
    session: AsyncSession, agent_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    rows = await session.scalars(
        select(TrustFlag.subject_agent_id).where(
            TrustFlag.kind == FLAG_WHITEWASH,
            TrustFlag.status != FLAG_DISMISSED,
            TrustFlag.subject_agent_id.in_(agent_ids),
        )
    )
    return {agent_id for agent_id in rows if agent_id is not None}


# ---- reading scores ----


async def trust_scores(
    session: AsyncSession, agent_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, float]:
    """Published trust per agent; an agent with no score row yet has the prior."""
    ids = list(agent_ids)
    scores = dict.fromkeys(ids, formula.PRIOR)
    if ids:
        rows = await session.execute(
            select(TrustScore.agent_id, TrustScore.trust).where(TrustScore.agent_id.in_(ids))
        )
        scores.update({row[0]: row[1] for row in rows})
    return scores


async def trust_score(session: AsyncSession, agent_id: uuid.UUID) -> float:
    return (await trust_scores(session, [agent_id]))[agent_id]


# ---- recomputation ----


@dataclass(frozen=True)
class Recomputed:
    agent_id: uuid.UUID
    result: TrustResult
    previous_trust: float | None
    badges_earned: tuple[str, ...]
    badges_removed: tuple[str, ...]


def _score_values(
    agent_id: uuid.UUID,
    result: TrustResult,
    *,
    params: TrustParams,
    totals: tuple[int, int],
    now: datetime,
) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "trust": result.trust,
        "raw": result.raw,
        "grade": formula.grade_for(result.trust),
        "level": level_for(result.trust).value,
        "effective_outcomes": result.effective_outcomes,
        "counted_outcomes": result.counted_outcomes,
        "total_outcomes": totals[0],
        "successes": result.successes,
        "rating_count": result.rating_count,
        "mean_rating": result.mean_rating,
        "earned_units": totals[1],
        "on_probation": result.on_probation,
        "breakdown": formula.breakdown(result, params),
        "computed_at": now,
    }


async def _lock_scores(
    session: AsyncSession, agent_ids: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, float]:
    """Make sure each agent has a score row and lock them all, in id order; return the
    current trust of each."""
    ordered = sorted(set(agent_ids))
    prior = formula.PRIOR
    await session.execute(
        insert_for(session)(TrustScore)
        .values(
            [
                {
                    "agent_id": agent_id,
                    "trust": prior,
                    "grade": formula.grade_for(prior),
                    "level": level_for(prior).value,
                    "breakdown": {},
                    "computed_at": now,
                }
                for agent_id in ordered
            ]
        )
        .on_conflict_do_nothing(index_elements=["agent_id"])
    )
    rows = await session.execute(
        select(TrustScore.agent_id, TrustScore.trust)
        .where(TrustScore.agent_id.in_(ordered))
        .order_by(TrustScore.agent_id)
        .with_for_update()
    )
    return {row[0]: row[1] for row in rows}


async def recompute(
    session: AsyncSession,
    agent_ids: Sequence[uuid.UUID],
    *,
    settings: Settings,
    now: datetime,
    notify: bool = True,
) -> list[Recomputed]:
    """Recompute and store the trust of these agents in the caller's transaction."""
    if not agent_ids:
        return []
    params = params_from(settings)
    agents = {
        agent_id: (created_at, status)
        for agent_id, created_at, status in await session.execute(
            select(Agent.id, Agent.created_at, Agent.status).where(
                Agent.id.in_(sorted(set(agent_ids)))
            )
        )
    }
    if not agents:
        return []
    previous = await _lock_scores(session, list(agents), now)
    ids = sorted(previous)
    outcomes = await counted_outcomes(session, ids)
    probation = await agents_on_probation(session, ids)
    totals = {
        agent_id: (int(count), int(earned or 0))
        for agent_id, count, earned in await session.execute(
            select(AgentMetric.agent_id, func.count(), func.sum(AgentMetric.earned_units))
            .where(AgentMetric.agent_id.in_(ids))
            .group_by(AgentMetric.agent_id)
        )
    }
    held: dict[uuid.UUID, set[str]] = defaultdict(set)
    for agent_id, badge in await session.execute(
        select(TrustBadge.agent_id, TrustBadge.badge).where(TrustBadge.agent_id.in_(ids))
    ):
        held[agent_id].add(badge)

    score_rows = []
    daily_rows = []
    new_badges: list[dict[str, Any]] = []
    gone_badges: list[tuple[uuid.UUID, str]] = []
    changes = []
    for agent_id in ids:
        if agent_id not in agents:
            continue
        enrolled_at, status = agents[agent_id]
        result = formula.compute(
            outcomes.get(agent_id, []),
            enrolled_at=enrolled_at,
            now=now,
            params=params,
            on_probation=agent_id in probation,
        )
        values = _score_values(
            agent_id, result, params=params, totals=totals.get(agent_id, (0, 0)), now=now
        )
        score_rows.append(values)
        daily_rows.append(
            {
                "agent_id": agent_id,
                "day": now.date(),
                "trust": values["trust"],
                "grade": values["grade"],
                "counted_outcomes": result.counted_outcomes,
            }
        )
        badges = set(formula.badges_for(result, verified=status != AgentStatus.BANNED.value))
        earned = sorted(badges - held[agent_id])
        removed = sorted(held[agent_id] - badges)
        new_badges.extend({"agent_id": agent_id, "badge": b, "earned_at": now} for b in earned)
        gone_badges.extend((agent_id, b) for b in removed)
        changes.append(
            Recomputed(
                agent_id=agent_id,
                result=result,
                previous_trust=previous.get(agent_id),
                badges_earned=tuple(earned),
                badges_removed=tuple(removed),
            )
        )
    await _store(session, score_rows, daily_rows, new_badges, gone_badges)
    if notify:
        await _notify(session, changes)
    listener: Callable[[], None] | None = session.info.get(CHANGE_LISTENER_INFO_KEY)
    if listener is not None:
        after_commit(session, listener)
    return changes


async def _store(
    session: AsyncSession,
    score_rows: list[dict[str, Any]],
    daily_rows: list[dict[str, Any]],
    new_badges: list[dict[str, Any]],
    gone_badges: list[tuple[uuid.UUID, str]],
) -> None:
    insert = insert_for(session)
    if score_rows:
        statement = insert(TrustScore).values(score_rows)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["agent_id"],
                set_={
                    name: statement.excluded[name] for name in score_rows[0] if name != "agent_id"
                },
            )
        )
    if daily_rows:
        statement = insert(TrustDaily).values(daily_rows)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["agent_id", "day"],
                set_={
                    "trust": statement.excluded.trust,
                    "grade": statement.excluded.grade,
                    "counted_outcomes": statement.excluded.counted_outcomes,
                },
            )
        )
    if new_badges:
        await session.execute(
            insert(TrustBadge)
            .values(new_badges)
            .on_conflict_do_nothing(index_elements=["agent_id", "badge"])
        )
    if gone_badges:
        await session.execute(
            delete(TrustBadge).where(
                or_(
                    *(
                        and_(TrustBadge.agent_id == agent_id, TrustBadge.badge == badge)
                        for agent_id, badge in gone_badges
                    )
                )
            )
        )


async def _notify(session: AsyncSession, changes: Sequence[Recomputed]) -> None:
    for change in changes:
        recipient = [events.agent_recipient(change.agent_id)]
        trust = change.result.trust
        if change.previous_trust is None or abs(trust - change.previous_trust) > 1e-12:
            await events.publish(
                session,
                recipient,
                "trust.updated",
                {
                    "agent_id": str(change.agent_id),
                    "trust_score": trust,
                    "previous_trust_score": change.previous_trust,
                    "grade": formula.grade_for(trust),
                    "level": level_for(trust).value,
                },
            )
        for badge in change.badges_earned:
            await events.publish(
                session,
                recipient,
                "badge.earned",
                {"agent_id": str(change.agent_id), "badge": badge},
            )
        for badge in change.badges_removed:
            await events.publish(
                session,
                recipient,
                "badge.removed",
                {"agent_id": str(change.agent_id), "badge": badge},
            )


async def recompute_agent(
    session: AsyncSession, agent_id: uuid.UUID, *, settings: Settings, now: datetime
) -> Recomputed:
    return (await recompute(session, [agent_id], settings=settings, now=now))[0]


async def recompute_all(
    database: Database,
    *,
    settings: Settings,
    now: datetime,
    agent_ids: Sequence[uuid.UUID] | None = None,
    chunk_size: int = 500,
) -> int:
    """Recompute every agent (or the given ones) in chunks, one transaction per chunk."""
    if agent_ids is None:
        async with database.read_sessions() as session:
            ids = list(await session.scalars(select(Agent.id).order_by(Agent.id)))
    else:
        ids = sorted(set(agent_ids))
    done = 0
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start : start + chunk_size]

        async def work(session: AsyncSession, chunk: list[uuid.UUID] = chunk) -> int:
            return len(await recompute(session, chunk, settings=settings, now=now, notify=False))

        done += await in_transaction(database, work)
    return done
