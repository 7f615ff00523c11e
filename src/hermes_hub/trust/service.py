"""Trust recomputation: read an agent's counted outcomes, apply the formula, store the score,
its badges and today's snapshot.

The same function serves the incremental update (inside a settlement, failure, ruling or
rating, for one agent; in the background after direct calls, see ``nightly``) and the batch
(``hermes trust recompute --all``, in chunks), so they give the same numbers. Each agent's
score row is locked before its outcomes are read, so two transactions touching one agent
apply one after the other and the later one sees the earlier one's outcome.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hermes_hub.a2a.models import AgentCall
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

# How a direct call ended, as trust reads it. Answered: a success on time. Failed by the
# agent: a failure. Anything else (the caller canceled, the caller's request was invalid, an
# outcome this list does not know yet) says nothing about the agent and does not count.
CALL_SUCCESSES = frozenset({"ok"})
CALL_FAILURES = frozenset({"agent_error", "unreachable", "timeout", "malformed", "dropped"})
# The most recent counted direct calls read per agent: older ones have decayed, and an agent
# with a million calls must not load a million rows at every recompute.
DIRECT_CALLS_PER_AGENT = 200


def params_from(settings: Settings) -> TrustParams:
    return TrustParams(
        prior=formula.PRIOR,
        prior_strength=settings.trust_prior_strength,
        half_life_days=settings.trust_half_life_days,
        requester_cap_min=settings.trust_requester_cap_min,
        requester_cap_share=settings.trust_requester_cap_share,
        direct_call_weight=settings.trust_direct_call_weight,
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
    session: AsyncSession,
    agent_ids: Sequence[uuid.UUID],
    *,
    direct_call_weight: float = formula.TrustParams.direct_call_weight,
) -> dict[uuid.UUID, list[Outcome]]:
    """Each agent's counted outcomes: its counted contracts, then (unless
    ``direct_call_weight`` is 0) its most recent counted direct calls, weighing that much."""
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
    if direct_call_weight > 0:
        for agent_id, calls in (await counted_direct_calls(session, agent_ids)).items():
            outcomes[agent_id].extend(
                Outcome(
                    key=f"call:{call_id}",
                    # The caller's owner, as a contract's requester: one owner's calls and
                    # contracts share one requester cap.
                    requester=str(caller_owner_id),
                    at=started_at,
                    success=outcome in CALL_SUCCESSES,
                    on_time=outcome in CALL_SUCCESSES,
                    validation_score=1.0 if outcome in CALL_SUCCESSES else 0.0,
                    base_weight=direct_call_weight,
                    direct_call=True,
                )
                for call_id, caller_owner_id, started_at, outcome in calls
            )
    return outcomes


def _call_between_affiliates(target: Any, caller_agent: Any) -> Any:
    """True for a call whose caller shares an owner or an organization with the agent it
    called, by the rules ``exclusion_reason`` applies to contracts. Never NULL (each
    comparison of a nullable column is guarded), so its negation keeps unaffiliated calls."""
    caller_owner = AgentCall.caller_owner_id
    mine = aliased(OrgMembership)
    theirs = aliased(OrgMembership)
    return or_(
        and_(caller_owner.is_not(None), caller_owner == target.owner_id),
        and_(
            AgentCall.caller_agent_id.is_not(None),
            AgentCall.caller_agent_id == AgentCall.target_agent_id,
        ),
        and_(
            caller_agent.organization_id.is_not(None),
            target.organization_id.is_not(None),
            caller_agent.organization_id == target.organization_id,
        ),
        exists().where(
            mine.organization_id == caller_agent.organization_id,
            mine.user_id == target.owner_id,
        ),
        select(mine.organization_id)
        .join(theirs, theirs.organization_id == mine.organization_id)
        .where(mine.user_id == caller_owner, theirs.user_id == target.owner_id)
        .exists(),
        exists().where(
            mine.organization_id == target.organization_id,
            mine.user_id == caller_owner,
        ),
    )


async def counted_direct_calls(
    session: AsyncSession, agent_ids: Sequence[uuid.UUID], *, limit: int = DIRECT_CALLS_PER_AGENT
) -> dict[uuid.UUID, list[tuple[uuid.UUID, uuid.UUID, datetime, str]]]:
    """Each agent's ``limit`` most recent counted direct calls, newest first, as (call id,
    caller's owner, started at, outcome), in one statement for all the agents.

    A call counts when it ended in ``CALL_SUCCESSES`` or ``CALL_FAILURES`` and its caller has
    a known owner unaffiliated with the agent (not its owner, not the agent itself, no shared
    organization). The limit applies after these exclusions, so a flood of calls that do not
    count cannot push out the ones that do.

    PostgreSQL walks each agent's calls newest first down the (target, started_at) index and
    stops at the limit (a LATERAL join), so an agent with a million calls costs what one
    with ``limit`` does; SQLite, which has no LATERAL, numbers every counted call of the
    agents with ``row_number()`` and keeps the first ``limit``.
    """
    if not agent_ids:
        return {}
    target = aliased(Agent)
    caller_agent = aliased(Agent)
    newest_first = (AgentCall.started_at.desc(), AgentCall.id.desc())
    counted = (
        select(
            AgentCall.target_agent_id,
            AgentCall.id,
            AgentCall.caller_owner_id,
            AgentCall.started_at,
            AgentCall.outcome,
        )
        .join(target, target.id == AgentCall.target_agent_id)
        .outerjoin(caller_agent, caller_agent.id == AgentCall.caller_agent_id)
        .where(
            AgentCall.outcome.in_(sorted(CALL_SUCCESSES | CALL_FAILURES)),
            AgentCall.caller_owner_id.is_not(None),
            ~_call_between_affiliates(target, caller_agent),
        )
    )
    if dialect_name(session) == "postgresql":
        per_agent = (
            counted.where(AgentCall.target_agent_id == Agent.id)
            .order_by(*newest_first)
            .limit(limit)
            .lateral()
        )
        query = (
            select(*per_agent.c)
            .select_from(Agent)
            .join(per_agent, true())
            .where(Agent.id.in_(agent_ids))
            .order_by(
                per_agent.c.target_agent_id,
                *(c.desc() for c in (per_agent.c.started_at, per_agent.c.id)),
            )
        )
    else:
        ranked = (
            counted.add_columns(
                func.row_number()
                .over(partition_by=AgentCall.target_agent_id, order_by=newest_first)
                .label("recency")
            )
            .where(AgentCall.target_agent_id.in_(agent_ids))
            .subquery()
        )
        query = (
            select(*(c for c in ranked.c if c.name != "recency"))
            .where(ranked.c.recency <= limit)
            .order_by(ranked.c.target_agent_id, ranked.c.recency)
        )
    calls: dict[uuid.UUID, list[tuple[uuid.UUID, uuid.UUID, datetime, str]]] = defaultdict(list)
    for agent_id, call_id, caller_owner_id, started_at, outcome in await session.execute(query):
        calls[agent_id].append((call_id, caller_owner_id, started_at, outcome))
    return calls


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
    outcomes = await counted_outcomes(session, ids, direct_call_weight=params.direct_call_weight)
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
    notify: bool = False,
) -> int:
    """Recompute every agent (or the given ones) in chunks, one transaction per chunk;
    ``notify`` sends each agent its ``trust.updated`` and badge events."""
    if agent_ids is None:
        async with database.read_sessions() as session:
            ids = list(await session.scalars(select(Agent.id).order_by(Agent.id)))
    else:
        ids = sorted(set(agent_ids))
    done = 0
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start : start + chunk_size]

        async def work(session: AsyncSession, chunk: list[uuid.UUID] = chunk) -> int:
            return len(await recompute(session, chunk, settings=settings, now=now, notify=notify))

        done += await in_transaction(database, work)
    return done
