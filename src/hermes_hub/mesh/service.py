"""Contract lifecycle: every transition runs in the caller's transaction together with its
escrow movement, its metric row and its events, so a transition is applied whole or not at
all. Functions flush but never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.config import Settings
from hermes_hub.errors import ConflictError, HubError, NotFoundError
from hermes_hub.events import log as events
from hermes_hub.identity.models import Agent, AgentStatus, User
from hermes_hub.identity.principal import Principal
from hermes_hub.identity.service import capability_condition
from hermes_hub.kit.money import percent_to_basis_points, units_to_credits
from hermes_hub.ledger import accounts, escrow
from hermes_hub.ledger.escrow import FeeRates
from hermes_hub.ledger.models import Hold
from hermes_hub.mesh import preferences as prefs
from hermes_hub.mesh.models import AgentMetric, Bid, Contract
from hermes_hub.mesh.party import Party
from hermes_hub.mesh.scoring import Candidate, RankedBid, rank_bids, speed_horizon
from hermes_hub.mesh.states import ContractAction, ContractMode, ContractStatus, next_status
from hermes_hub.mesh.validation import check_schema, validate_delivery
from hermes_hub.trust import ratings
from hermes_hub.trust import service as trust
from hermes_hub.trust.levels import Complexity, level_for, may_take, minimum_level
from hermes_hub.trust.models import Rating
from hermes_hub.trust.service import trust_score, trust_scores

S = ContractStatus
A = ContractAction
SUCCESS_SCORE = 0.6


class ContractNotFoundError(NotFoundError):
    code = "contract_not_found"


class BidRefusedError(HubError):
    """A bid or claim the contract's rules refuse: 403 for who you are, 409 for the state."""


class NotRequesterError(HubError):
    status = 403
    code = "not_requester"


class NotAwardedAgentError(HubError):
    status = 403
    code = "not_awarded_agent"


def requester_ref(contract: Contract) -> str:
    if contract.requester_agent_id is not None:
        return events.agent_recipient(contract.requester_agent_id)
    # A user requester answers for itself: its owner id is its own id.
    return events.user_recipient(contract.requester_owner_id)


def _winner_id(contract: Contract) -> uuid.UUID:
    if contract.awarded_agent_id is None:  # the state machine rules this out
        raise ConflictError("This contract has no awarded agent.", code="not_awarded")
    return contract.awarded_agent_id


def fee_rates(settings: Settings) -> FeeRates:
    return FeeRates(
        platform_fee_bp=percent_to_basis_points(settings.platform_fee_percent),
        org_share_bp=percent_to_basis_points(settings.org_share_percent),
    )


# ---- event payloads ----


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _credits(units: int | None) -> float | None:
    return float(units_to_credits(units)) if units is not None else None


def summary(contract: Contract) -> dict[str, Any]:
    """What every event about a contract carries (nothing private to one party)."""
    return {
        "contract_id": str(contract.id),
        "status": contract.status,
        "mode": contract.mode,
        "capability": contract.capability,
        "intent": contract.intent[:500],
        "complexity": contract.complexity,
        "reward": _credits(contract.reward_units),
        "reward_units": contract.reward_units,
        "max_price": _credits(contract.max_price_units),
        "min_reputation": contract.min_reputation,
        "bidding_closes_at": _iso(contract.bidding_closes_at),
        "deadline_at": _iso(contract.deadline_at),
    }


async def _emit(
    session: AsyncSession,
    recipients: Sequence[str],
    type_: str,
    contract: Contract,
    **extra: Any,
) -> None:
    await events.publish(session, recipients, type_, {**summary(contract), **extra})


# ---- reading and locking ----


async def _locked(
    session: AsyncSession,
    contract_id: uuid.UUID,
    *,
    shared: bool = False,
    skip_locked: bool = False,
) -> Contract | None:
    # populate_existing: a row already in the session is refreshed with the locked values.
    contract: Contract | None = await session.scalar(
        select(Contract)
        .where(Contract.id == contract_id)
        .with_for_update(read=shared, skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )
    return contract


async def _lock(session: AsyncSession, contract_id: uuid.UUID, *, shared: bool = False) -> Contract:
    contract = await _locked(session, contract_id, shared=shared)
    if contract is None:
        raise ContractNotFoundError("No such contract.")
    return contract


async def _require_requester(
    session: AsyncSession, contract: Contract, by: Party, verb: str
) -> None:
    """Only the requester may; someone who may not even see the contract gets a 404."""
    if by.is_requester_of(contract):
        return
    sees = by.is_admin or (_open_to_agents(contract) and by.agent_id is not None)
    if not sees and by.agent_id is not None:
        sees = contract.awarded_agent_id == by.agent_id or (
            await session.scalar(
                select(Bid.id).where(Bid.contract_id == contract.id, Bid.agent_id == by.agent_id)
            )
            is not None
        )
    if not sees:
        raise ContractNotFoundError("No such contract.")
    raise NotRequesterError(f"Only the requester can {verb} this contract.")


def _status(contract: Contract) -> ContractStatus:
    return ContractStatus(contract.status)


def _transition(contract: Contract, action: ContractAction, *, now: datetime) -> None:
    contract.status = next_status(_status(contract), action).value
    if ContractStatus(contract.status) in (S.SETTLED, S.RESOLVED, S.CANCELLED, S.EXPIRED, S.FAILED):
        contract.closed_at = now
        contract.next_due_at = None
        contract.held_units = 0  # the hold was released or refunded in this transaction


async def _hold_of(session: AsyncSession, contract: Contract) -> Hold:
    hold = await escrow.get_hold_for_contract(session, contract.id)
    if hold is None:  # pragma: no cover - created with the contract, in the same transaction
        raise ConflictError("This contract has no escrow hold.", code="hold_missing")
    return hold


async def bids_of(session: AsyncSession, contract_id: uuid.UUID) -> list[Bid]:
    return list(
        (
            await session.scalars(
                select(Bid).where(Bid.contract_id == contract_id).order_by(Bid.placed_at, Bid.id)
            )
        ).all()
    )


# ---- create ----


@dataclass(frozen=True)
class ContractDraft:
    intent: str
    capability: str
    reward_units: int
    mode: ContractMode = ContractMode.AUCTION
    complexity: Complexity = Complexity.SIMPLE
    context: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    bidding_seconds: int = 5
    deadline_seconds: int | None = None
    max_price_units: int | None = None
    min_reputation: float | None = None

    @property
    def held_units(self) -> int:
        """The most the requester may owe: in an auction the price cap, in claim mode the
        reward (a claim is paid the reward)."""
        if self.mode is ContractMode.AUCTION and self.max_price_units is not None:
            return self.max_price_units
        return self.reward_units


async def create_contract(
    session: AsyncSession,
    *,
    requester: Party,
    draft: ContractDraft,
    settings: Settings,
    now: datetime,
) -> Contract:
    if draft.output_schema is not None:
        check_schema(draft.output_schema)
    if requester.agent_id is not None:
        payer = await accounts.agent_wallet(session, requester.agent_id)
    else:
        payer = await accounts.user_wallet(session, requester.owner_id)
    opening = S.BIDDING if draft.mode is ContractMode.AUCTION else S.OPEN
    closes_at = now + timedelta(seconds=draft.bidding_seconds)
    contract = Contract(
        id=uuid.uuid4(),
        requester_user_id=requester.user_id,
        requester_agent_id=requester.agent_id,
        requester_owner_id=requester.owner_id,
        payer_account_id=payer,
        intent=draft.intent,
        capability=draft.capability,
        context=draft.context,
        output_schema=draft.output_schema,
        mode=draft.mode.value,
        complexity=draft.complexity.value,
        reward_units=draft.reward_units,
        max_price_units=draft.max_price_units,
        held_units=draft.held_units,
        min_reputation=draft.min_reputation,
        bidding_seconds=draft.bidding_seconds,
        deadline_seconds=draft.deadline_seconds,
        delivery_window_seconds=draft.deadline_seconds or settings.default_delivery_seconds,
        status=opening.value,
        created_at=now,
        bidding_closes_at=closes_at,
        next_due_at=closes_at,
    )
    session.add(contract)
    await session.flush()
    await escrow.hold(
        session,
        payer_account_id=payer,
        amount=draft.held_units,
        contract_id=contract.id,
        actor=requester.ref,
    )
    matching = await matching_agents(session, contract)
    await _emit(
        session, [events.agent_recipient(a) for a in matching], "contract.created", contract
    )
    return contract


async def matching_agents(session: AsyncSession, contract: Contract) -> list[uuid.UUID]:
    """Active agents with the capability that may bid: not the requester's own, trusted
    enough, of a level the complexity allows."""
    query: Select[uuid.UUID] = select(Agent.id).where(
        Agent.status == AgentStatus.ACTIVE.value,
        Agent.owner_id != contract.requester_owner_id,
    )
    query = query.where(capability_condition(session))
    candidates = list((await session.scalars(query, {"cap": contract.capability})).all())
    trust = await trust_scores(session, candidates)
    complexity = Complexity(contract.complexity)
    return [
        agent_id
        for agent_id in candidates
        if may_take(complexity, trust[agent_id])
        and (contract.min_reputation is None or trust[agent_id] >= contract.min_reputation)
    ]


# ---- eligibility shared by bids and claims ----


async def _check_agent_may_take(session: AsyncSession, contract: Contract, agent: Agent) -> float:
    """Refuse an agent the contract excludes; return its trust."""
    if agent.status != AgentStatus.ACTIVE.value:
        raise BidRefusedError(
            "This agent is paused; reactivate it to take work.", status=403, code="agent_inactive"
        )
    if agent.owner_id == contract.requester_owner_id:
        raise BidRefusedError(
            "An agent cannot take a contract posted by its own owner or a sibling agent.",
            status=403,
            code="self_dealing",
        )
    if contract.capability not in (agent.capabilities or []):
        raise BidRefusedError(
            f"This agent does not declare the capability '{contract.capability}'.",
            status=403,
            code="capability_missing",
        )
    trust = await trust_score(session, agent.id)
    if contract.min_reputation is not None and trust < contract.min_reputation:
        raise BidRefusedError(
            f"This contract asks for trust of at least {contract.min_reputation}; "
            f"the agent has {trust}.",
            status=403,
            code="reputation_too_low",
        )
    complexity = Complexity(contract.complexity)
    if not may_take(complexity, trust):
        raise BidRefusedError(
            f"A {complexity.value} contract needs level {minimum_level(complexity).value} or "
            f"above; the agent is {level_for(trust).value}.",
            status=403,
            code="level_too_low",
        )
    return trust


def _bidding_open(contract: Contract, now: datetime) -> bool:
    return now < contract.bidding_closes_at


# ---- bid ----


@dataclass(frozen=True)
class BidResult:
    bid: Bid
    replaced: bool


async def place_bid(
    session: AsyncSession,
    *,
    contract_id: uuid.UUID,
    agent: Agent,
    price_units: int,
    eta_seconds: int,
    confidence: float,
    note: str | None,
    now: datetime,
) -> BidResult:
    # A shared lock: bids run side by side, but never alongside the award's exclusive lock,
    # so no bid slips in after the award has read the bids.
    contract = await _lock(session, contract_id, shared=True)
    if contract.mode == ContractMode.CLAIM.value:
        raise ConflictError(
            "This is a claim-mode contract: claim it instead of bidding.", code="wrong_mode"
        )
    next_status(_status(contract), A.BID)
    if not _bidding_open(contract, now):
        raise ConflictError("Bidding on this contract has closed.", code="bidding_closed")
    await _check_agent_may_take(session, contract, agent)
    cap = (
        contract.max_price_units if contract.max_price_units is not None else contract.reward_units
    )
    if price_units > cap:
        raise BidRefusedError(
            f"The price {units_to_credits(price_units)} is above this contract's maximum "
            f"of {units_to_credits(cap)}.",
            status=409,
            code="price_above_max",
        )
    existing = await session.scalar(
        select(Bid).where(Bid.contract_id == contract.id, Bid.agent_id == agent.id)
    )
    if existing is None:
        bid = Bid(
            contract_id=contract.id,
            agent_id=agent.id,
            price_units=price_units,
            eta_seconds=eta_seconds,
            confidence=confidence,
            note=note,
            placed_at=now,
            created_at=now,
        )
        session.add(bid)
    else:
        bid = existing
        bid.price_units = price_units
        bid.eta_seconds = eta_seconds
        bid.confidence = confidence
        bid.note = note
        bid.placed_at = now
        bid.revisions += 1
    await session.flush()
    await _emit(
        session,
        [requester_ref(contract)],
        "contract.bid",
        contract,
        bid={
            "bid_id": str(bid.id),
            "agent_id": str(agent.id),
            "price": _credits(price_units),
            "eta_seconds": eta_seconds,
            "confidence": confidence,
            "replaced": existing is not None,
        },
    )
    return BidResult(bid=bid, replaced=existing is not None)


# ---- award ----


@dataclass
class AwardResult:
    contract: Contract
    ranking: list[RankedBid]
    weights: dict[str, float]
    filters: dict[str, Any]
    expired: bool = False
    winner: RankedBid | None = field(default=None)


def ranking_entry(entry: RankedBid) -> dict[str, Any]:
    candidate = entry.candidate
    return {
        "bid_id": str(candidate.bid_id),
        "agent_id": str(candidate.agent_id),
        "price": _credits(candidate.price_units),
        "price_units": candidate.price_units,
        "eta_seconds": candidate.eta_seconds,
        "confidence": candidate.confidence,
        "trust": candidate.trust,
        "components": entry.components.as_dict(),
        "score": entry.score_value,
        "outcome": entry.outcome,
        "reason": entry.reason,
        "rank": entry.rank,
    }


async def candidates_for(
    session: AsyncSession, contract: Contract, bids: Sequence[Bid]
) -> list[Candidate]:
    agents = {
        agent.id: agent
        for agent in (
            await session.scalars(select(Agent).where(Agent.id.in_([b.agent_id for b in bids])))
        ).all()
    }
    trust = await trust_scores(session, agents)
    candidates = []
    for bid in bids:
        agent = agents[bid.agent_id]
        disqualified = None
        if agent.status != AgentStatus.ACTIVE.value:
            disqualified = "the agent was paused after bidding"
        elif contract.min_reputation is not None and trust[agent.id] < contract.min_reputation:
            disqualified = f"trust {trust[agent.id]} is below the contract's min_reputation"
        candidates.append(
            Candidate(
                bid_id=bid.id,
                agent_id=bid.agent_id,
                price_units=bid.price_units,
                eta_seconds=bid.eta_seconds,
                confidence=bid.confidence,
                trust=trust[agent.id],
                placed_at=bid.placed_at,
                disqualified=disqualified,
            )
        )
    return candidates


async def award(
    session: AsyncSession,
    *,
    contract_id: uuid.UUID,
    now: datetime,
    by: Party | None,
    chosen_bid_id: uuid.UUID | None = None,
) -> AwardResult:
    """Award the contract to the best eligible bid (``by`` None: the scheduler at close).

    At close with no eligible bid the contract expires and the hold is refunded.
    """
    contract = await _lock(session, contract_id)
    if by is not None:
        await _require_requester(session, contract, by, "award")
    next_status(_status(contract), A.AWARD)
    if contract.mode == ContractMode.CLAIM.value:
        raise ConflictError("A claim-mode contract is taken by claiming.", code="wrong_mode")
    bids = await bids_of(session, contract.id)
    values = await prefs.get_preferences(session, requester_ref(contract))
    ranking = rank_bids(
        await candidates_for(session, contract, bids),
        reward_units=contract.reward_units,
        horizon_seconds=speed_horizon(contract.deadline_seconds),
        weights=values.weights,
        filters=values.filters,
        chosen_bid_id=chosen_bid_id,
    )
    filters = {
        "max_price": _credits(values.max_price_units),
        "min_confidence": values.min_confidence,
        "min_reputation": values.min_reputation,
    }
    result = AwardResult(
        contract=contract, ranking=ranking, weights=values.weights.as_dict(), filters=filters
    )
    if chosen_bid_id is not None:
        picked = next((r for r in ranking if r.candidate.bid_id == chosen_bid_id), None)
        if picked is None:
            raise NotFoundError("No such bid on this contract.", code="bid_not_found")
        if not picked.eligible:
            raise ConflictError(
                f"That bid cannot win: {picked.reason}.",
                code="bid_ineligible",
                extra={"ranking": [ranking_entry(r) for r in ranking]},
            )
    winner = ranking[0] if ranking and ranking[0].eligible else None
    if winner is None:
        if by is not None:
            raise ConflictError(
                "No bid is eligible yet; wait for bids or let bidding close.",
                code="no_eligible_bid",
                extra={"ranking": [ranking_entry(r) for r in ranking]},
            )
        await _expire(session, contract, now=now, ranking=ranking, result=result)
        result.expired = True
        return result
    hold = await _hold_of(session, contract)
    await escrow.reduce(
        session,
        hold_id=hold.id,
        amount=winner.candidate.price_units,
        actor=by.ref if by is not None else "system:scheduler",
    )
    _transition(contract, A.AWARD, now=now)
    contract.held_units = winner.candidate.price_units
    contract.awarded_at = now
    contract.awarded_bid_id = winner.candidate.bid_id
    contract.awarded_agent_id = winner.candidate.agent_id
    contract.price_units = winner.candidate.price_units
    contract.promised_eta_seconds = winner.candidate.eta_seconds
    contract.deadline_at = now + timedelta(seconds=contract.delivery_window_seconds)
    contract.next_due_at = contract.deadline_at
    contract.award_report = {
        "awarded_by": by.ref if by is not None else "system:scheduler",
        "weights": result.weights,
        "filters": filters,
        "ranking": [ranking_entry(r) for r in ranking],
    }
    await session.flush()
    result.winner = winner
    await _emit(
        session,
        [requester_ref(contract)],
        "contract.awarded",
        contract,
        role="requester",
        winner=ranking_entry(winner),
    )
    for entry in ranking:
        won = entry is winner
        await _emit(
            session,
            [events.agent_recipient(entry.candidate.agent_id)],
            "contract.awarded",
            contract,
            role="winner" if won else "loser",
            your_bid=ranking_entry(entry),
            winning_score=winner.score_value,
        )
    return result


async def _expire(
    session: AsyncSession,
    contract: Contract,
    *,
    now: datetime,
    ranking: Sequence[RankedBid] = (),
    result: AwardResult | None = None,
) -> None:
    hold = await _hold_of(session, contract)
    await escrow.refund(session, hold_id=hold.id, actor="system:scheduler")
    _transition(contract, A.EXPIRE, now=now)
    if ranking:
        contract.award_report = {
            "awarded_by": None,
            "weights": result.weights if result else None,
            "filters": result.filters if result else None,
            "ranking": [ranking_entry(r) for r in ranking],
        }
    await session.flush()
    recipients = [requester_ref(contract)] + [
        events.agent_recipient(r.candidate.agent_id) for r in ranking
    ]
    await _emit(
        session,
        recipients,
        "contract.expired",
        contract,
        reason="no eligible bid when bidding closed"
        if contract.mode == ContractMode.AUCTION.value
        else "nobody claimed it in time",
    )


# ---- claim mode ----


async def claim(
    session: AsyncSession, *, contract_id: uuid.UUID, agent: Agent, now: datetime
) -> Contract:
    contract = await _lock(session, contract_id)
    if contract.mode != ContractMode.CLAIM.value:
        raise ConflictError("This contract takes bids, not claims.", code="wrong_mode")
    next_status(_status(contract), A.CLAIM)
    if not _bidding_open(contract, now):
        raise ConflictError("The claim window of this contract has closed.", code="claim_closed")
    await _check_agent_may_take(session, contract, agent)
    _transition(contract, A.CLAIM, now=now)
    contract.awarded_at = now
    contract.awarded_agent_id = agent.id
    contract.price_units = contract.reward_units
    contract.promised_eta_seconds = None
    contract.deadline_at = now + timedelta(seconds=contract.delivery_window_seconds)
    contract.next_due_at = contract.deadline_at
    await session.flush()
    await _emit(
        session,
        [requester_ref(contract), events.agent_recipient(agent.id)],
        "contract.claimed",
        contract,
        agent_id=str(agent.id),
    )
    return contract


# ---- cancel ----


async def cancel(
    session: AsyncSession, *, contract_id: uuid.UUID, by: Party, now: datetime
) -> Contract:
    contract = await _lock(session, contract_id)
    await _require_requester(session, contract, by, "cancel")
    next_status(_status(contract), A.CANCEL)
    hold = await _hold_of(session, contract)
    await escrow.refund(session, hold_id=hold.id, actor=by.ref)
    _transition(contract, A.CANCEL, now=now)
    await session.flush()
    bidders = [events.agent_recipient(b.agent_id) for b in await bids_of(session, contract.id)]
    await _emit(session, [requester_ref(contract), *bidders], "contract.cancelled", contract)
    return contract


# ---- deliver ----


async def deliver(
    session: AsyncSession,
    *,
    contract_id: uuid.UUID,
    agent: Agent,
    data: Any,
    settings: Settings,
    now: datetime,
) -> Contract:
    contract = await _lock(session, contract_id)
    if contract.awarded_agent_id != agent.id:
        raise NotAwardedAgentError("Only the agent that won this contract can deliver it.")
    next_status(_status(contract), A.DELIVER)
    if contract.deadline_at is not None and now > contract.deadline_at:
        raise ConflictError(
            "The delivery deadline has passed; the contract is failing.", code="deadline_passed"
        )
    checked = validate_delivery(contract.output_schema, data)
    _transition(contract, A.DELIVER, now=now)
    contract.delivery = {"data": data}
    contract.delivered_at = now
    contract.auto_validation_score = checked.score
    contract.validation_errors = checked.errors
    contract.auto_settle_at = now + timedelta(seconds=settings.auto_settle_seconds)
    contract.next_due_at = contract.auto_settle_at
    await session.flush()
    await _emit(
        session,
        [requester_ref(contract), events.agent_recipient(agent.id)],
        "contract.delivered",
        contract,
        auto_validation_score=checked.score,
        validation_errors=checked.errors,
        auto_settle_at=_iso(contract.auto_settle_at),
    )
    return contract


# ---- settle, dispute ----


def _execution_seconds(contract: Contract) -> float | None:
    if contract.delivered_at is None or contract.awarded_at is None:
        return None
    return (contract.delivered_at - contract.awarded_at).total_seconds()


def _promised_seconds(contract: Contract) -> int:
    return contract.promised_eta_seconds or contract.delivery_window_seconds


async def _record_metric(
    session: AsyncSession,
    contract: Contract,
    *,
    outcome: str,
    score: float,
    earned_units: int,
    settings: Settings,
    now: datetime,
) -> AgentMetric:
    """Write the outcome the agent is measured by (its trust is recomputed by
    ``_remeasure`` once the transition's events are out)."""
    agent = await session.get(Agent, _winner_id(contract))
    if agent is None:  # the foreign key rules this out
        raise ConflictError("The awarded agent no longer exists.", code="agent_missing")
    execution = _execution_seconds(contract)
    promised = _promised_seconds(contract)
    success = score >= SUCCESS_SCORE
    metric = AgentMetric(
        agent_id=agent.id,
        contract_id=contract.id,
        outcome=outcome,
        success=success,
        validation_score=score,
        execution_seconds=execution,
        promised_seconds=promised,
        on_time=success and execution is not None and execution <= promised,
        # The rating that counts: one recorded for this contract (a rating sent with a
        # rejected delivery is not one; the requester may rate after the ruling).
        rating=await session.scalar(select(Rating.stars).where(Rating.contract_id == contract.id)),
        created_at=now,
        requester_owner_id=contract.requester_owner_id,
        agent_owner_id=agent.owner_id,
        capability=contract.capability,
        earned_units=earned_units,
        excluded_reason=await trust.exclusion_reason(
            session,
            requester_owner_id=contract.requester_owner_id,
            requester_agent_id=contract.requester_agent_id,
            agent=agent,
        ),
    )
    session.add(metric)
    await session.flush()
    return metric


async def _remeasure(
    session: AsyncSession, contract: Contract, *, settings: Settings, now: datetime
) -> None:
    """Recompute the winner's trust from its outcomes, after the contract's own events so
    listeners hear about the contract first."""
    await trust.recompute(session, [_winner_id(contract)], settings=settings, now=now)


def _settlement_dict(outcome: escrow.ReleaseOutcome) -> dict[str, Any] | None:
    s = outcome.settlement
    if s is None:
        return None
    return {
        "held": _credits(s.held),
        "released": _credits(s.released),
        "refunded": _credits(s.refunded),
        "agent_share": _credits(s.agent_share),
        "platform_fee": _credits(s.platform_fee),
        "org_share": _credits(s.org_share),
        "units": {
            "held": s.held,
            "released": s.released,
            "refunded": s.refunded,
            "agent_share": s.agent_share,
            "platform_fee": s.platform_fee,
            "org_share": s.org_share,
        },
    }


async def settle(
    session: AsyncSession,
    *,
    contract_id: uuid.UUID,
    by: Party | None,
    validation_score: float | None,
    rating: int | None,
    comment: str | None,
    settings: Settings,
    now: datetime,
) -> Contract:
    """Accept (score >= 0.6: release by the score tiers) or reject (a dispute opens).

    ``by`` None is the automatic settlement after ``HERMES_AUTO_SETTLE_SECONDS``, which uses
    the automatic validation score.
    """
    contract = await _lock(session, contract_id)
    if by is not None:
        await _require_requester(session, contract, by, "settle")
    score = validation_score
    if score is None:
        score = (
            contract.auto_validation_score if contract.auto_validation_score is not None else 1.0
        )
    action = A.SETTLE if score >= SUCCESS_SCORE else A.DISPUTE
    next_status(_status(contract), action)
    contract.validation_score = score
    # A rating counts only with an accepted delivery; after a dispute's ruling the
    # requester may rate (POST /agents/{id}/rate).
    contract.rating = rating if action is A.SETTLE else None
    contract.comment = comment
    contract.settled_by = by.ref if by is not None else "system:auto-settle"
    agent_ref = events.agent_recipient(_winner_id(contract))
    if action is A.DISPUTE:
        _transition(contract, A.DISPUTE, now=now)
        contract.dispute_opened_at = now
        contract.next_due_at = None
        await session.flush()
        await _emit(
            session,
            [requester_ref(contract), agent_ref],
            "contract.disputed",
            contract,
            validation_score=score,
            comment=comment,
        )
        return contract
    hold = await _hold_of(session, contract)
    outcome = await escrow.release(
        session,
        hold_id=hold.id,
        score=score,
        payee_agent_id=_winner_id(contract),
        rates=fee_rates(settings),
        actor=contract.settled_by,
    )
    _transition(contract, A.SETTLE, now=now)
    contract.settlement = _settlement_dict(outcome)
    await session.flush()
    if rating is not None and by is not None:
        await ratings.record_at_settlement(
            session, contract=contract, stars=rating, comment=comment, settings=settings, now=now
        )
    await _record_metric(
        session,
        contract,
        outcome="settled",
        score=score,
        earned_units=outcome.settlement.agent_share if outcome.settlement else 0,
        settings=settings,
        now=now,
    )
    await _emit(
        session,
        [requester_ref(contract), agent_ref],
        "contract.settled",
        contract,
        validation_score=score,
        rating=rating,
        settlement=contract.settlement,
    )
    await _remeasure(session, contract, settings=settings, now=now)
    return contract


async def respond_to_dispute(
    session: AsyncSession,
    *,
    contract_id: uuid.UUID,
    agent: Agent,
    statement: str,
    evidence: Any,
    now: datetime,
) -> Contract:
    contract = await _lock(session, contract_id)
    if contract.awarded_agent_id != agent.id:
        raise NotAwardedAgentError("Only the agent that delivered can respond to the dispute.")
    next_status(_status(contract), A.RESPOND)
    contract.dispute_response = {"statement": statement, "evidence": evidence}
    contract.dispute_responded_at = now
    await session.flush()
    await _emit(
        session,
        [requester_ref(contract)],
        "contract.dispute_response",
        contract,
        statement=statement,
    )
    return contract


async def resolve_dispute(
    session: AsyncSession,
    *,
    contract_id: uuid.UUID,
    admin: User,
    outcome: str,
    percent: int | None,
    note: str | None,
    settings: Settings,
    now: datetime,
) -> Contract:
    contract = await _lock(session, contract_id)
    next_status(_status(contract), A.RESOLVE)
    hold = await _hold_of(session, contract)
    paid_percent = {"refund": 0, "pay_agent": 100}.get(outcome, percent or 0)
    released = hold.amount * paid_percent // 100
    actor = f"user:{admin.id}"
    ruling = await escrow.settle(
        session,
        hold_id=hold.id,
        released=released,
        payee_agent_id=_winner_id(contract),
        rates=fee_rates(settings),
        actor=actor,
    )
    _transition(contract, A.RESOLVE, now=now)
    contract.settlement = _settlement_dict(ruling)
    contract.resolution = {
        "outcome": outcome,
        "percent": paid_percent,
        "note": note,
        "resolved_by": actor,
        "resolved_at": now.isoformat(),
    }
    await session.flush()
    # The ruling is the outcome the agent is measured by: what share it was judged to earn.
    await _record_metric(
        session,
        contract,
        outcome="dispute",
        score=paid_percent / 100,
        earned_units=ruling.settlement.agent_share if ruling.settlement else 0,
        settings=settings,
        now=now,
    )
    await _emit(
        session,
        [requester_ref(contract), events.agent_recipient(_winner_id(contract))],
        "contract.resolved",
        contract,
        resolution=contract.resolution,
        settlement=contract.settlement,
    )
    await _remeasure(session, contract, settings=settings, now=now)
    return contract


# ---- deadlines (the scheduler) ----


async def fail_overdue(
    session: AsyncSession, *, contract: Contract, settings: Settings, now: datetime
) -> Contract:
    hold = await _hold_of(session, contract)
    await escrow.refund(session, hold_id=hold.id, actor="system:scheduler")
    _transition(contract, A.FAIL, now=now)
    await session.flush()
    await _record_metric(
        session,
        contract,
        outcome="failed",
        score=0.0,
        earned_units=0,
        settings=settings,
        now=now,
    )
    await _emit(
        session,
        [requester_ref(contract), events.agent_recipient(_winner_id(contract))],
        "contract.failed",
        contract,
        reason="no delivery by the deadline",
    )
    await _remeasure(session, contract, settings=settings, now=now)
    return contract


async def run_due(
    session: AsyncSession, *, contract_id: uuid.UUID, settings: Settings, now: datetime
) -> str | None:
    """Do whatever is due on one contract; return what was done, or None if nothing was.

    Safe to call from several workers at once: the row is locked (skipping it if another
    worker holds it) and its state and due time re-read under the lock.
    """
    contract = await _locked(session, contract_id, skip_locked=True)
    if contract is None or contract.next_due_at is None or contract.next_due_at > now:
        return None
    status = _status(contract)
    if status is S.BIDDING:
        result = await award(session, contract_id=contract.id, now=now, by=None)
        return "expired" if result.expired else "awarded"
    if status is S.OPEN:
        await _expire(session, contract, now=now)
        return "expired"
    if status in (S.AWARDED, S.CLAIMED):
        await fail_overdue(session, contract=contract, settings=settings, now=now)
        return "failed"
    if status is S.DELIVERED:
        await settle(
            session,
            contract_id=contract.id,
            by=None,
            validation_score=None,
            rating=None,
            comment=None,
            settings=settings,
            now=now,
        )
        return "auto_settled"
    contract.next_due_at = None  # nothing is ever due in this status
    await session.flush()
    return None


async def due_contract_ids(
    session: AsyncSession, *, now: datetime, limit: int = 200
) -> list[uuid.UUID]:
    return list(
        (
            await session.scalars(
                select(Contract.id)
                .where(Contract.next_due_at.is_not(None), Contract.next_due_at <= now)
                .order_by(Contract.next_due_at)
                .limit(limit)
            )
        ).all()
    )


async def next_due_at(session: AsyncSession) -> datetime | None:
    return await session.scalar(
        select(Contract.next_due_at)
        .where(Contract.next_due_at.is_not(None))
        .order_by(Contract.next_due_at)
        .limit(1)
    )


# ---- visibility and listing ----


@dataclass(frozen=True)
class Viewer:
    party: Party
    agent_ids: frozenset[uuid.UUID]  # the agent itself, or the agents a user owns

    @property
    def is_admin(self) -> bool:
        return self.party.is_admin


async def viewer_of(session: AsyncSession, principal: Principal) -> Viewer:
    party = Party.of(principal)
    if party.agent_id is not None:
        return Viewer(party, frozenset({party.agent_id}))
    owned = (await session.scalars(select(Agent.id).where(Agent.owner_id == party.user_id))).all()
    return Viewer(party, frozenset(owned))


@dataclass(frozen=True)
class Access:
    requester: bool
    awarded: bool
    own_bids: frozenset[uuid.UUID]
    admin: bool

    @property
    def full(self) -> bool:
        return self.requester or self.admin


def access_for(contract: Contract, viewer: Viewer, own_bids: Iterable[uuid.UUID]) -> Access:
    """How the viewer relates to the contract, given the ids of the viewer's bids on it."""
    return Access(
        requester=viewer.party.is_requester_of(contract)
        or (viewer.party.user_id is not None and contract.requester_agent_id in viewer.agent_ids),
        awarded=contract.awarded_agent_id is not None
        and contract.awarded_agent_id in viewer.agent_ids,
        own_bids=frozenset(own_bids),
        admin=viewer.is_admin,
    )


def access_with_bids(contract: Contract, viewer: Viewer, bids: Sequence[Bid]) -> Access:
    return access_for(contract, viewer, (b.id for b in bids if b.agent_id in viewer.agent_ids))


def _open_to_agents(contract: Contract) -> bool:
    return contract.status in (S.BIDDING.value, S.OPEN.value)


async def get_contract(
    session: AsyncSession, *, contract_id: uuid.UUID, viewer: Viewer
) -> tuple[Contract, Access, list[Bid]]:
    """The contract as the viewer may see it, with its bids (read once); else a 404."""
    contract = await session.get(Contract, contract_id)
    if contract is None:
        raise ContractNotFoundError("No such contract.")
    bids = await bids_of(session, contract.id)
    access = access_with_bids(contract, viewer, bids)
    visible = (
        access.full
        or access.awarded
        or access.own_bids
        or (viewer.party.agent_id is not None and _open_to_agents(contract))
    )
    if not visible:
        raise ContractNotFoundError("No such contract.")
    return contract, access, bids


@dataclass(frozen=True)
class ContractQuery:
    status: ContractStatus | None = None
    capability: str | None = None
    role: str | None = None  # requester | bidder | awarded | open
    limit: int = 50
    after: tuple[datetime, uuid.UUID] | None = None


async def list_contracts(
    session: AsyncSession, *, viewer: Viewer, query: ContractQuery
) -> list[Contract]:
    party = viewer.party
    agent_ids = list(viewer.agent_ids)
    if party.agent_id is not None:
        as_requester = Contract.requester_agent_id == party.agent_id
    else:
        as_requester = or_(
            Contract.requester_user_id == party.user_id,
            Contract.requester_agent_id.in_(agent_ids),
        )
    as_bidder = Contract.id.in_(select(Bid.contract_id).where(Bid.agent_id.in_(agent_ids)))
    as_awarded = Contract.awarded_agent_id.in_(agent_ids)
    open_work = Contract.status.in_([S.BIDDING.value, S.OPEN.value])
    conditions = {
        "requester": as_requester,
        "bidder": as_bidder,
        "awarded": as_awarded,
        "open": open_work,
    }
    where: ColumnElement[bool]
    if query.role is not None:
        where = conditions[query.role]
    elif viewer.is_admin:
        where = true()
    else:
        where = or_(as_requester, as_bidder, as_awarded)
    stmt = select(Contract).where(where)
    if query.status is not None:
        stmt = stmt.where(Contract.status == query.status.value)
    if query.capability is not None:
        stmt = stmt.where(Contract.capability == query.capability)
    if query.after is not None:
        created, last_id = query.after
        stmt = stmt.where(
            or_(
                Contract.created_at < created,
                and_(Contract.created_at == created, Contract.id < last_id),
            )
        )
    stmt = stmt.order_by(Contract.created_at.desc(), Contract.id.desc()).limit(query.limit)
    return list((await session.scalars(stmt)).all())
