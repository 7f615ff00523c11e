"""HTTP routes of trust: scores, reputation, history, ratings, the leaderboard, and the admin
side (integrity flags, scans, recomputation, bans). Thin: parse, authorize, call services."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.db.session import DatabaseDep, DbSession
from hermes_hub.db.transaction import in_transaction
from hermes_hub.identity import service as identity
from hermes_hub.identity.deps import (
    AdminUser,
    CurrentPrincipal,
    forget_cached_principals,
    require_admin,
)
from hermes_hub.identity.schemas import AgentPrivate, agent_private
from hermes_hub.kit.money import units_to_credits
from hermes_hub.kit.pagination import Page, PageParams, page_params
from hermes_hub.kit.time import utcnow
from hermes_hub.mesh.models import AgentMetric
from hermes_hub.mesh.party import Party
from hermes_hub.runtime import RuntimeDep
from hermes_hub.trust import formula, leaderboard, ratings, review, service
from hermes_hub.trust.levels import level_for
from hermes_hub.trust.models import Rating, TrustBadge, TrustDaily, TrustFlag, TrustScore
from hermes_hub.trust.schemas import (
    BadgeOut,
    BanRequest,
    FlagOut,
    FlagResolution,
    LeaderboardOut,
    LeaderboardRow,
    OutcomeOut,
    RatingCreate,
    RatingFields,
    RatingOut,
    RecomputeOut,
    RecomputeRequest,
    ReputationOut,
    ReputationStats,
    ScanOut,
    TrustHistoryOut,
    TrustPoint,
    TrustScoreOut,
)

Paging = Annotated[PageParams, Depends(page_params)]

marketplace_router = APIRouter(prefix="/api/v1/marketplace", tags=["trust"])
agent_trust_router = APIRouter(prefix="/api/v1/agents", tags=["trust"])
admin_trust_router = APIRouter(
    prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)]
)

# ---- reading ----


def _score_out(agent_id: uuid.UUID, score: TrustScore | None) -> TrustScoreOut:
    if score is None:  # enrolled before trust existed and not recomputed yet
        prior = formula.PRIOR
        return TrustScoreOut(
            agent_id=agent_id,
            trust_score=prior,
            grade=formula.grade_for(prior),
            level=level_for(prior).value,
            on_probation=False,
            computed_at=None,
        )
    return TrustScoreOut(
        agent_id=agent_id,
        trust_score=score.trust,
        grade=score.grade,
        level=score.level,
        on_probation=score.on_probation,
        computed_at=score.computed_at,
    )


@marketplace_router.get(
    "/agents/{agent_id}/trust-score",
    response_model=TrustScoreOut,
    operation_id="get_trust_score",
)
async def get_trust_score(
    agent_id: uuid.UUID, viewer: CurrentPrincipal, session: DbSession
) -> TrustScoreOut:
    """The agent's published trust, grade and level."""
    await identity.get_visible_agent(session, agent_id=agent_id, viewer=viewer)
    return _score_out(agent_id, await session.get(TrustScore, agent_id))


@marketplace_router.get(
    "/agents/{agent_id}/reputation", response_model=ReputationOut, operation_id="get_reputation"
)
async def get_reputation(
    agent_id: uuid.UUID, viewer: CurrentPrincipal, session: DbSession
) -> ReputationOut:
    """How the trust score was computed (each component, its weight, inputs and value; raw
    and published score), the badges held and when each was earned, and headline stats."""
    await identity.get_visible_agent(session, agent_id=agent_id, viewer=viewer)
    score = await session.get(TrustScore, agent_id)
    badges = (
        await session.scalars(
            select(TrustBadge)
            .where(TrustBadge.agent_id == agent_id)
            .order_by(TrustBadge.earned_at, TrustBadge.badge)
        )
    ).all()
    base = _score_out(agent_id, score)
    breakdown = score.breakdown if score is not None and score.breakdown else {}
    earned = score.earned_units if score is not None else 0
    return ReputationOut(
        **base.model_dump(),
        breakdown=breakdown,
        badges=[
            BadgeOut(
                badge=badge.badge,
                description=formula.BADGE_DESCRIPTIONS.get(badge.badge, ""),
                earned_at=badge.earned_at,
            )
            for badge in badges
        ],
        stats=ReputationStats(
            contracts=score.total_outcomes if score is not None else 0,
            counted_outcomes=score.counted_outcomes if score is not None else 0,
            success_rate=formula.success_rate_of(breakdown),
            mean_rating=score.mean_rating if score is not None else None,
            rating_count=score.rating_count if score is not None else 0,
            earnings=float(units_to_credits(earned)),
            earnings_units=earned,
        ),
    )


@marketplace_router.get(
    "/agents/{agent_id}/trust-history",
    response_model=TrustHistoryOut,
    operation_id="get_trust_history",
)
async def get_trust_history(
    agent_id: uuid.UUID,
    viewer: CurrentPrincipal,
    session: DbSession,
    days: Annotated[int, Query(ge=1, le=3650)] = 90,
) -> TrustHistoryOut:
    """Trust over time: the last score of each UTC day on which it was computed."""
    await identity.get_visible_agent(session, agent_id=agent_id, viewer=viewer)
    since = (utcnow() - timedelta(days=days)).date()
    rows = (
        await session.scalars(
            select(TrustDaily)
            .where(TrustDaily.agent_id == agent_id, TrustDaily.day >= since)
            .order_by(TrustDaily.day)
        )
    ).all()
    return TrustHistoryOut(
        agent_id=agent_id,
        points=[
            TrustPoint(
                day=row.day,
                trust_score=row.trust,
                grade=row.grade,
                counted_outcomes=row.counted_outcomes,
            )
            for row in rows
        ],
    )


@agent_trust_router.get(
    "/{agent_id}/history", response_model=Page[OutcomeOut], operation_id="get_agent_history"
)
async def get_agent_history(
    agent_id: uuid.UUID, viewer: CurrentPrincipal, session: DbSession, paging: Paging
) -> Page[OutcomeOut]:
    """The agent's measured outcomes, newest first. Contract ids are shown to those who may
    see the agent's private details."""
    _, private = await identity.get_visible_agent(session, agent_id=agent_id, viewer=viewer)
    flagged = service.flagged_condition()
    rows = (
        await session.execute(
            select(AgentMetric, flagged.label("flagged"))
            .where(AgentMetric.agent_id == agent_id)
            .order_by(AgentMetric.created_at.desc(), AgentMetric.id)
            .limit(paging.limit)
            .offset(paging.offset)
        )
    ).all()
    total = await session.scalar(
        select(func.count()).select_from(AgentMetric).where(AgentMetric.agent_id == agent_id)
    )
    items = []
    for metric, is_flagged in rows:
        reason = metric.excluded_reason or ("flagged" if is_flagged else None)
        items.append(
            OutcomeOut(
                contract_id=metric.contract_id if private else None,
                capability=metric.capability,
                outcome=metric.outcome,
                success=metric.success,
                validation_score=metric.validation_score,
                on_time=metric.on_time,
                execution_seconds=metric.execution_seconds,
                promised_seconds=metric.promised_seconds,
                rating=metric.rating,
                counts_for_trust=reason is None,
                excluded_reason=reason,
                created_at=metric.created_at,
            )
        )
    return Page(items=items, limit=paging.limit, offset=paging.offset, total=int(total or 0))


@marketplace_router.get(
    "/leaderboard", response_model=LeaderboardOut, operation_id="get_leaderboard"
)
async def get_leaderboard(
    request: Request,
    viewer: CurrentPrincipal,
    session: DbSession,
    runtime: RuntimeDep,
    by: leaderboard.RankBy = leaderboard.RankBy.TRUST,
    period: leaderboard.Period = leaderboard.Period.ALL,
    capability: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> LeaderboardOut:
    """The top 100 public agents by trust, counted contracts or earnings over the period."""
    minimum = runtime.settings.trust_leaderboard_min_outcomes
    rows, cached = await leaderboard.leaderboard(
        session,
        request.app.state.leaderboard_cache,
        by=by,
        period=period,
        capability=capability,
        min_outcomes=minimum,
        now=utcnow(),
    )
    return LeaderboardOut(
        by=by.value,
        period=period.value,
        capability=capability,
        min_outcomes_for_trust=minimum,
        cached=cached,
        items=[LeaderboardRow.model_validate(row) for row in rows],
    )


# ---- ratings ----


def _stars(body: RatingFields) -> ratings.Stars:
    return ratings.Stars(
        stars=body.stars,
        quality=body.quality,
        speed=body.speed,
        communication=body.communication,
        comment=body.comment,
    )


def _rating_out(rating: Rating) -> RatingOut:
    return RatingOut(
        id=rating.id,
        contract_id=rating.contract_id,
        agent_id=rating.agent_id,
        stars=rating.stars,
        quality=rating.quality,
        speed=rating.speed,
        communication=rating.communication,
        comment=rating.comment,
        created_at=rating.created_at,
        updated_at=rating.updated_at,
        editable_until=rating.editable_until,
    )


@agent_trust_router.post(
    "/{agent_id}/rate",
    status_code=status.HTTP_201_CREATED,
    response_model=RatingOut,
    operation_id="rate_agent",
)
async def rate_agent(
    agent_id: uuid.UUID,
    body: RatingCreate,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    runtime: RuntimeDep,
) -> RatingOut:
    """Rate the agent for a settled contract you requested: once per contract (edit it with
    PUT within the edit window). The agent's trust is recomputed in the same transaction."""
    rater = Party.of(principal)

    async def work(session: AsyncSession) -> RatingOut:
        rating = await ratings.rate(
            session,
            agent_id=agent_id,
            contract_id=body.contract_id,
            rater=rater,
            stars=_stars(body),
            settings=runtime.settings,
            now=utcnow(),
        )
        return _rating_out(rating)

    return await in_transaction(database, work)


@agent_trust_router.put(
    "/{agent_id}/ratings/{contract_id}", response_model=RatingOut, operation_id="edit_rating"
)
async def edit_rating(
    agent_id: uuid.UUID,
    contract_id: uuid.UUID,
    body: RatingFields,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    runtime: RuntimeDep,
) -> RatingOut:
    """Replace your rating of a contract while its edit window is open."""
    rater = Party.of(principal)

    async def work(session: AsyncSession) -> RatingOut:
        rating = await ratings.edit(
            session,
            agent_id=agent_id,
            contract_id=contract_id,
            rater=rater,
            stars=_stars(body),
            settings=runtime.settings,
            now=utcnow(),
        )
        return _rating_out(rating)

    return await in_transaction(database, work)


# ---- admin ----


def _flag_out(flag: TrustFlag, contracts: int) -> FlagOut:
    return FlagOut(
        id=flag.id,
        kind=flag.kind,
        status=flag.status,
        subject_agent_id=flag.subject_agent_id,
        accounts=flag.accounts,
        agent_ids=flag.agent_ids,
        contracts_held_back=contracts,
        detail=flag.detail,
        created_at=flag.created_at,
        updated_at=flag.updated_at,
        resolved_at=flag.resolved_at,
        resolved_by=flag.resolved_by,
        resolution_note=flag.resolution_note,
    )


@admin_trust_router.get(
    "/trust/flags", response_model=Page[FlagOut], operation_id="admin_list_trust_flags"
)
async def list_trust_flags(
    session: DbSession,
    paging: Paging,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(open|confirmed|dismissed)$")
    ] = None,
) -> Page[FlagOut]:
    """Suspicions raised by the integrity scan and by re-enrollments of banned agents."""
    flags, total = await review.list_flags(
        session, status=status_, limit=paging.limit, offset=paging.offset
    )
    counts = await review.flag_contract_count(session, [flag.id for flag in flags])
    return Page(
        items=[_flag_out(flag, counts.get(flag.id, 0)) for flag in flags],
        limit=paging.limit,
        offset=paging.offset,
        total=total,
    )


@admin_trust_router.post(
    "/trust/flags/{flag_id}/resolve",
    response_model=FlagOut,
    operation_id="admin_resolve_trust_flag",
)
async def resolve_trust_flag(
    flag_id: uuid.UUID,
    body: FlagResolution,
    admin: AdminUser,
    database: DatabaseDep,
    runtime: RuntimeDep,
) -> FlagOut:
    """Confirm (the held-back outcomes never count; probation stays) or dismiss (they count
    again; probation ends). The affected agents are recomputed in the same transaction."""

    async def work(session: AsyncSession) -> FlagOut:
        flag = await review.resolve_flag(
            session,
            flag_id=flag_id,
            decision=body.decision,
            note=body.note,
            admin=admin,
            settings=runtime.settings,
            now=utcnow(),
        )
        counts = await review.flag_contract_count(session, [flag.id])
        return _flag_out(flag, counts.get(flag.id, 0))

    return await in_transaction(database, work)


@admin_trust_router.post("/trust/scan", response_model=ScanOut, operation_id="admin_trust_scan")
async def run_trust_scan(database: DatabaseDep, runtime: RuntimeDep) -> ScanOut:
    """Run the integrity scan now (it also runs nightly)."""

    async def work(session: AsyncSession) -> ScanOut:
        report = await review.scan(session, settings=runtime.settings, now=utcnow())
        return ScanOut(**report.as_dict())

    return await in_transaction(database, work)


@admin_trust_router.post(
    "/trust/recompute", response_model=RecomputeOut, operation_id="admin_trust_recompute"
)
async def recompute_trust(
    database: DatabaseDep, runtime: RuntimeDep, body: RecomputeRequest | None = None
) -> RecomputeOut:
    """Recompute the given agents, or all of them, from their outcomes."""
    done = await service.recompute_all(
        database,
        settings=runtime.settings,
        now=utcnow(),
        agent_ids=body.agent_ids if body is not None else None,
    )
    return RecomputeOut(agents_recomputed=done)


@admin_trust_router.post(
    "/agents/{agent_id}/ban", response_model=AgentPrivate, operation_id="admin_ban_agent"
)
async def ban_agent(
    agent_id: uuid.UUID,
    body: BanRequest,
    admin: AdminUser,
    request: Request,
    database: DatabaseDep,
    runtime: RuntimeDep,
) -> AgentPrivate:
    """Ban an agent: its keys are revoked and it can no longer work; its key and name are
    remembered, so a re-enrollment starts on probation, capped at the prior."""

    async def work(session: AsyncSession) -> AgentPrivate:
        agent = await review.ban_agent(
            session,
            agent_id=agent_id,
            reason=body.reason,
            admin=admin,
            settings=runtime.settings,
            now=utcnow(),
        )
        forget_cached_principals(request, session, agent_id=agent.id)
        return agent_private(agent)

    return await in_transaction(database, work)


routers = (marketplace_router, agent_trust_router, admin_trust_router)
