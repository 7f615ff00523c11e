"""Direct calls in the pure formula: a call weighs a tenth of a contract, moves the score a
little, shares its caller's requester cap, and never counts toward a badge's (or the
leaderboard's) minimum number of outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hermes_hub.trust.formula import (
    Outcome,
    TrustParams,
    TrustResult,
    badges_for,
    breakdown,
    compute,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NO_DECAY = TrustParams(half_life_days=0)
CALL_WEIGHT = NO_DECAY.direct_call_weight


def contract(
    n: int, *, requester: str | None = None, success: bool = True, stars: int | None = None
) -> Outcome:
    return Outcome(
        key=f"c{n:05d}",
        requester=requester if requester is not None else f"owner{n}",
        at=NOW - timedelta(minutes=n),
        success=success,
        on_time=success,
        validation_score=1.0 if success else 0.0,
        stars=stars,
    )


def call(
    n: int, *, requester: str | None = None, ok: bool = True, params: TrustParams = NO_DECAY
) -> Outcome:
    """A direct call as the service loads it: answered or failed by the agent."""
    return Outcome(
        key=f"call:{n:05d}",
        requester=requester if requester is not None else f"caller{n}",
        at=NOW - timedelta(seconds=n),
        success=ok,
        on_time=ok,
        validation_score=1.0 if ok else 0.0,
        base_weight=params.direct_call_weight,
        direct_call=True,
    )


def run(outcomes: list[Outcome], *, params: TrustParams = NO_DECAY) -> TrustResult:
    return compute(outcomes, enrolled_at=NOW - timedelta(days=400), now=NOW, params=params)


def mixed_contracts() -> list[Outcome]:
    """Ten contracts from ten requesters, seven of them successes."""
    return [contract(i, success=i < 7) for i in range(10)]


def test_a_direct_call_weighs_a_tenth_of_a_contract() -> None:
    assert CALL_WEIGHT == 0.1
    result = run([*mixed_contracts(), *(call(i) for i in range(10))])

    assert result.effective_outcomes == pytest.approx(10 + 10 * CALL_WEIGHT)
    assert result.value("success_rate") == pytest.approx((7 + 1) / 11)
    inputs = result.component("success_rate").inputs
    assert (inputs["successes"], inputs["outcomes"]) == (7, 10)
    assert (inputs["direct_call_successes"], inputs["direct_calls"]) == (10, 10)


def test_good_calls_move_the_score_up_a_little_and_failed_calls_down_a_little() -> None:
    base = run(mixed_contracts()).trust
    answered = run([*mixed_contracts(), *(call(i) for i in range(10))]).trust
    failed = run([*mixed_contracts(), *(call(i, ok=False) for i in range(10))]).trust
    as_contracts = run([*mixed_contracts(), *(contract(100 + i) for i in range(10))]).trust

    assert failed < base < answered
    # Ten calls move it a little: far less than ten contracts would.
    assert answered - base < 0.03
    assert base - failed < 0.05
    assert answered - base < (as_contracts - base) / 4


def test_a_weight_of_zero_turns_direct_calls_off() -> None:
    off = TrustParams(half_life_days=0, direct_call_weight=0.0)
    calls = [call(i, ok=False, params=off) for i in range(50)]
    assert run([*mixed_contracts(), *calls], params=off).trust == run(mixed_contracts()).trust


def test_direct_calls_alone_earn_no_count_based_badge() -> None:
    # 300 answered calls from 300 callers: a perfect record, but no contract at all.
    result = run([call(i) for i in range(300)])

    assert (result.counted_outcomes, result.counted_calls) == (0, 300)
    assert (result.successes, result.on_time) == (0, 0)
    assert result.value("latency_score") == 1.0
    assert result.value("success_rate") == 1.0
    assert badges_for(result, verified=True) == ["verified"]


@pytest.mark.parametrize(
    ("contracts", "badge"),
    [(10, "lightning_fast"), (50, "reliable"), (100, "elite")],
)
def test_count_thresholds_are_over_contracts_only(contracts: int, badge: str) -> None:
    calls = [call(i) for i in range(2000)]
    short = run([*(contract(i, stars=5) for i in range(contracts - 1)), *calls])
    enough = run([*(contract(i, stars=5) for i in range(contracts)), *calls])

    assert short.counted_outcomes == contracts - 1
    assert short.counted_calls == 2000
    assert badge not in badges_for(short, verified=True)
    assert badge in badges_for(enough, verified=True)


def test_the_breakdown_keeps_contracts_and_calls_apart() -> None:
    result = run([*mixed_contracts(), *(call(i) for i in range(4))])
    published = breakdown(result, NO_DECAY)

    assert published["counted_outcomes"] == 10
    assert published["counted_direct_calls"] == 4
    assert published["direct_call_weight"] == CALL_WEIGHT
    assert published["effective_outcomes"] == pytest.approx(10.4)


def test_one_callers_flood_of_calls_weighs_one_contract() -> None:
    contracts = [contract(i) for i in range(10)]
    # Ten failing calls weigh 1 (ten tenths); 30 or 3000 weigh no more: calls are free.
    ten = run([*contracts, *(call(i, requester="hostile", ok=False) for i in range(10))])
    thirty = run([*contracts, *(call(i, requester="hostile", ok=False) for i in range(30))])
    flood = run([*contracts, *(call(i, requester="hostile", ok=False) for i in range(3000))])

    for result in (ten, thirty, flood):
        assert result.effective_outcomes == pytest.approx(11)
        for name in ("success_rate", "latency_score"):
            assert result.value(name) == pytest.approx(10 / 11)
    # Only the variance's Bessel correction (by the number of outcomes) tells them apart.
    assert flood.trust == pytest.approx(thirty.trust, abs=1e-3)
    assert breakdown(flood, NO_DECAY)["direct_call_requester_cap"] == 1.0


def test_the_call_cap_is_per_caller_and_a_parameter() -> None:
    contracts = [contract(i) for i in range(10)]
    callers = [call(i, requester=f"caller{i % 4}") for i in range(80)]
    assert run([*contracts, *callers]).effective_outcomes == pytest.approx(14)
    loose = TrustParams(half_life_days=0, direct_call_requester_cap=3.0)
    # At cap 3 each caller's 20 calls (2.0) stay whole.
    assert run([*contracts, *callers], params=loose).effective_outcomes == pytest.approx(18)


def test_a_callers_calls_and_contracts_share_one_cap() -> None:
    others = [contract(i) for i in range(10)]
    theirs = [contract(100 + i, requester="friend") for i in range(3)]
    alone = run([*others, *theirs])
    with_calls = run([*others, *theirs, *(call(i, requester="friend") for i in range(500))])

    # The friend's three contracts already fill its cap: its calls add nothing.
    assert alone.effective_outcomes == pytest.approx(13)
    assert with_calls.effective_outcomes == pytest.approx(13)
    assert with_calls.counted_calls == 500


def test_calls_decay_like_contracts() -> None:
    params = TrustParams(half_life_days=90)
    old = Outcome(
        key="call:old",
        requester="caller",
        at=NOW - timedelta(days=90),
        success=True,
        on_time=True,
        validation_score=1.0,
        base_weight=params.direct_call_weight,
        direct_call=True,
    )
    result = run([old], params=params)
    assert result.effective_outcomes == pytest.approx(params.direct_call_weight / 2)


def test_calls_carry_no_rating() -> None:
    result = run([*(call(i) for i in range(20))])
    assert result.rating_count == 0
    assert result.component("rating_score").inputs["neutral"] is True
