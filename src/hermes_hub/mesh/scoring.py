"""Award scoring: rank bids the way the requester's preference weights say.

Published in the README exactly as implemented here:

- weights are the requester's four preference weights divided by their sum;
- price_score = clamp(1 - price / (2 * reward)); speed_score = clamp(1 - eta / horizon) with
  horizon = the contract's ``deadline_seconds`` if set, else 60; performance_score = the bid's
  confidence; reputation_score = the agent's trust score; clamp keeps each in [0, 1];
- score = 100 * (w_price * price_score + w_perf * performance_score + w_speed * speed_score
  + w_rep * reputation_score);
- the preference filters (max_price, min_confidence, min_reputation) remove bids first;
- the highest score wins; ties go to the higher trust, then to the earlier bid.

Arithmetic is exact (fractions of the decimal inputs), so a tie is a real tie and the
seed's worked example gives 74.25 and 56.25, not 74.24999.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from hermes_hub.kit.money import units_to_credits

DEFAULT_SPEED_HORIZON_SECONDS = 60
_ZERO = Fraction(0)
_ONE = Fraction(1)


def _exact(value: float) -> Fraction:
    # Through the shortest decimal form: 0.92 means 92/100, not the nearest binary float.
    return Fraction(repr(float(value)))


def _clamp(value: Fraction) -> Fraction:
    return max(_ZERO, min(_ONE, value))


@dataclass(frozen=True)
class Weights:
    """Preference weights normalized to sum 1."""

    price: Fraction
    performance: Fraction
    speed: Fraction
    reputation: Fraction

    @classmethod
    def normalize(
        cls, *, price: float, performance: float, speed: float, reputation: float
    ) -> Weights:
        raw = [_exact(price), _exact(performance), _exact(speed), _exact(reputation)]
        if any(weight < 0 for weight in raw):
            raise ValueError("weights must not be negative")
        total = sum(raw, _ZERO)
        if total == 0:
            raise ValueError("at least one weight must be above zero")
        return cls(*(weight / total for weight in raw))

    def as_dict(self) -> dict[str, float]:
        return {
            "price": float(self.price),
            "performance": float(self.performance),
            "speed": float(self.speed),
            "reputation": float(self.reputation),
        }


EQUAL_WEIGHTS = Weights(*(Fraction(1, 4),) * 4)


@dataclass(frozen=True)
class Filters:
    max_price_units: int | None = None
    min_confidence: float | None = None
    min_reputation: float | None = None


@dataclass(frozen=True)
class Candidate:
    bid_id: uuid.UUID
    agent_id: uuid.UUID
    price_units: int
    eta_seconds: int
    confidence: float
    trust: float
    placed_at: datetime
    # Set by the caller when the bid is out regardless of preferences (agent paused, ...).
    disqualified: str | None = None


@dataclass(frozen=True)
class Components:
    price: Fraction
    performance: Fraction
    speed: Fraction
    reputation: Fraction

    def as_dict(self) -> dict[str, float]:
        return {
            "price": round(float(self.price), 6),
            "performance": round(float(self.performance), 6),
            "speed": round(float(self.speed), 6),
            "reputation": round(float(self.reputation), 6),
        }


@dataclass(frozen=True)
class RankedBid:
    candidate: Candidate
    components: Components
    score: Fraction
    outcome: str  # "won" | "lost" | "ineligible"
    reason: str
    rank: int | None  # 1 for the winner; None when ineligible

    @property
    def eligible(self) -> bool:
        return self.outcome != "ineligible"

    @property
    def score_value(self) -> float:
        return round(float(self.score), 4)


def components_for(candidate: Candidate, *, reward_units: int, horizon_seconds: int) -> Components:
    return Components(
        price=_clamp(_ONE - Fraction(candidate.price_units, 2 * reward_units)),
        performance=_clamp(_exact(candidate.confidence)),
        speed=_clamp(_ONE - Fraction(candidate.eta_seconds, horizon_seconds)),
        reputation=_clamp(_exact(candidate.trust)),
    )


def score_of(components: Components, weights: Weights) -> Fraction:
    return 100 * (
        weights.price * components.price
        + weights.performance * components.performance
        + weights.speed * components.speed
        + weights.reputation * components.reputation
    )


def speed_horizon(deadline_seconds: int | None) -> int:
    return deadline_seconds if deadline_seconds else DEFAULT_SPEED_HORIZON_SECONDS


def _filter_reason(candidate: Candidate, filters: Filters) -> str | None:
    if candidate.disqualified:
        return candidate.disqualified
    if filters.max_price_units is not None and candidate.price_units > filters.max_price_units:
        return (
            f"price {units_to_credits(candidate.price_units)} is above the preference "
            f"max_price {units_to_credits(filters.max_price_units)}"
        )
    if filters.min_confidence is not None and candidate.confidence < filters.min_confidence:
        return (
            f"confidence {candidate.confidence} is below the preference "
            f"min_confidence {filters.min_confidence}"
        )
    if filters.min_reputation is not None and candidate.trust < filters.min_reputation:
        return (
            f"trust {candidate.trust} is below the preference "
            f"min_reputation {filters.min_reputation}"
        )
    return None


def _order_key(entry: tuple[Candidate, Fraction]) -> tuple[Fraction, Fraction, datetime, str]:
    candidate, score = entry
    # Sorted ascending: the negated score and trust put the best first; then the earliest.
    return (-score, -_exact(candidate.trust), candidate.placed_at, str(candidate.bid_id))


def rank_bids(
    candidates: Sequence[Candidate],
    *,
    reward_units: int,
    horizon_seconds: int,
    weights: Weights,
    filters: Filters,
    chosen_bid_id: uuid.UUID | None = None,
) -> list[RankedBid]:
    """Every bid with its components, score and outcome, best first, ineligible last.

    With ``chosen_bid_id`` the requester picked the winner; it must be eligible (the caller
    checks ``ranked[0]``). Otherwise the best eligible bid wins.
    """
    if reward_units <= 0 or horizon_seconds <= 0:
        raise ValueError("reward and horizon must be positive")
    scored = [
        (c, components_for(c, reward_units=reward_units, horizon_seconds=horizon_seconds))
        for c in candidates
    ]
    eligible: list[tuple[Candidate, Fraction]] = []
    ineligible: list[RankedBid] = []
    parts = {c.bid_id: comp for c, comp in scored}
    for candidate, components in scored:
        score = score_of(components, weights)
        reason = _filter_reason(candidate, filters)
        if reason is None:
            eligible.append((candidate, score))
        else:
            ineligible.append(
                RankedBid(candidate, components, score, "ineligible", reason, rank=None)
            )
    eligible.sort(key=_order_key)
    if chosen_bid_id is not None:
        chosen = [entry for entry in eligible if entry[0].bid_id == chosen_bid_id]
        eligible = chosen + [entry for entry in eligible if entry[0].bid_id != chosen_bid_id]
    ranked: list[RankedBid] = []
    for rank, (candidate, score) in enumerate(eligible, start=1):
        if rank == 1:
            outcome = "won"
            reason = (
                "chosen by the requester"
                if chosen_bid_id is not None
                else _win_reason(score, eligible[1] if len(eligible) > 1 else None, candidate)
            )
        else:
            outcome = "lost"
            reason = (
                "the requester chose another bid"
                if chosen_bid_id is not None
                else _loss_reason(candidate, score, eligible[0])
            )
        ranked.append(RankedBid(candidate, parts[candidate.bid_id], score, outcome, reason, rank))
    return ranked + ineligible


def _fmt(score: Fraction) -> str:
    return f"{float(score):.2f}"


def _win_reason(
    score: Fraction, runner_up: tuple[Candidate, Fraction] | None, winner: Candidate
) -> str:
    if runner_up is None:
        return f"the only eligible bid (score {_fmt(score)})"
    other, other_score = runner_up
    if other_score < score:
        return f"highest score ({_fmt(score)}, next {_fmt(other_score)})"
    if _exact(other.trust) < _exact(winner.trust):
        return f"tied on score ({_fmt(score)}); higher trust"
    return f"tied on score ({_fmt(score)}) and trust; bid earlier"


def _loss_reason(candidate: Candidate, score: Fraction, winner: tuple[Candidate, Fraction]) -> str:
    best, best_score = winner
    if score < best_score:
        return f"score {_fmt(score)} below the winner's {_fmt(best_score)}"
    if _exact(candidate.trust) < _exact(best.trust):
        return f"tied on score ({_fmt(score)}); the winner has higher trust"
    return f"tied on score ({_fmt(score)}) and trust; the winner bid earlier"
