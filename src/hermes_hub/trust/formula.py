"""The trust score, computed from an agent's counted outcomes. Pure functions, no database.

This module is the published formula; the README's "Trust" section restates it and must
change with it.

An outcome is a finished contract or a direct call (through the A2A gateway or the execute
API: answered is a success on time with validation score 1, failed by the agent a failure
with 0). A direct call costs its caller nothing, so it weighs ``direct_call_weight`` (0.1) of
a contract, shares its caller's requester cap with that caller's contracts, and never
counts toward a minimum number of outcomes (badges, the leaderboard): ``counted_outcomes``
counts contracts only, ``counted_calls`` the direct calls.

1. Each counted outcome gets a weight: ``base * 0.5 ** (age_days / half_life_days)``, base
   1 for a contract and ``direct_call_weight`` for a direct call (age in whole UTC calendar
   days, so a score is stable within a day; half-life 0 turns decay off).
2. One requester's influence is capped. First its direct calls together weigh at most
   ``direct_call_requester_cap`` (1: a free flood of calls counts as one contract); then
   all its outcomes together weigh at most
   ``max(cap_min, cap_share * W)`` where W is the total weight after capping (see
   ``requester_cap``); a requester over the cap has each of its outcomes scaled down by the
   same factor.
3. With the capped weights w (n = sum of w):
   - success_rate      = sum(w * success) / n
   - latency_score     = sum(w * on_time) / n   (a failure or a late delivery is not on time)
   - rating_score      = weighted mean stars / 5 over rated outcomes, each rating weighing
                         w * the rater's reliability; no ratings: neutral 0.6
   - uptime_score      = min(days since enrollment / 365, 1)
   - consistency_score = 1 - min(1, weighted variance of the validation scores), with
                         Bessel's correction by the number of outcomes (see
                         ``weighted_variance``; 0 with a single outcome)
4. raw = 0.4 success + 0.2 latency + 0.2 rating + 0.1 uptime + 0.1 consistency.
5. published = (n * raw + k * prior) / (n + k), prior 0.5 and k the prior strength (3); with
   no counted outcome the published score is the prior. An identity on probation (the
   re-enrollment of a banned agent) is capped at the prior.

Weighted sums are taken over outcomes sorted by (time, key), so the same inputs always give
the same float, whether computed inside a settlement or by the batch recompute.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

PRIOR = 0.5
NEUTRAL_RATING_SCORE = 0.6
UPTIME_FULL_DAYS = 365

WEIGHTS: dict[str, float] = {
    "success_rate": 0.4,
    "latency_score": 0.2,
    "rating_score": 0.2,
    "uptime_score": 0.1,
    "consistency_score": 0.1,
}


@dataclass(frozen=True)
class Outcome:
    """One counted outcome: a finished contract or a direct call the agent is measured by."""

    key: str  # the contract id, or "call:<id>": a stable tie-break for ordering
    requester: str  # who answers for the request (the requester's owner)
    at: datetime
    success: bool
    on_time: bool
    validation_score: float
    stars: int | None = None
    rating_weight: float = 1.0  # the rater's reliability, 0..1
    base_weight: float = 1.0  # 1 for a contract, ``TrustParams.direct_call_weight`` for a call
    # A direct call moves the score but not the thresholds, which are about contracts.
    direct_call: bool = False


@dataclass(frozen=True)
class TrustParams:
    prior: float = PRIOR
    prior_strength: float = 3.0
    half_life_days: float = 90.0
    requester_cap_min: float = 3.0
    requester_cap_share: float = 0.2
    # What a direct call weighs next to a contract's 1 (0 turns direct calls off).
    direct_call_weight: float = 0.1
    # The most one requester's direct calls weigh together, whatever their number.
    direct_call_requester_cap: float = 1.0


@dataclass(frozen=True)
class Component:
    name: str
    weight: float
    value: float | None  # None when there is nothing to measure yet
    inputs: dict[str, Any]

    @property
    def weighted(self) -> float | None:
        return None if self.value is None else self.value * self.weight


@dataclass(frozen=True)
class TrustResult:
    components: tuple[Component, ...]
    raw: float | None  # None with no counted outcome
    effective_outcomes: float  # n: the sum of the capped, decayed weights
    counted_outcomes: int  # how many contract outcomes counted (before weighting)
    counted_calls: int  # how many direct calls counted (before weighting)
    successes: int  # contract outcomes only, as counted_outcomes
    on_time: int  # contract outcomes only, as counted_outcomes
    rating_count: int
    mean_rating: float | None  # weighted mean stars
    trust: float
    on_probation: bool

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    def value(self, name: str) -> float | None:
        return self.component(name).value


def age_in_days(at: datetime, now: datetime) -> int:
    """Whole UTC calendar days between two moments; never negative."""
    return max(0, (_utc_date(now) - _utc_date(at)).days)


def _utc_date(moment: datetime) -> date:
    return moment.astimezone(UTC).date() if moment.tzinfo is not None else moment.date()


def decay(age_days: int, half_life_days: float) -> float:
    if half_life_days <= 0:
        return 1.0
    return float(0.5 ** (age_days / half_life_days))


def requester_cap(totals: Sequence[float], params: TrustParams) -> float | None:
    """The most one requester's outcomes may weigh together, or None if no one is over it.

    The cap is relative to what the score ends up built from: the largest c such that
    c <= max(cap_min, cap_share * sum(min(W_r, c))) over the requesters' totals W_r. So a
    requester that is an agent's only customer weighs at most cap_min, whatever it sends.
    """
    ordered = sorted(totals, reverse=True)
    if not ordered:
        return None
    share, floor = params.requester_cap_share, params.requester_cap_min
    if ordered[0] <= max(floor, share * sum(ordered)):
        return None
    # With the k largest requesters held at c and the rest as they are:
    # c = share * (rest + k c), so c = share * rest / (1 - share k).
    rest = sum(ordered)
    for k in range(1, len(ordered) + 1):
        rest -= ordered[k - 1]
        below = ordered[k] if k < len(ordered) else 0.0
        candidate = share * rest / (1 - share * k) if share * k < 1 else float("inf")
        cap = max(floor, candidate)
        if below <= cap <= ordered[k - 1]:
            return cap
    return floor


def capped_weights(
    outcomes: Sequence[Outcome], raw_weights: Sequence[float], params: TrustParams
) -> list[float]:
    """Scale each requester's direct calls down to their own cap, then each requester over
    the cap down to it, proportionally over its outcomes."""
    raw_weights = _calls_capped(outcomes, raw_weights, params.direct_call_requester_cap)
    per_requester: dict[str, float] = defaultdict(float)
    for outcome, weight in zip(outcomes, raw_weights, strict=True):
        per_requester[outcome.requester] += weight
    cap = requester_cap(list(per_requester.values()), params)
    if cap is None:
        return list(raw_weights)
    factors = {
        requester: (cap / weight if weight > cap else 1.0)
        for requester, weight in per_requester.items()
    }
    return [
        weight * factors[outcome.requester]
        for outcome, weight in zip(outcomes, raw_weights, strict=True)
    ]


def _calls_capped(outcomes: Sequence[Outcome], weights: Sequence[float], cap: float) -> list[float]:
    """Calls cost their caller nothing, so each requester's direct calls together weigh at
    most ``cap``; contracts are left as they are."""
    calls: dict[str, float] = defaultdict(float)
    for outcome, weight in zip(outcomes, weights, strict=True):
        if outcome.direct_call:
            calls[outcome.requester] += weight
    return [
        weight * cap / calls[outcome.requester]
        if outcome.direct_call and calls[outcome.requester] > cap
        else weight
        for outcome, weight in zip(outcomes, weights, strict=True)
    ]


def weighted_variance(values: Sequence[float], weights: Sequence[float]) -> float:
    """The weighted variance with Bessel's correction by the number of outcomes:
    ``sum(w (x - mean)^2) / sum(w) * m / (m - 1)``, m the number of outcomes with weight.

    With equal weights this is the familiar sample variance (divide by m - 1); an outcome
    whose weight has decayed toward 0 moves it toward 0 too; a single outcome has no spread
    to measure: 0.
    """
    weighed = [(x, w) for x, w in zip(values, weights, strict=True) if w > 0]
    count = len(weighed)
    if count < 2:
        return 0.0
    v1 = sum(w for _, w in weighed)
    mean = sum(w * x for x, w in weighed) / v1
    spread = sum(w * (x - mean) ** 2 for x, w in weighed) / v1
    return spread * count / (count - 1)


def uptime(enrolled_at: datetime, now: datetime) -> tuple[float, int]:
    days = age_in_days(enrolled_at, now)
    return min(days / UPTIME_FULL_DAYS, 1.0), days


def compute(
    outcomes: Iterable[Outcome],
    *,
    enrolled_at: datetime,
    now: datetime,
    params: TrustParams,
    on_probation: bool = False,
) -> TrustResult:
    ordered = sorted(outcomes, key=lambda o: (o.at, o.key))
    decayed = [
        o.base_weight * decay(age_in_days(o.at, now), params.half_life_days) for o in ordered
    ]
    weights = capped_weights(ordered, decayed, params)
    n = sum(weights)
    uptime_value, days = uptime(enrolled_at, now)
    contracts = [o for o in ordered if not o.direct_call]
    calls = [o for o in ordered if o.direct_call]
    successes = sum(1 for o in contracts if o.success)
    on_time = sum(1 for o in contracts if o.on_time)
    call_successes = sum(1 for o in calls if o.success)
    calls_on_time = sum(1 for o in calls if o.on_time)

    rated = [(o, w * o.rating_weight) for o, w in zip(ordered, weights, strict=True)]
    rated = [(o, w) for o, w in rated if o.stars is not None and w > 0]
    rating_weight = sum(w for _, w in rated)
    mean_stars = (
        sum(w * float(o.stars or 0) for o, w in rated) / rating_weight
        if rating_weight > 0
        else None
    )

    if n > 0:
        success_rate: float | None = (
            sum(w for o, w in zip(ordered, weights, strict=True) if o.success) / n
        )
        latency: float | None = (
            sum(w for o, w in zip(ordered, weights, strict=True) if o.on_time) / n
        )
        variance: float | None = weighted_variance([o.validation_score for o in ordered], weights)
        consistency: float | None = 1.0 - min(1.0, variance or 0.0)
    else:
        success_rate = latency = variance = consistency = None
    rating_score = mean_stars / 5 if mean_stars is not None else NEUTRAL_RATING_SCORE

    components = (
        Component(
            "success_rate",
            WEIGHTS["success_rate"],
            success_rate,
            {
                "successes": successes,
                "outcomes": len(contracts),
                "direct_call_successes": call_successes,
                "direct_calls": len(calls),
                "weighted_outcomes": n,
            },
        ),
        Component(
            "latency_score",
            WEIGHTS["latency_score"],
            latency,
            {
                "on_time": on_time,
                "outcomes": len(contracts),
                "direct_calls_on_time": calls_on_time,
                "direct_calls": len(calls),
            },
        ),
        Component(
            "rating_score",
            WEIGHTS["rating_score"],
            rating_score,
            {
                "ratings": len(rated),
                "mean_stars": mean_stars,
                "neutral": mean_stars is None,
            },
        ),
        Component(
            "uptime_score",
            WEIGHTS["uptime_score"],
            uptime_value,
            {"days_since_enrollment": days, "full_after_days": UPTIME_FULL_DAYS},
        ),
        Component(
            "consistency_score",
            WEIGHTS["consistency_score"],
            consistency,
            {"validation_score_variance": variance},
        ),
    )
    if n > 0:
        raw: float | None = sum(c.weighted or 0.0 for c in components)
        k = params.prior_strength
        trust = (n * (raw or 0.0) + k * params.prior) / (n + k)
    else:
        raw = None
        trust = params.prior
    if on_probation:
        trust = min(trust, params.prior)
    return TrustResult(
        components=components,
        raw=raw,
        effective_outcomes=n,
        counted_outcomes=len(contracts),
        counted_calls=len(calls),
        successes=successes,
        on_time=on_time,
        rating_count=len(rated),
        mean_rating=mean_stars,
        trust=min(1.0, max(0.0, trust)),
        on_probation=on_probation,
    )


# ---- grades and badges ----

GRADES: tuple[tuple[float, str], ...] = (
    (0.95, "A+"),
    (0.92, "A"),
    (0.88, "A-"),
    (0.84, "B+"),
    (0.78, "B"),
    (0.70, "B-"),
    (0.65, "C+"),
    (0.60, "C"),
    (0.55, "C-"),
    (0.40, "D"),
)


def grade_for(trust: float) -> str:
    for threshold, grade in GRADES:
        if trust >= threshold:
            return grade
    return "F"


@dataclass(frozen=True)
class BadgeRule:
    name: str
    description: str


BADGE_RULES: tuple[BadgeRule, ...] = (
    BadgeRule("verified", "Proved its Ed25519 key at enrollment and is not on probation."),
    BadgeRule(
        "lightning_fast",
        "At least 90% of counted outcomes delivered at or under the promised ETA, "
        "over at least 10 counted outcomes.",
    ),
    BadgeRule("top_rated", "Mean rating of at least 4.8 stars over at least 10 ratings."),
    BadgeRule("reliable", "Success rate of at least 98% over at least 50 counted outcomes."),
    BadgeRule("elite", "Trust of at least 0.95 over at least 100 counted outcomes."),
)

BADGE_DESCRIPTIONS: dict[str, str] = {rule.name: rule.description for rule in BADGE_RULES}


def success_rate_of(breakdown: Mapping[str, Any] | None) -> float | None:
    """The success-rate component of a stored breakdown (None before any counted outcome)."""
    for component in (breakdown or {}).get("components", []):
        if component.get("name") == "success_rate":
            value = component.get("value")
            return float(value) if value is not None else None
    return None


def badges_for(result: TrustResult, *, verified: bool) -> list[str]:
    """The badges whose rule holds now. Rates are the (decayed, capped) component values;
    the minimum numbers of outcomes are of contracts (``counted_outcomes``): direct calls
    are too cheap to earn a badge with."""
    earned = []
    if verified and not result.on_probation:
        earned.append("verified")
    latency = result.value("latency_score")
    if result.counted_outcomes >= 10 and latency is not None and latency >= 0.9:
        earned.append("lightning_fast")
    if result.rating_count >= 10 and result.mean_rating is not None and result.mean_rating >= 4.8:
        earned.append("top_rated")
    success = result.value("success_rate")
    if result.counted_outcomes >= 50 and success is not None and success >= 0.98:
        earned.append("reliable")
    if result.counted_outcomes >= 100 and result.trust >= 0.95:
        earned.append("elite")
    return earned


def breakdown(result: TrustResult, params: TrustParams) -> dict[str, Any]:
    """The reputation breakdown as the API shows it: every input needed to redo the sum."""
    return {
        "components": [
            {
                "name": c.name,
                "weight": c.weight,
                "value": c.value,
                "weighted": c.weighted,
                "inputs": c.inputs,
            }
            for c in result.components
        ],
        "raw_score": result.raw,
        "effective_outcomes": result.effective_outcomes,
        "counted_outcomes": result.counted_outcomes,
        "counted_direct_calls": result.counted_calls,
        "direct_call_weight": params.direct_call_weight,
        "direct_call_requester_cap": params.direct_call_requester_cap,
        "prior": params.prior,
        "prior_strength": params.prior_strength,
        "half_life_days": params.half_life_days,
        "requester_cap": {"min": params.requester_cap_min, "share": params.requester_cap_share},
        "on_probation": result.on_probation,
        "trust_score": result.trust,
    }
