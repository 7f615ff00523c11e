"""Ratings: the requester of a settled contract rates the agent that delivered it, once, and
may edit the rating for ``HERMES_TRUST_RATING_EDIT_DAYS`` days. Each change recomputes the
agent's trust in the same transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.config import Settings
from hermes_hub.errors import ConflictError, HubError, NotFoundError
from hermes_hub.mesh.models import AgentMetric, Contract
from hermes_hub.mesh.party import Party
from hermes_hub.trust import service
from hermes_hub.trust.models import Rating

RATEABLE_STATUSES = frozenset({"settled", "resolved"})


class RatingContractNotFoundError(NotFoundError):
    code = "contract_not_found"


@dataclass(frozen=True)
class Stars:
    stars: int
    quality: int | None = None
    speed: int | None = None
    communication: int | None = None
    comment: str | None = None


def _check_range(stars: Stars) -> None:
    # The API validates too; this keeps the rule with the data for other callers.
    for name in ("stars", "quality", "speed", "communication"):
        value = getattr(stars, name)
        if value is not None and not 1 <= value <= 5:
            raise HubError(f"{name} must be 1 to 5.", status=422, code="rating_out_of_range")


async def _rateable_contract(
    session: AsyncSession, *, agent_id: uuid.UUID, contract_id: uuid.UUID, rater: Party
) -> Contract:
    contract = await session.scalar(
        select(Contract).where(Contract.id == contract_id).with_for_update()
    )
    # Someone who did not request the contract learns nothing about it.
    if contract is None or not rater.is_requester_of(contract):
        raise RatingContractNotFoundError("No such contract among yours.")
    if contract.awarded_agent_id != agent_id:
        raise HubError(
            "This contract was not delivered by this agent.",
            status=422,
            code="contract_agent_mismatch",
        )
    if contract.status not in RATEABLE_STATUSES:
        raise ConflictError(
            f"Only a settled contract can be rated; this one is {contract.status}.",
            code="contract_not_settled",
        )
    return contract


async def _sync_metric(session: AsyncSession, contract_id: uuid.UUID, stars: int) -> None:
    await session.execute(
        update(AgentMetric).where(AgentMetric.contract_id == contract_id).values(rating=stars)
    )


def _new_rating(
    contract: Contract, *, rater: Party, stars: Stars, settings: Settings, now: datetime
) -> Rating:
    if contract.awarded_agent_id is None:  # a settled contract always has a winner
        raise ConflictError("This contract has no awarded agent.", code="not_awarded")
    return Rating(
        contract_id=contract.id,
        agent_id=contract.awarded_agent_id,
        rater_owner_id=rater.owner_id,
        rater_ref=rater.ref,
        stars=stars.stars,
        quality=stars.quality,
        speed=stars.speed,
        communication=stars.communication,
        comment=stars.comment,
        created_at=now,
        updated_at=now,
        editable_until=now + timedelta(days=settings.trust_rating_edit_days),
    )


async def record_at_settlement(
    session: AsyncSession,
    *,
    contract: Contract,
    stars: int,
    comment: str | None,
    settings: Settings,
    now: datetime,
) -> Rating:
    """The rating given with the settlement itself; the settlement recomputes trust."""
    rater = Party(
        user_id=contract.requester_user_id,
        agent_id=contract.requester_agent_id,
        owner_id=contract.requester_owner_id,
    )
    _check_range(Stars(stars=stars))
    rating = _new_rating(
        contract, rater=rater, stars=Stars(stars=stars, comment=comment), settings=settings, now=now
    )
    session.add(rating)
    await session.flush()
    return rating


async def rate(
    session: AsyncSession,
    *,
    agent_id: uuid.UUID,
    contract_id: uuid.UUID,
    rater: Party,
    stars: Stars,
    settings: Settings,
    now: datetime,
) -> Rating:
    _check_range(stars)
    contract = await _rateable_contract(
        session, agent_id=agent_id, contract_id=contract_id, rater=rater
    )
    existing = await session.scalar(select(Rating.id).where(Rating.contract_id == contract.id))
    if existing is not None:
        raise ConflictError(
            "This contract is already rated; edit the rating instead (PUT).",
            code="already_rated",
        )
    rating = _new_rating(contract, rater=rater, stars=stars, settings=settings, now=now)
    session.add(rating)
    contract.rating = stars.stars
    await session.flush()
    await _sync_metric(session, contract.id, stars.stars)
    await service.recompute(session, [agent_id], settings=settings, now=now)
    return rating


async def edit(
    session: AsyncSession,
    *,
    agent_id: uuid.UUID,
    contract_id: uuid.UUID,
    rater: Party,
    stars: Stars,
    settings: Settings,
    now: datetime,
) -> Rating:
    _check_range(stars)
    contract = await _rateable_contract(
        session, agent_id=agent_id, contract_id=contract_id, rater=rater
    )
    rating = await session.scalar(
        select(Rating).where(Rating.contract_id == contract.id).with_for_update()
    )
    if rating is None:
        raise HubError("This contract has no rating yet.", status=404, code="rating_not_found")
    if now > rating.editable_until:
        raise ConflictError(
            f"Ratings can be edited for {settings.trust_rating_edit_days} days; "
            "this one can no longer change.",
            code="rating_edit_window_closed",
        )
    rating.stars = stars.stars
    rating.quality = stars.quality
    rating.speed = stars.speed
    rating.communication = stars.communication
    rating.comment = stars.comment
    rating.updated_at = now
    contract.rating = stars.stars
    await session.flush()
    await _sync_metric(session, contract.id, stars.stars)
    await service.recompute(session, [agent_id], settings=settings, now=now)
    return rating
