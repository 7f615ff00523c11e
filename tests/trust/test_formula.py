"""The trust formula, pure: the seed's worked example, grades, levels, the Bayesian pull to
the prior, decay, the per-requester cap, ratings, consistency, badges, probation, and
properties over random outcome histories."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_hub.trust.formula import (
    NEUTRAL_RATING_SCORE,
    PRIOR,
    Outcome,
    TrustParams,
    TrustResult,
    age_in_days,
    badges_for,
    breakdown,
    capped_weights,
    compute,
    decay,
    grade_for,
    weighted_variance,
)
from hermes_hub.trust.levels import Complexity, Level, level_for, may_take, minimum_level

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DEFAULT = TrustParams()
NO_DECAY = TrustParams(half_life_days=0)


def outcome(
    n: int,
    *,
    requester: str | None = None,
    age_days: float = 0,
    success: bool = True,
    on_time: bool | None = None,
    score: float = 1.0,
    stars: int | None = None,
    rating_weight: float = 1.0,
    base_weight: float = 1.0,
) -> Outcome:
    """Outcome number ``n``; by default its own requester, fresh, a success delivered on time."""
    return Outcome(
        key=f"c{n:05d}",
        requester=requester if requester is not None else f"r{n}",
        at=NOW - timedelta(days=age_days, minutes=n),
        success=success,
        on_time=success if on_time is None else on_time,
        validation_score=score,
        stars=stars,
        rating_weight=rating_weight,
        base_weight=base_weight,
    )


def run(
    outcomes: list[Outcome],
    *,
    params: TrustParams = DEFAULT,
    enrolled_days: int = 45,
    now: datetime = NOW,
    on_probation: bool = False,
) -> TrustResult:
    return compute(
        outcomes,
        enrolled_at=now - timedelta(days=enrolled_days),
        now=now,
        params=params,
        on_probation=on_probation,
    )


def perfect(count: int, *, first: int = 0, requester: str | None = None) -> list[Outcome]:
    return [outcome(first + i, requester=requester) for i in range(count)]


# ---- the seed's worked example ----

SEED_SCORES = [0.9, 0.7, 0.0, 0.6]


def seed_outcomes() -> list[Outcome]:
    # Contract #3 failed (and was late); stars 5, 4, 3, 5; four different requesters.
    return [
        outcome(1, success=True, stars=5, score=0.9),
        outcome(2, success=True, stars=4, score=0.7),
        outcome(3, success=False, stars=3, score=0.0),
        outcome(4, success=True, stars=5, score=0.6),
    ]


def test_seed_validation_scores_have_sample_variance_0_15() -> None:
    assert statistics.variance(SEED_SCORES) == pytest.approx(0.15, abs=1e-15)
    assert weighted_variance(SEED_SCORES, [1.0] * 4) == pytest.approx(0.15, abs=1e-15)
    # Not the population variance, which would be 0.1125.
    assert statistics.pvariance(SEED_SCORES) == pytest.approx(0.1125)


def test_seed_worked_example() -> None:
    result = run(seed_outcomes(), params=NO_DECAY, enrolled_days=45)

    assert result.value("success_rate") == pytest.approx(0.75)
    assert result.value("latency_score") == pytest.approx(0.75)
    assert result.value("rating_score") == pytest.approx(0.85)
    assert result.value("uptime_score") == pytest.approx(45 / 365)
    assert result.value("consistency_score") == pytest.approx(0.85)
    assert result.component("consistency_score").inputs[
        "validation_score_variance"
    ] == pytest.approx(0.15)
    assert result.raw is not None
    assert round(result.raw, 3) == 0.717
    assert result.raw == pytest.approx(0.30 + 0.15 + 0.17 + 0.1 * 45 / 365 + 0.085)

    assert result.effective_outcomes == 4.0
    assert result.counted_outcomes == 4
    assert result.successes == 3
    assert result.on_time == 3
    assert result.rating_count == 4
    assert result.mean_rating == pytest.approx(4.25)
    assert result.trust == pytest.approx((4 * result.raw + 3 * 0.5) / 7)
    assert grade_for(0.72) == "B-"
    assert badges_for(result, verified=True) == ["verified"]


def test_seed_example_components_are_weighted_as_published() -> None:
    result = run(seed_outcomes(), params=NO_DECAY)
    weights = {c.name: c.weight for c in result.components}
    assert weights == {
        "success_rate": 0.4,
        "latency_score": 0.2,
        "rating_score": 0.2,
        "uptime_score": 0.1,
        "consistency_score": 0.1,
    }
    assert sum(weights.values()) == pytest.approx(1.0)


# ---- grades ----

GRADE_TABLE = [
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
]


@pytest.mark.parametrize(("threshold", "grade"), GRADE_TABLE)
def test_grade_at_threshold(threshold: float, grade: str) -> None:
    assert grade_for(threshold) == grade


@pytest.mark.parametrize(
    ("threshold", "below"),
    [(t, g) for (t, _), (_, g) in zip(GRADE_TABLE, [*GRADE_TABLE[1:], (0.0, "F")], strict=True)],
)
def test_grade_just_below_threshold(threshold: float, below: str) -> None:
    assert grade_for(math.nextafter(threshold, 0.0)) == below


@pytest.mark.parametrize(
    ("trust", "grade"),
    [(0.96, "A+"), (0.876, "B+"), (0.72, "B-"), (1.0, "A+"), (0.5, "D"), (0.0, "F"), (0.39, "F")],
)
def test_grade_examples(trust: float, grade: str) -> None:
    assert grade_for(trust) == grade


# ---- levels and complexity gates ----


@pytest.mark.parametrize(
    ("trust", "level"),
    [
        (0.0, Level.NOVICE),
        (math.nextafter(0.5, 0.0), Level.NOVICE),
        (0.5, Level.INTERMEDIATE),
        (math.nextafter(0.75, 0.0), Level.INTERMEDIATE),
        (0.75, Level.EXPERT),
        (math.nextafter(0.9, 0.0), Level.EXPERT),
        (0.9, Level.MASTER),
        (1.0, Level.MASTER),
    ],
)
def test_level_boundaries(trust: float, level: Level) -> None:
    assert level_for(trust) == level


def test_the_prior_is_intermediate() -> None:
    assert level_for(PRIOR) == Level.INTERMEDIATE


@pytest.mark.parametrize(
    ("complexity", "trust", "allowed"),
    [
        (Complexity.SIMPLE, 0.0, True),
        (Complexity.SIMPLE, 1.0, True),
        (Complexity.MEDIUM, math.nextafter(0.5, 0.0), False),
        (Complexity.MEDIUM, 0.5, True),
        (Complexity.MEDIUM, 0.95, True),
        (Complexity.COMPLEX, 0.5, False),
        (Complexity.COMPLEX, math.nextafter(0.75, 0.0), False),
        (Complexity.COMPLEX, 0.75, True),
        (Complexity.COMPLEX, 0.9, True),
    ],
)
def test_complexity_gates(complexity: Complexity, trust: float, allowed: bool) -> None:
    assert may_take(complexity, trust) is allowed


def test_minimum_levels() -> None:
    assert minimum_level(Complexity.SIMPLE) == Level.NOVICE
    assert minimum_level(Complexity.MEDIUM) == Level.INTERMEDIATE
    assert minimum_level(Complexity.COMPLEX) == Level.EXPERT


# ---- the Bayesian pull to the prior ----


def test_no_outcomes_is_exactly_the_prior() -> None:
    result = run([])
    assert result.trust == PRIOR == 0.5
    assert result.raw is None
    assert result.effective_outcomes == 0
    assert result.counted_outcomes == 0
    for name in ("success_rate", "latency_score", "consistency_score"):
        assert result.value(name) is None
        assert result.component(name).weighted is None
    assert result.value("rating_score") == NEUTRAL_RATING_SCORE
    assert grade_for(result.trust) == "D"
    assert badges_for(result, verified=True) == ["verified"]
    shown = breakdown(result, DEFAULT)
    assert shown["raw_score"] is None
    assert shown["trust_score"] == 0.5
    json.dumps(shown)


@pytest.mark.parametrize(
    "outcomes",
    [
        pytest.param([outcome(1, base_weight=0.0), outcome(2, base_weight=0.0)], id="zero-weight"),
        pytest.param([outcome(1, age_days=200_000)], id="decayed-to-nothing"),
    ],
)
def test_outcomes_weighing_nothing_give_the_prior(outcomes: list[Outcome]) -> None:
    result = run(outcomes)
    assert result.effective_outcomes == 0
    assert result.raw is None
    assert result.trust == PRIOR
    assert result.counted_outcomes == len(outcomes)


def test_one_perfect_outcome_is_not_a_perfect_score() -> None:
    result = run([outcome(1, stars=5)], enrolled_days=400)
    assert result.raw == pytest.approx(1.0)
    assert result.trust == pytest.approx((1.0 + 3 * 0.5) / 4)
    assert result.trust < 0.7


def test_more_perfect_outcomes_raise_trust_monotonically_toward_raw() -> None:
    trusts = []
    for count in range(1, 41):
        result = run(perfect(count), params=NO_DECAY)
        assert result.raw is not None
        assert result.trust < result.raw
        trusts.append(result.trust)
    assert all(a < b for a, b in itertools.pairwise(trusts))
    many = run(perfect(600), params=NO_DECAY)
    assert many.raw is not None
    assert many.raw - many.trust < 0.01


def test_poor_record_is_pulled_up_toward_the_prior() -> None:
    result = run([outcome(1, success=False, score=0.0, stars=1)], params=NO_DECAY)
    assert result.raw is not None
    assert result.raw < result.trust < PRIOR


# ---- decay ----


def test_decay_halves_every_half_life() -> None:
    assert decay(0, 90) == 1.0
    assert decay(90, 90) == 0.5
    assert decay(180, 90) == 0.25
    assert decay(45, 90) == pytest.approx(math.sqrt(0.5))


def test_an_outcome_90_days_old_weighs_half_a_fresh_one() -> None:
    fresh_success = outcome(1, success=True)
    old_failure = outcome(2, success=False, age_days=90)
    result = run([fresh_success, old_failure])
    assert result.effective_outcomes == pytest.approx(1.5)
    assert result.value("success_rate") == pytest.approx(1 / 1.5)
    # And the other way round: the old one counts for half.
    flipped = run([outcome(1, success=False), outcome(2, success=True, age_days=90)])
    assert flipped.value("success_rate") == pytest.approx(0.5 / 1.5)


def test_only_very_old_outcomes_drift_to_the_prior() -> None:
    fresh = run(perfect(5))
    ancient = run([outcome(i, age_days=3650) for i in range(5)], enrolled_days=4000)
    assert fresh.trust > 0.6
    assert abs(ancient.trust - PRIOR) < 0.001
    assert ancient.trust > PRIOR
    # Decay shrinks the evidence, not the measured rates.
    assert ancient.value("success_rate") == pytest.approx(1.0)


def test_age_is_whole_utc_calendar_days() -> None:
    at = datetime(2025, 5, 31, 23, 59, tzinfo=UTC)
    assert age_in_days(at, datetime(2025, 6, 1, 0, 1, tzinfo=UTC)) == 1
    assert age_in_days(at, datetime(2025, 5, 31, 23, 59, 59, tzinfo=UTC)) == 0
    assert age_in_days(datetime(2025, 6, 1, 0, 0, tzinfo=UTC), at) == 0  # never negative


def test_same_utc_date_gives_identical_results() -> None:
    history = [
        outcome(1, age_days=10.3),
        outcome(2, age_days=37.9, success=False, score=0.2),
        outcome(3, age_days=200, stars=4),
    ]
    early = datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
    late = datetime(2025, 6, 1, 23, 59, 59, 999999, tzinfo=UTC)
    next_day = datetime(2025, 6, 2, 0, 0, tzinfo=UTC)
    enrolled = datetime(2025, 1, 1, 18, 0, tzinfo=UTC)

    def at(now: datetime) -> TrustResult:
        return compute(history, enrolled_at=enrolled, now=now, params=DEFAULT)

    assert at(early) == at(late)
    assert at(early).trust == at(late).trust
    assert at(next_day).trust != at(early).trust


def test_age_uses_utc_dates_whatever_the_zone() -> None:
    plus_two = timezone(timedelta(hours=2))
    at = datetime(2025, 1, 2, 1, 30, tzinfo=plus_two)  # 2025-01-01 23:30 UTC
    now = datetime(2025, 1, 2, 0, 30, tzinfo=UTC)
    assert age_in_days(at, now) == 1


def test_half_life_zero_disables_decay() -> None:
    assert decay(10_000, 0) == 1.0
    old = [outcome(i, age_days=1000 + i) for i in range(4)]
    result = run(old, params=NO_DECAY)
    assert result.effective_outcomes == 4.0
    assert run(old, params=DEFAULT).effective_outcomes < 0.01


# ---- the per-requester cap ----


def bully_history() -> list[Outcome]:
    """20 failures from one requester among 10 successes from 10 others."""
    failures = [
        outcome(i, requester="bully", success=False, score=0.0, age_days=0) for i in range(20)
    ]
    successes = [outcome(100 + i, requester=f"fair{i}") for i in range(10)]
    return failures + successes


def test_capped_weights_scale_a_requester_to_the_cap() -> None:
    history = bully_history()
    raw = [1.0] * len(history)
    capped = capped_weights(history, raw, DEFAULT)
    # The cap is relative to the capped total: max(3, 0.2 x 13) = 3.
    cap = max(3.0, 0.2 * sum(capped))
    assert cap == pytest.approx(3.0)
    bully = [w for o, w in zip(history, capped, strict=True) if o.requester == "bully"]
    assert sum(bully) == pytest.approx(cap, rel=1e-12)
    assert bully == pytest.approx([cap / 20] * 20, rel=1e-12)
    assert [w for o, w in zip(history, capped, strict=True) if o.requester != "bully"] == [1.0] * 10


def test_capped_weights_scale_proportionally() -> None:
    history = bully_history()
    raw = [1.0 / (1 + i % 7) for i in range(20)] + [1.0] * 10
    capped = capped_weights(history, raw, DEFAULT)
    bully_raw = sum(raw[:20])
    cap = max(3.0, 0.2 * sum(capped))
    assert bully_raw > cap
    assert sum(capped[:20]) == pytest.approx(cap, rel=1e-12)
    ratios = [c / r for c, r in zip(capped[:20], raw[:20], strict=True)]
    assert ratios == pytest.approx([cap / bully_raw] * 20, rel=1e-12)
    assert capped[20:] == raw[20:]


def test_cap_minimum_applies_to_small_histories() -> None:
    history = [outcome(i, requester="same") for i in range(5)] + [outcome(9)]
    capped = capped_weights(history, [1.0] * 6, DEFAULT)
    # 0.2 * 6 = 1.2 < 3, so the floor of 3 is the cap.
    assert sum(capped[:5]) == pytest.approx(3.0)
    assert capped[5] == 1.0


def test_a_requester_under_the_cap_is_untouched() -> None:
    history = [outcome(i, requester=f"r{i % 10}") for i in range(30)]
    raw = [1.0] * 30
    assert capped_weights(history, raw, DEFAULT) == raw


def test_one_requester_cannot_sink_the_score() -> None:
    result = run(bully_history(), params=NO_DECAY)
    assert result.effective_outcomes == pytest.approx(13.0)
    assert result.value("success_rate") == pytest.approx(10 / 13)
    uncapped = run(
        bully_history(), params=replace(NO_DECAY, requester_cap_min=1000, requester_cap_share=1.0)
    )
    assert uncapped.value("success_rate") == pytest.approx(10 / 30)
    assert result.trust > uncapped.trust


def test_a_friendly_requester_is_worth_far_less_than_many_independent_ones() -> None:
    friendly = run(perfect(100, requester="friend"), params=NO_DECAY, enrolled_days=0)
    independent = run(perfect(100), params=NO_DECAY, enrolled_days=0)
    assert friendly.effective_outcomes == pytest.approx(3.0)
    assert independent.effective_outcomes == 100.0
    assert friendly.trust < independent.trust


def test_a_friendly_requester_cannot_lift_a_new_agent_beyond_three_successes() -> None:
    friendly = run(perfect(100, requester="friend"), params=NO_DECAY, enrolled_days=0)
    three = run(perfect(3), params=NO_DECAY, enrolled_days=0)
    assert friendly.trust <= three.trust + 0.02


# ---- ratings ----


def test_no_ratings_is_neutral() -> None:
    result = run(perfect(3))
    assert result.value("rating_score") == 0.6
    assert result.mean_rating is None
    assert result.rating_count == 0
    assert result.component("rating_score").inputs["neutral"] is True


def test_rater_reliability_down_weights_a_rating() -> None:
    result = run([outcome(1, stars=5), outcome(2, stars=1, rating_weight=0.25)])
    assert result.mean_rating == pytest.approx((5 + 0.25 * 1) / 1.25)
    assert result.value("rating_score") == pytest.approx(4.2 / 5)
    assert result.rating_count == 2


def test_a_rating_weighing_nothing_is_ignored() -> None:
    result = run(
        [
            outcome(1, stars=5),
            outcome(2, stars=1, rating_weight=0.0),
            outcome(3, stars=1, base_weight=0.0),
        ]
    )
    assert result.mean_rating == 5.0
    assert result.value("rating_score") == 1.0
    assert result.rating_count == 1


def test_a_decayed_rating_counts_less() -> None:
    result = run([outcome(1, stars=5), outcome(2, stars=1, age_days=90)])
    assert result.mean_rating == pytest.approx((5 + 0.5) / 1.5)


# ---- consistency ----


def test_one_outcome_has_no_variance() -> None:
    result = run([outcome(1, score=0.3)])
    assert result.component("consistency_score").inputs["validation_score_variance"] == 0.0
    assert result.value("consistency_score") == 1.0
    assert weighted_variance([0.3], [1.0]) == 0.0
    assert weighted_variance([], []) == 0.0


@pytest.mark.parametrize("score", [0.0, 0.1, 0.3, 0.7, 0.85, 1.0])
def test_equal_scores_are_fully_consistent(score: float) -> None:
    result = run([outcome(i, score=score) for i in range(7)])
    assert result.value("consistency_score") == 1.0


def test_consistency_is_never_negative() -> None:
    wild = [outcome(i, score=(-5.0 if i % 2 else 5.0)) for i in range(6)]
    result = run(wild)
    assert result.component("consistency_score").inputs["validation_score_variance"] > 1
    assert result.value("consistency_score") == 0.0


def test_consistency_of_two_opposite_outcomes() -> None:
    result = run([outcome(1, score=1.0), outcome(2, score=0.0, success=False)])
    assert result.value("consistency_score") == pytest.approx(0.5)  # sample variance 0.5


def test_a_nearly_weightless_outcome_does_not_set_the_variance() -> None:
    result = run([outcome(1, score=1.0), outcome(2, score=0.0, age_days=3000)])
    assert result.effective_outcomes < 1.001
    assert result.value("consistency_score") == pytest.approx(1.0, abs=0.01)


# ---- badges ----


def history_on_time(total: int, on_time: int) -> list[Outcome]:
    return [outcome(i, success=True, on_time=i < on_time) for i in range(total)]


@pytest.mark.parametrize(
    ("total", "on_time", "earned"),
    [(10, 9, True), (20, 18, True), (10, 8, False), (19, 17, False), (9, 9, False)],
)
def test_lightning_fast(total: int, on_time: int, earned: bool) -> None:
    result = run(history_on_time(total, on_time), params=NO_DECAY)
    assert ("lightning_fast" in badges_for(result, verified=True)) is earned


@pytest.mark.parametrize(
    ("stars", "earned"),
    [
        ([5] * 8 + [4] * 2, True),  # 4.8 exactly over 10
        ([5] * 10, True),
        ([5] * 7 + [4] * 3, False),  # 4.7
        ([5] * 16 + [4] * 3 + [3], False),  # 4.75
        ([5] * 9, False),  # too few ratings
    ],
)
def test_top_rated(stars: list[int], earned: bool) -> None:
    result = run([outcome(i, stars=s) for i, s in enumerate(stars)], params=NO_DECAY)
    assert ("top_rated" in badges_for(result, verified=True)) is earned


@pytest.mark.parametrize(
    ("total", "successes", "earned"),
    [(50, 49, True), (100, 98, True), (50, 48, False), (99, 97, False), (49, 49, False)],
)
def test_reliable(total: int, successes: int, earned: bool) -> None:
    history = [outcome(i, success=i < successes) for i in range(total)]
    result = run(history, params=NO_DECAY)
    assert ("reliable" in badges_for(result, verified=True)) is earned


@pytest.mark.parametrize(
    ("counted", "trust", "earned"),
    [
        (100, 0.95, True),
        (100, math.nextafter(0.95, 0.0), False),
        (99, 0.99, False),
        (500, 0.97, True),
    ],
)
def test_elite(counted: int, trust: float, earned: bool) -> None:
    base = run(perfect(3))
    result = replace(base, counted_outcomes=counted, trust=trust)
    assert ("elite" in badges_for(result, verified=True)) is earned


def test_elite_is_reachable() -> None:
    result = run([outcome(i, stars=5) for i in range(100)], params=NO_DECAY, enrolled_days=400)
    assert result.trust >= 0.95
    assert badges_for(result, verified=True) == [
        "verified",
        "lightning_fast",
        "top_rated",
        "reliable",
        "elite",
    ]


def test_verified_unless_on_probation() -> None:
    history = perfect(3)
    assert "verified" in badges_for(run(history), verified=True)
    assert "verified" not in badges_for(run(history), verified=False)
    assert "verified" not in badges_for(run(history, on_probation=True), verified=True)


# ---- probation ----


def test_probation_caps_trust_at_the_prior() -> None:
    strong = [outcome(i, stars=5) for i in range(50)]
    free = run(strong)
    held = run(strong, on_probation=True)
    assert free.trust > PRIOR
    assert held.trust == PRIOR
    assert held.on_probation is True
    assert held.raw == free.raw


def test_probation_does_not_raise_a_low_score() -> None:
    weak = [outcome(i, success=False, score=0.0, stars=1) for i in range(10)]
    free = run(weak)
    held = run(weak, on_probation=True)
    assert free.trust < PRIOR
    assert held.trust == free.trust


# ---- properties ----

REQUESTERS = [f"req{i}" for i in range(5)]


@st.composite
def outcomes_strategy(draw: st.DrawFn, *, min_size: int = 0) -> list[Outcome]:
    count = draw(st.integers(min_value=min_size, max_value=25))
    result = []
    for i in range(count):
        success = draw(st.booleans())
        result.append(
            Outcome(
                key=f"k{i:03d}",
                requester=draw(st.sampled_from(REQUESTERS)),
                at=NOW - timedelta(seconds=draw(st.integers(0, 3 * 365 * 86400))),
                success=success,
                on_time=success and draw(st.booleans()),
                validation_score=draw(st.floats(0.0, 1.0)),
                stars=draw(st.none() | st.integers(1, 5)),
                rating_weight=draw(st.sampled_from([1.0, 0.5, 0.25, 0.125, 0.0])),
            )
        )
    return result


params_strategy = st.builds(
    TrustParams,
    half_life_days=st.sampled_from([0.0, 30.0, 90.0, 365.0]),
    prior_strength=st.sampled_from([1.0, 3.0, 10.0]),
)


@settings(max_examples=150, deadline=None)
@given(
    outcomes=outcomes_strategy(),
    params=params_strategy,
    enrolled_days=st.integers(0, 2000),
    on_probation=st.booleans(),
)
def test_trust_is_within_zero_and_one(
    outcomes: list[Outcome], params: TrustParams, enrolled_days: int, on_probation: bool
) -> None:
    result = run(outcomes, params=params, enrolled_days=enrolled_days, on_probation=on_probation)
    assert 0.0 <= result.trust <= 1.0
    if result.raw is not None:
        assert 0.0 <= result.raw <= 1.0 + 1e-12
    for component in result.components:
        if component.value is not None:
            assert 0.0 <= component.value <= 1.0 + 1e-12


@settings(max_examples=150, deadline=None)
@given(outcomes=outcomes_strategy(), params=params_strategy, data=st.data())
def test_order_of_outcomes_does_not_matter(
    outcomes: list[Outcome], params: TrustParams, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(outcomes))
    first = run(outcomes, params=params)
    second = run(shuffled, params=params)
    assert second == first
    assert second.trust == first.trust
    assert second.raw == first.raw


@settings(max_examples=200, deadline=None)
@given(
    outcomes=outcomes_strategy(min_size=1),
    params=params_strategy,
    requester=st.sampled_from([*REQUESTERS, "newcomer"]),
    age_seconds=st.integers(0, 3 * 365 * 86400),
    on_time=st.booleans(),
)
def test_adding_a_success_never_lowers_the_success_rate(
    outcomes: list[Outcome],
    params: TrustParams,
    requester: str,
    age_seconds: int,
    on_time: bool,
) -> None:
    before = run(outcomes, params=params).value("success_rate")
    extra = Outcome(
        key="k999",
        requester=requester,
        at=NOW - timedelta(seconds=age_seconds),
        success=True,
        on_time=on_time,
        validation_score=1.0,
    )
    after = run([*outcomes, extra], params=params).value("success_rate")
    assert after is not None
    if before is not None:
        assert after >= before - 1e-12


@settings(max_examples=150, deadline=None)
@given(outcomes=outcomes_strategy(), params=params_strategy, enrolled_days=st.integers(0, 800))
def test_breakdown_reproduces_the_score(
    outcomes: list[Outcome], params: TrustParams, enrolled_days: int
) -> None:
    result = run(outcomes, params=params, enrolled_days=enrolled_days)
    shown = json.loads(json.dumps(breakdown(result, params)))
    if result.raw is None:
        assert shown["raw_score"] is None
        assert shown["trust_score"] == shown["prior"]
        return
    redone = sum(c["weight"] * c["value"] for c in shown["components"])
    assert redone == shown["raw_score"] == result.raw
    assert sum(c["weighted"] for c in shown["components"]) == result.raw
    n, k = shown["effective_outcomes"], shown["prior_strength"]
    assert (n * redone + k * shown["prior"]) / (n + k) == pytest.approx(
        shown["trust_score"], abs=1e-12
    )


@given(
    st.lists(st.floats(min_value=0.01, max_value=200), min_size=1, max_size=12),
    st.floats(min_value=0.5, max_value=10),
    st.floats(min_value=0.05, max_value=0.9),
)
@settings(max_examples=300, deadline=None)
def test_the_requester_cap_holds_against_the_capped_total(
    totals: list[float], floor: float, share: float
) -> None:
    params = TrustParams(requester_cap_min=floor, requester_cap_share=share)
    history = [outcome(i, requester=f"r{i}") for i in range(len(totals))]
    capped = capped_weights(history, totals, params)
    limit = max(floor, share * sum(capped))
    # Nobody is over the cap, measured against what the score is built from...
    assert all(weight <= limit * (1 + 1e-9) for weight in capped)
    # ...those under it are untouched, and the cap is not tighter than it must be: whoever
    # was cut sits exactly at it.
    for before, after in zip(totals, capped, strict=True):
        assert after == before or after == pytest.approx(limit, rel=1e-9)
