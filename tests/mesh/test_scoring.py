"""Award scoring, pure: the seed's worked example, normalization, clamping, filters,
tie-breaks, a requester's own pick, and properties over random bids."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_hub.mesh.scoring import (
    DEFAULT_SPEED_HORIZON_SECONDS,
    EQUAL_WEIGHTS,
    Candidate,
    Filters,
    Weights,
    components_for,
    rank_bids,
    score_of,
    speed_horizon,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
REWARD = 500  # 5 credits
NO_FILTERS = Filters()


def candidate(
    n: int,
    *,
    price: int = 400,
    eta: int = 30,
    confidence: float = 0.9,
    trust: float = 0.5,
    at: int = 0,
    disqualified: str | None = None,
) -> Candidate:
    return Candidate(
        bid_id=uuid.UUID(int=n),
        agent_id=uuid.UUID(int=1000 + n),
        price_units=price,
        eta_seconds=eta,
        confidence=confidence,
        trust=trust,
        placed_at=T0 + timedelta(seconds=at),
        disqualified=disqualified,
    )


def rank(candidates, *, weights=EQUAL_WEIGHTS, filters=NO_FILTERS, horizon=60, **kwargs):
    return rank_bids(
        candidates,
        reward_units=REWARD,
        horizon_seconds=horizon,
        weights=weights,
        filters=filters,
        **kwargs,
    )


def seed_bids() -> tuple[Candidate, Candidate]:
    a = candidate(1, price=400, eta=30, confidence=0.95, trust=0.92, at=0)
    b = candidate(2, price=300, eta=60, confidence=0.80, trust=0.75, at=1)
    return a, b


# ---- the seed's worked example ----


def test_seed_example_components_and_scores():
    a, b = seed_bids()
    parts_a = components_for(a, reward_units=REWARD, horizon_seconds=60)
    parts_b = components_for(b, reward_units=REWARD, horizon_seconds=60)
    assert (parts_a.price, parts_a.performance, parts_a.speed, parts_a.reputation) == (
        Fraction(6, 10),
        Fraction(95, 100),
        Fraction(1, 2),
        Fraction(92, 100),
    )
    assert (parts_b.price, parts_b.performance, parts_b.speed, parts_b.reputation) == (
        Fraction(7, 10),
        Fraction(8, 10),
        Fraction(0),
        Fraction(75, 100),
    )
    assert parts_a.as_dict() == {
        "price": 0.6,
        "performance": 0.95,
        "speed": 0.5,
        "reputation": 0.92,
    }
    assert parts_b.as_dict() == {"price": 0.7, "performance": 0.8, "speed": 0.0, "reputation": 0.75}
    # Exact: 74.25, not 74.24999...
    assert score_of(parts_a, EQUAL_WEIGHTS) == Fraction(7425, 100)
    assert score_of(parts_b, EQUAL_WEIGHTS) == Fraction(5625, 100)


def test_seed_example_ranking_a_wins():
    a, b = seed_bids()
    weights = Weights.normalize(price=25, performance=25, speed=25, reputation=25)
    ranked = rank([b, a], weights=weights)
    assert [r.candidate.bid_id for r in ranked] == [a.bid_id, b.bid_id]
    winner, loser = ranked
    assert (winner.outcome, winner.rank, winner.score_value) == ("won", 1, 74.25)
    assert (loser.outcome, loser.rank, loser.score_value) == ("lost", 2, 56.25)
    assert winner.reason == "highest score (74.25, next 56.25)"
    assert loser.reason == "score 56.25 below the winner's 74.25"
    assert winner.eligible
    assert loser.eligible


# ---- weights ----


def test_equal_weights_are_a_quarter_each():
    assert EQUAL_WEIGHTS.as_dict() == dict.fromkeys(
        ("price", "performance", "speed", "reputation"), 0.25
    )


@pytest.mark.parametrize("scale", [1, 25, 100, 0.5, 0.001])
def test_weights_normalize_whatever_their_scale(scale):
    weights = Weights.normalize(price=scale, performance=scale, speed=scale, reputation=scale)
    assert weights == EQUAL_WEIGHTS


def test_weights_normalize_to_sum_one():
    weights = Weights.normalize(price=70, performance=10, speed=10, reputation=10)
    assert (weights.price, weights.performance, weights.speed, weights.reputation) == (
        Fraction(7, 10),
        Fraction(1, 10),
        Fraction(1, 10),
        Fraction(1, 10),
    )
    assert weights.price + weights.performance + weights.speed + weights.reputation == 1
    assert Weights.normalize(price=7, performance=1, speed=1, reputation=1) == weights
    only_price = Weights.normalize(price=3, performance=0, speed=0, reputation=0)
    assert only_price.as_dict() == {
        "price": 1.0,
        "performance": 0.0,
        "speed": 0.0,
        "reputation": 0.0,
    }


def test_weights_are_exact_for_decimal_inputs():
    weights = Weights.normalize(price=0.1, performance=0.2, speed=0.3, reputation=0.4)
    assert weights.price == Fraction(1, 10)
    assert weights.reputation == Fraction(4, 10)


def test_all_zero_weights_are_refused():
    with pytest.raises(ValueError, match="above zero"):
        Weights.normalize(price=0, performance=0, speed=0, reputation=0)


@pytest.mark.parametrize("field", ["price", "performance", "speed", "reputation"])
def test_negative_weights_are_refused(field):
    values = {"price": 25.0, "performance": 25.0, "speed": 25.0, "reputation": 25.0, field: -1.0}
    with pytest.raises(ValueError, match="negative"):
        Weights.normalize(**values)


def test_weights_decide_the_winner():
    a, b = seed_bids()
    by_price = Weights.normalize(price=1, performance=0, speed=0, reputation=0)
    ranked = rank([a, b], weights=by_price)
    assert ranked[0].candidate is b
    assert ranked[0].score_value == 70.0
    assert ranked[1].score_value == 60.0


# ---- clamping and the speed horizon ----


@pytest.mark.parametrize(
    ("price", "expected"),
    [(1, Fraction(999, 1000)), (500, Fraction(1, 2)), (1000, Fraction(0)), (1001, 0), (10**9, 0)],
)
def test_price_score_is_clamped_at_twice_the_reward(price, expected):
    parts = components_for(candidate(1, price=price), reward_units=REWARD, horizon_seconds=60)
    assert parts.price == expected


@pytest.mark.parametrize(
    ("eta", "expected"),
    [(1, Fraction(59, 60)), (30, Fraction(1, 2)), (60, Fraction(0)), (61, 0), (86_400, 0)],
)
def test_speed_score_is_clamped_beyond_the_horizon(eta, expected):
    parts = components_for(candidate(1, eta=eta), reward_units=REWARD, horizon_seconds=60)
    assert parts.speed == expected


def test_overpriced_slow_bid_scores_only_on_confidence_and_trust():
    slow = candidate(1, price=5000, eta=10_000, confidence=0.8, trust=0.4)
    (entry,) = rank([slow])
    assert entry.components.price == 0
    assert entry.components.speed == 0
    assert entry.score == 25 * (Fraction(8, 10) + Fraction(4, 10))
    assert entry.outcome == "won"


def test_speed_horizon_is_the_deadline_or_sixty_seconds():
    assert DEFAULT_SPEED_HORIZON_SECONDS == 60
    assert speed_horizon(None) == 60
    assert speed_horizon(120) == 120
    assert speed_horizon(3600) == 3600


def test_a_longer_horizon_raises_the_speed_score():
    bid = candidate(1, eta=60)
    short = components_for(bid, reward_units=REWARD, horizon_seconds=speed_horizon(None))
    long = components_for(bid, reward_units=REWARD, horizon_seconds=speed_horizon(240))
    assert short.speed == 0
    assert long.speed == Fraction(3, 4)


def test_speed_horizon_changes_the_winner():
    quick = candidate(1, price=300, eta=60, confidence=0.8)
    cheap = candidate(2, price=100, eta=100, confidence=0.8)
    by_speed = Weights.normalize(price=1, performance=0, speed=3, reputation=0)
    # Horizon 60: 60 s and 100 s are both "too slow"; the cheaper bid wins on price.
    assert rank([quick, cheap], weights=by_speed, horizon=60)[0].candidate is cheap
    # Horizon 600: quick speed 0.9, cheap 5/6; quick wins.
    assert rank([quick, cheap], weights=by_speed, horizon=600)[0].candidate is quick


@pytest.mark.parametrize(("reward", "horizon"), [(0, 60), (-1, 60), (500, 0), (500, -5)])
def test_rank_refuses_nonpositive_reward_or_horizon(reward, horizon):
    with pytest.raises(ValueError, match="positive"):
        rank_bids(
            [candidate(1)],
            reward_units=reward,
            horizon_seconds=horizon,
            weights=EQUAL_WEIGHTS,
            filters=NO_FILTERS,
        )


# ---- preference filters and disqualified bids ----


@pytest.mark.parametrize(
    ("filters", "out", "reason"),
    [
        (
            Filters(max_price_units=350),
            1,
            "price 4.00 is above the preference max_price 3.50",
        ),
        (
            Filters(min_confidence=0.9),
            2,
            "confidence 0.8 is below the preference min_confidence 0.9",
        ),
        (
            Filters(min_reputation=0.8),
            2,
            "trust 0.75 is below the preference min_reputation 0.8",
        ),
    ],
    ids=["max_price", "min_confidence", "min_reputation"],
)
def test_each_filter_makes_a_bid_ineligible_with_a_reason(filters, out, reason):
    a, b = seed_bids()
    ranked = rank([a, b], filters=filters)
    kept, dropped = ranked
    assert dropped.candidate.bid_id == uuid.UUID(int=out)
    assert dropped.outcome == "ineligible"
    assert not dropped.eligible
    assert dropped.rank is None
    assert dropped.reason == reason
    # Its components and score are still reported, so a UI can show what it would have scored.
    assert dropped.score_value == (74.25 if out == 1 else 56.25)
    assert kept.outcome == "won"
    assert kept.rank == 1
    assert kept.reason.startswith("the only eligible bid")


def test_filters_are_inclusive_at_the_boundary():
    a, b = seed_bids()
    exact = Filters(max_price_units=400, min_confidence=0.8, min_reputation=0.75)
    assert [r.outcome for r in rank([a, b], filters=exact)] == ["won", "lost"]


def test_filters_beat_a_higher_score():
    a, b = seed_bids()
    ranked = rank([a, b], filters=Filters(max_price_units=300))
    assert ranked[0].candidate is b
    assert ranked[0].outcome == "won"
    assert ranked[1].candidate is a
    assert ranked[1].score > ranked[0].score


def test_no_eligible_bid_means_no_winner():
    a, b = seed_bids()
    ranked = rank([a, b], filters=Filters(min_confidence=0.99))
    assert [r.outcome for r in ranked] == ["ineligible", "ineligible"]
    assert all(r.rank is None for r in ranked)
    assert rank([]) == []


def test_disqualified_candidates_are_ineligible_with_the_callers_reason():
    a, b = seed_bids()
    paused = candidate(1, price=400, eta=30, confidence=0.95, trust=0.92, disqualified="paused")
    ranked = rank([paused, b])
    assert [r.candidate.bid_id for r in ranked] == [b.bid_id, a.bid_id]
    assert ranked[0].outcome == "won"
    assert ranked[1].outcome == "ineligible"
    assert ranked[1].reason == "paused"
    assert ranked[1].score_value == 74.25


def test_disqualification_takes_precedence_over_filter_reasons():
    bid = candidate(1, price=900, disqualified="the agent was paused after bidding")
    (entry,) = rank([bid], filters=Filters(max_price_units=100))
    assert entry.reason == "the agent was paused after bidding"


# ---- tie-breaks ----


def test_equal_scores_go_to_the_higher_trust():
    # Equal weights: confidence and trust trade off exactly, so the scores tie.
    low_trust = candidate(1, confidence=0.9, trust=0.6, at=0)
    high_trust = candidate(2, confidence=0.8, trust=0.7, at=5)
    for order in ([low_trust, high_trust], [high_trust, low_trust]):
        ranked = rank(order)
        assert ranked[0].score == ranked[1].score
        assert ranked[0].candidate is high_trust
        assert ranked[0].reason.endswith("higher trust")
        assert ranked[1].reason.endswith("the winner has higher trust")


def test_equal_scores_and_trust_go_to_the_earlier_bid():
    early = candidate(1, at=0)
    late = candidate(2, at=1)
    for order in ([early, late], [late, early]):
        ranked = rank(order)
        assert ranked[0].candidate is early
        assert ranked[0].reason.endswith("bid earlier")
        assert ranked[1].reason.endswith("the winner bid earlier")


def test_higher_score_beats_higher_trust_and_earlier_bid():
    earlier_trusted = candidate(1, price=450, trust=0.9, at=0)
    better = candidate(2, price=100, trust=0.6, at=10)
    assert rank([earlier_trusted, better])[0].candidate is better


# ---- the requester's own pick ----


def test_chosen_bid_goes_first_with_the_reason():
    a, b = seed_bids()
    c = candidate(3, price=450, eta=50, confidence=0.5, trust=0.5, at=2)
    ranked = rank([a, b, c], chosen_bid_id=b.bid_id)
    assert ranked[0].candidate is b
    assert ranked[0].outcome == "won"
    assert ranked[0].rank == 1
    assert ranked[0].reason == "chosen by the requester"
    assert [r.candidate for r in ranked[1:]] == [a, c]
    assert [r.rank for r in ranked] == [1, 2, 3]
    assert all(r.outcome == "lost" for r in ranked[1:])
    assert all(r.reason == "the requester chose another bid" for r in ranked[1:])
    # The scores are the real ones, not bent towards the pick.
    assert ranked[0].score_value == 56.25
    assert ranked[1].score_value == 74.25


def test_an_ineligible_chosen_bid_does_not_go_first():
    a, b = seed_bids()
    ranked = rank([a, b], filters=Filters(max_price_units=300), chosen_bid_id=a.bid_id)
    # The caller checks ranked[0]; the ineligible pick stays ineligible at the end.
    assert ranked[0].candidate is b
    assert ranked[-1].candidate is a
    assert ranked[-1].outcome == "ineligible"


# ---- properties ----

weights_strategy = st.tuples(*(st.integers(0, 100),) * 4).filter(any)
unit = st.floats(0, 1, allow_nan=False).map(lambda value: round(value, 3))


@st.composite
def candidates_strategy(draw: st.DrawFn) -> list[Candidate]:
    count = draw(st.integers(0, 8))
    return [
        candidate(
            n + 1,
            price=draw(st.integers(1, 2_000)),
            eta=draw(st.integers(1, 300)),
            confidence=draw(unit),
            trust=draw(unit),
            at=draw(st.integers(0, 5)),
            disqualified=draw(st.sampled_from([None, None, None, "paused"])),
        )
        for n in range(count)
    ]


filters_strategy = st.builds(
    Filters,
    max_price_units=st.none() | st.integers(1, 2_000),
    min_confidence=st.none() | unit,
    min_reputation=st.none() | unit,
)


def _should_be_eligible(c: Candidate, filters: Filters) -> bool:
    return (
        c.disqualified is None
        and (filters.max_price_units is None or c.price_units <= filters.max_price_units)
        and (filters.min_confidence is None or c.confidence >= filters.min_confidence)
        and (filters.min_reputation is None or c.trust >= filters.min_reputation)
    )


@settings(max_examples=300, deadline=None)
@given(
    candidates=candidates_strategy(),
    raw_weights=weights_strategy,
    filters=filters_strategy,
    reward=st.integers(1, 1_000),
    horizon=st.integers(1, 600),
)
def test_ranking_properties(candidates, raw_weights, filters, reward, horizon):
    price, performance, speed, reputation = raw_weights
    weights = Weights.normalize(
        price=price, performance=performance, speed=speed, reputation=reputation
    )
    ranked = rank_bids(
        candidates, reward_units=reward, horizon_seconds=horizon, weights=weights, filters=filters
    )

    assert sorted(r.candidate.bid_id for r in ranked) == sorted(c.bid_id for c in candidates)
    for entry in ranked:
        assert 0 <= entry.score <= 100
        assert 0 <= entry.score_value <= 100
        for part in (entry.components.price, entry.components.speed):
            assert 0 <= part <= 1
        assert entry.score == score_of(entry.components, weights)
        assert entry.eligible == _should_be_eligible(entry.candidate, filters)
        assert entry.reason

    eligible = [r for r in ranked if r.eligible]
    # Eligible first, ranked 1..n; ineligible last, unranked.
    assert ranked[: len(eligible)] == eligible
    assert [r.rank for r in eligible] == list(range(1, len(eligible) + 1))
    assert all(r.rank is None for r in ranked[len(eligible) :])
    scores = [r.score for r in eligible]
    assert scores == sorted(scores, reverse=True)
    for first, second in itertools.pairwise(eligible):
        if first.score == second.score:
            assert first.candidate.trust >= second.candidate.trust
            if first.candidate.trust == second.candidate.trust:
                assert first.candidate.placed_at <= second.candidate.placed_at

    if eligible:
        winner = eligible[0]
        assert winner.outcome == "won"
        assert all(winner.score >= r.score for r in eligible)
        assert all(r.outcome == "lost" for r in eligible[1:])
    else:
        assert all(r.outcome == "ineligible" for r in ranked)


@settings(max_examples=200, deadline=None)
@given(candidates=candidates_strategy().filter(bool), data=st.data())
def test_a_chosen_eligible_bid_always_wins(candidates, data):
    chosen = data.draw(st.sampled_from(candidates))
    ranked = rank(candidates, chosen_bid_id=chosen.bid_id)
    if chosen.disqualified is None:
        assert ranked[0].candidate is chosen
        assert ranked[0].outcome == "won"
        assert ranked[0].reason == "chosen by the requester"
    else:
        (entry,) = [r for r in ranked if r.candidate is chosen]
        assert entry.outcome == "ineligible"
        assert entry is ranked[-1] or not ranked[-1].eligible
    assert sum(r.outcome == "won" for r in ranked) <= 1
