"""Manipulation detectors and rater reliability, pure: circular flows, dense clusters, young
accounts with many agents, finding fingerprints, and outlier raters."""

from __future__ import annotations

import hashlib
import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from hermes_hub.trust.integrity import (
    Account,
    Finding,
    IntegrityParams,
    RatingSample,
    Trade,
    circular_flows,
    dense_clusters,
    new_accounts_with_many_agents,
    rater_reliability,
    scan,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
PARAMS = IntegrityParams()


class Ledger:
    """Builds trades with unique contract ids, remembering which ids each call made."""

    def __init__(self) -> None:
        self.trades: list[Trade] = []

    def pay(self, payer: str, payee: str, count: int = 1, units: int = 100) -> set[str]:
        made = set()
        for _ in range(count):
            contract_id = f"k{len(self.trades):05d}"
            self.trades.append(Trade(contract_id, payer, payee, units))
            made.add(contract_id)
        return made


def ring(ledger: Ledger, members: list[str], per_edge: int = 2) -> set[str]:
    ids: set[str] = set()
    for payer, payee in zip(members, [*members[1:], members[0]], strict=True):
        ids |= ledger.pay(payer, payee, per_edge)
    return ids


def clique(ledger: Ledger, members: list[str], per_pair: int = 1) -> set[str]:
    ids: set[str] = set()
    for payer, payee in itertools.permutations(members, 2):
        ids |= ledger.pay(payer, payee, per_pair)
    return ids


def background_market(ledger: Ledger) -> None:
    """Eight customers buying from two providers: honest, one-way trade."""
    for i in range(8):
        ledger.pay(f"cust{i}", "prov1" if i % 2 else "prov2", 3)
    ledger.pay("cust0", "prov2")
    ledger.pay("cust1", "prov1")


def kinds(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings]


# ---- circular flows ----


def test_an_insular_ring_is_a_circular_flow() -> None:
    ledger = Ledger()
    ids = ring(ledger, ["A", "B", "C"])
    ledger.pay("A", "out1")  # a little outside trade: 6 of 7 contracts stay inside
    [finding] = circular_flows(ledger.trades, PARAMS)
    assert finding.kind == "circular_flow"
    assert finding.accounts == frozenset({"A", "B", "C"})
    assert finding.contract_ids == ids
    assert finding.detail["internal_contracts"] == 6
    assert finding.detail["internal_share"] == pytest.approx(6 / 7, abs=1e-4)
    assert finding.detail["circulated_units"] == 600


def test_a_ring_inside_a_market_is_found_alone() -> None:
    ledger = Ledger()
    background_market(ledger)
    ids = ring(ledger, ["A", "B", "C"], per_edge=3)
    [finding] = circular_flows(ledger.trades, PARAMS)
    assert finding.accounts == frozenset({"A", "B", "C"})
    assert finding.contract_ids == ids


def test_a_mutual_pair_is_a_circular_flow() -> None:
    ledger = Ledger()
    ids = ledger.pay("A", "B", 2) | ledger.pay("B", "A", 2)
    [finding] = circular_flows(ledger.trades, PARAMS)
    assert finding.accounts == frozenset({"A", "B"})
    assert finding.contract_ids == ids


def test_a_ring_trading_mostly_with_outsiders_is_not_flagged() -> None:
    ledger = Ledger()
    ring(ledger, ["A", "B", "C"])
    for member in ("A", "B", "C"):
        for i in range(5):
            ledger.pay(f"{member}-customer{i}", member, 2)
    assert circular_flows(ledger.trades, PARAMS) == []
    relaxed = IntegrityParams(insular_share=0.1)
    assert [f.accounts for f in circular_flows(ledger.trades, relaxed)] == [
        frozenset({"A", "B", "C"})
    ]


def test_the_insular_share_threshold() -> None:
    ledger = Ledger()
    ring(ledger, ["A", "B", "C"])  # 6 internal contracts
    ledger.pay("out", "A")  # 6 / 7 = 0.857 internal
    assert len(circular_flows(ledger.trades, PARAMS)) == 1
    ledger.pay("out", "B")  # 6 / 8 = 0.75 internal
    assert circular_flows(ledger.trades, PARAMS) == []


def test_a_ring_with_one_contract_per_edge_is_not_a_circular_flow() -> None:
    ledger = Ledger()
    ring(ledger, ["A", "B", "C"], per_edge=1)
    assert circular_flows(ledger.trades, PARAMS) == []
    ledger.pay("C", "A")  # one edge at 2 contracts is not a cycle of strong edges
    assert circular_flows(ledger.trades, PARAMS) == []


def test_a_one_way_customer_is_not_a_circular_flow() -> None:
    ledger = Ledger()
    ledger.pay("customer", "provider", 20)
    assert circular_flows(ledger.trades, PARAMS) == []
    assert scan(ledger.trades, [], now=NOW, params=PARAMS) == []


def test_self_dealing_is_not_a_cycle() -> None:
    ledger = Ledger()
    ledger.pay("A", "A", 10)
    assert circular_flows(ledger.trades, PARAMS) == []


def test_no_trades_no_findings() -> None:
    assert circular_flows([], PARAMS) == []
    assert dense_clusters([], PARAMS) == []
    assert scan([], [], now=NOW, params=PARAMS) == []


def test_a_sparse_market_of_buyers_and_sellers_is_not_one_big_ring() -> None:
    rng = random.Random(1)
    accounts = [f"u{i:02d}" for i in range(30)]
    ledger = Ledger()
    for account in accounts:
        for other in rng.sample([a for a in accounts if a != account], 3):
            ledger.pay(account, other, 2)  # density ~0.1: nobody trades with most others
    assert circular_flows(ledger.trades, PARAMS) == []


# ---- dense clusters ----


def test_a_mutual_clique_trading_internally_is_a_dense_cluster() -> None:
    ledger = Ledger()
    background_market(ledger)
    ids = clique(ledger, ["A", "B", "C", "D"])
    ledger.pay("cust2", "A")
    ledger.pay("B", "prov1")  # 12 of 14 of the members' contracts are internal
    findings = dense_clusters(ledger.trades, PARAMS)
    assert len(findings) == 1
    [finding] = findings
    assert finding.kind == "dense_cluster"
    assert finding.accounts == frozenset({"A", "B", "C", "D"})
    assert finding.contract_ids == ids
    assert finding.detail["density"] == 1.0
    assert finding.detail["internal_contracts"] == 12
    assert finding.detail["members_buying_and_selling"] == 4
    # One contract per pair: below the circular-flow edge minimum, so only this detector sees it.
    assert circular_flows(ledger.trades, PARAMS) == []


def test_a_clique_trading_mostly_outside_is_not_a_dense_cluster() -> None:
    ledger = Ledger()
    for i in range(8):
        ledger.pay(f"cust{i}", "prov1" if i % 2 else "prov2", 10)
    clique(ledger, ["A", "B", "C", "D"])
    for member in ("A", "B", "C", "D"):
        ledger.pay(member, "prov1", 2)
        ledger.pay(member, "prov2", 2)  # 12 of 28 of the members' contracts are internal
    assert dense_clusters(ledger.trades, PARAMS) == []
    # It is the insular-share rule that clears them: relaxed, the same clique is found.
    [found] = dense_clusters(ledger.trades, IntegrityParams(insular_share=0.4))
    assert found.accounts == frozenset({"A", "B", "C", "D"})
    assert found.detail["internal_share"] == pytest.approx(12 / 28, abs=1e-4)


def test_a_provider_with_loyal_customers_is_not_a_dense_cluster() -> None:
    ledger = Ledger()
    for customer in ("c1", "c2", "c3"):
        ledger.pay(customer, "provider", 5)
    assert dense_clusters(ledger.trades, PARAMS) == []
    # Not only for want of density: with the density bar lowered, the members who buy but
    # never sell keep it from being a ring.
    assert dense_clusters(ledger.trades, IntegrityParams(cluster_min_density=0.5)) == []
    assert scan(ledger.trades, [], now=NOW, params=PARAMS) == []


def test_shared_customers_of_two_providers_are_not_a_dense_cluster() -> None:
    ledger = Ledger()
    for customer in ("c1", "c2", "c3"):
        for provider in ("p1", "p2"):
            ledger.pay(customer, provider, 3)
    # 5 accounts, 6 of 10 pairs trade (density 0.6), all internal: only the buy/sell rule
    # tells these customers from a ring.
    assert dense_clusters(ledger.trades, PARAMS) == []


def test_too_few_internal_contracts_is_not_a_dense_cluster() -> None:
    ledger = Ledger()
    ids = clique(ledger, ["A", "B", "C"])  # 6 internal contracts: exactly the minimum
    assert [f.accounts for f in dense_clusters(ledger.trades, PARAMS)] == [
        frozenset({"A", "B", "C"})
    ]
    assert dense_clusters(ledger.trades, PARAMS)[0].contract_ids == ids
    fewer = [t for t in ledger.trades if t.contract_id != min(ids)]
    assert dense_clusters(fewer, PARAMS) == []


def test_two_one_off_outside_buyers_do_not_hide_a_clique() -> None:
    ledger = Ledger()
    background_market(ledger)
    clique(ledger, ["A", "B", "C", "D"])
    ledger.pay("stranger1", "A")
    ledger.pay("stranger2", "B")  # the members' trade is still 12 / 14 internal
    assert dense_clusters(ledger.trades, PARAMS) != []


# ---- new accounts with many agents ----


def account(name: str, *, age: timedelta, agents: int) -> Account:
    return Account(
        id=name,
        created_at=NOW - age,
        agent_ids=tuple(f"{name}-agent{i}" for i in range(agents)),
    )


def test_a_young_account_with_many_agents_and_trade_is_flagged() -> None:
    ledger = Ledger()
    ids = ledger.pay("young", "someone", 2) | ledger.pay("buyer", "young", 1)
    ledger.pay("buyer", "someone")  # not the young account's trade
    [finding] = new_accounts_with_many_agents(
        ledger.trades, [account("young", age=timedelta(days=2), agents=10)], now=NOW, params=PARAMS
    )
    assert finding.kind == "new_account_many_agents"
    assert finding.accounts == frozenset({"young"})
    assert finding.contract_ids == ids
    assert finding.detail["agents"] == 10


@pytest.mark.parametrize(
    ("age", "agents", "flagged"),
    [
        (timedelta(days=6, hours=23), 10, True),
        (timedelta(days=2), 50, True),
        (timedelta(days=7, seconds=1), 10, False),
        (timedelta(days=365), 40, False),
        (timedelta(days=1), 9, False),
    ],
)
def test_new_account_thresholds(age: timedelta, agents: int, flagged: bool) -> None:
    ledger = Ledger()
    ledger.pay("acct", "other")
    findings = new_accounts_with_many_agents(
        ledger.trades, [account("acct", age=age, agents=agents)], now=NOW, params=PARAMS
    )
    assert bool(findings) is flagged


def test_a_young_account_without_trade_is_not_flagged() -> None:
    ledger = Ledger()
    ledger.pay("x", "y", 5)
    young = account("young", age=timedelta(days=1), agents=20)
    assert new_accounts_with_many_agents(ledger.trades, [young], now=NOW, params=PARAMS) == []


def test_scan_combines_the_detectors() -> None:
    ledger = Ledger()
    ring(ledger, ["A", "B", "C"])
    ledger.pay("young", "A")
    accounts = [account("young", age=timedelta(days=1), agents=12)]
    found = scan(ledger.trades, accounts, now=NOW, params=PARAMS)
    assert "circular_flow" in kinds(found)
    assert "new_account_many_agents" in kinds(found)


# ---- fingerprints ----


def test_fingerprint_is_the_kind_and_a_hash_of_the_sorted_accounts() -> None:
    finding = Finding(kind="circular_flow", accounts=frozenset({"C", "A", "B"}))
    digest = hashlib.sha256(b"A,B,C").hexdigest()
    assert finding.fingerprint == f"circular_flow:{digest}"


def test_fingerprint_depends_on_kind_and_members_only() -> None:
    base = Finding(kind="dense_cluster", accounts=frozenset({"A", "B", "C"}))
    same = Finding(
        kind="dense_cluster",
        accounts=frozenset(["C", "B", "A"]),
        contract_ids={"k1", "k2"},
        detail={"density": 0.9},
    )
    assert same.fingerprint == base.fingerprint
    assert Finding(kind="circular_flow", accounts=base.accounts).fingerprint != base.fingerprint
    other = Finding(kind="dense_cluster", accounts=frozenset({"A", "B", "D"}))
    assert other.fingerprint != base.fingerprint


def test_fingerprints_are_stable_across_trade_order_and_new_contracts() -> None:
    ledger = Ledger()
    background_market(ledger)
    ring(ledger, ["A", "B", "C"])
    clique(ledger, ["P", "Q", "R", "S"])
    found = scan(ledger.trades, [], now=NOW, params=PARAMS)
    # The ring is caught by both detectors but is one finding (one flag to review).
    assert sorted((f.kind, "".join(sorted(f.accounts))) for f in found) == [
        ("circular_flow", "ABC"),
        ("dense_cluster", "PQRS"),
    ]
    ring_finding = next(f for f in found if f.kind == "circular_flow")
    assert "dense_cluster" in ring_finding.detail
    first = {f.fingerprint for f in found}
    assert len(first) == 2
    shuffled = list(ledger.trades)
    random.Random(7).shuffle(shuffled)
    assert {f.fingerprint for f in scan(shuffled, [], now=NOW, params=PARAMS)} == first
    assert {f.fingerprint for f in scan(shuffled[::-1], [], now=NOW, params=PARAMS)} == first
    ring(ledger, ["A", "B", "C"])  # more of the same trade: the same groups, the same flags
    assert {f.fingerprint for f in scan(ledger.trades, [], now=NOW, params=PARAMS)} == first


# ---- rater reliability ----


def samples(rater: str, stars: int, agents: list[str], times: int = 1) -> list[RatingSample]:
    return [RatingSample(rater, agent, stars) for agent in agents for _ in range(times)]


AGENTS = ["a1", "a2", "a3"]
CONSENSUS = [s for rater in ("g1", "g2", "g3") for s in samples(rater, 5, AGENTS)]


def test_a_harsh_outlier_is_down_weighted() -> None:
    result = rater_reliability([*CONSENSUS, *samples("harsh", 1, AGENTS)], PARAMS)
    assert result["harsh"].weight <= 0.25
    assert result["harsh"].compared == 3
    assert result["harsh"].mean_deviation == 4.0
    for rater in ("g1", "g2", "g3"):
        assert result[rater].weight == 1.0
        assert result[rater].mean_deviation == 0.0


def test_a_rater_agreeing_with_the_consensus_keeps_full_weight() -> None:
    result = rater_reliability([*CONSENSUS, *samples("fair", 5, AGENTS)], PARAMS)
    assert result["fair"].weight == 1.0
    assert result["fair"].compared == 3
    mild = rater_reliability([*CONSENSUS, *samples("mild", 4, AGENTS)], PARAMS)
    assert mild["mild"].weight == 1.0
    assert mild["mild"].mean_deviation == 1.0


@pytest.mark.parametrize(
    ("stars", "weight"),
    [(4, 1.0), (3, 0.25), (2, 0.125), (1, 0.125)],  # deviations 1, 2 (at the bar), 3 (1.5x), 4
)
def test_deviation_thresholds(stars: int, weight: float) -> None:
    result = rater_reliability([*CONSENSUS, *samples("r", stars, AGENTS)], PARAMS)
    assert result["r"].weight == weight


def test_too_few_comparisons_keep_full_weight() -> None:
    result = rater_reliability([*CONSENSUS, *samples("harsh", 1, AGENTS[:2])], PARAMS)
    assert result["harsh"].compared == 2
    assert result["harsh"].mean_deviation == 4.0
    assert result["harsh"].weight == 1.0


def test_agents_with_fewer_than_two_other_raters_are_not_compared() -> None:
    thin = [*samples("g1", 5, AGENTS), *samples("harsh", 1, AGENTS)]
    result = rater_reliability(thin, PARAMS)
    assert result["harsh"].compared == 0
    assert result["harsh"].weight == 1.0
    assert result["g1"].weight == 1.0


def test_a_raters_own_ratings_are_not_part_of_the_consensus() -> None:
    # "harsh" rates each agent five times with 1 star; two others give 5 stars once each.
    # Counted in the consensus, harsh's own ratings would make the median 1 and hide them.
    ratings = [
        *samples("g1", 5, AGENTS),
        *samples("g2", 5, AGENTS),
        *samples("harsh", 1, AGENTS, times=5),
    ]
    result = rater_reliability(ratings, PARAMS)
    assert result["harsh"].mean_deviation == 4.0
    assert result["harsh"].compared == 3  # once per agent, however many ratings
    assert result["harsh"].weight <= 0.25


def test_every_rater_gets_a_result() -> None:
    ratings = [*CONSENSUS, RatingSample("loner", "elsewhere", 2)]
    result = rater_reliability(ratings, PARAMS)
    assert set(result) == {"g1", "g2", "g3", "loner"}
    assert result["loner"].compared == 0
    assert result["loner"].weight == 1.0
    assert rater_reliability([], PARAMS) == {}


def test_one_prolific_rater_cannot_make_honest_raters_outliers() -> None:
    ratings = [
        *samples("h1", 5, AGENTS),
        *samples("h2", 5, AGENTS),
        *samples("h3", 5, AGENTS),
        *samples("spam", 1, AGENTS, times=10),
    ]
    result = rater_reliability(ratings, PARAMS)
    assert result["spam"].weight <= 0.25
    assert result["h1"].weight == 1.0
