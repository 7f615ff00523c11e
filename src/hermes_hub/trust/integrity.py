"""Manipulation detection over who trades with whom, and rater reliability. Pure functions.

Accounts are users: a contract is a trade from the requester's owner (who pays) to the
awarded agent's owner (who earns). Three patterns are flagged:

- **circular flow**: a strongly connected group of 2 to ``ring_max_size`` accounts (money
  goes round: A pays B, B pays C, C pays A; or A and B pay each other), each edge carrying at least
  ``cycle_min_contracts`` contracts, whose members do at least ``insular_share`` of all
  their trade inside the group;
- **dense cluster**: the core of a community (Louvain, fixed seed; members with fewer than
  ``cycle_min_contracts`` contracts inside it are pruned, repeatedly) of at least
  ``cluster_min_size`` accounts with undirected density of at least
  ``cluster_min_density``, at least ``cluster_min_contracts`` internal contracts, at least
  ``insular_share`` of its members' trade internal, and at least half its members both
  buying and selling inside it (a provider's loyal customers buy but do not sell, so they
  are not a ring);
- **new account, many agents**: an account younger than ``new_account_days`` owning at least
  ``new_account_min_agents`` agents, with trade to stop counting.

A rater is a consistent outlier when, over at least ``rater_min_compared`` agents that at
least two other raters also rated, their mean stars for the agent sit on average at least
``rater_outlier_deviation`` stars from the median of the other raters' means; their ratings
then weigh ``rater_outlier_weight`` (half that again at 1.5x the deviation).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import networkx as nx


@dataclass(frozen=True)
class Trade:
    contract_id: str
    payer: str  # the requester's owner
    payee: str  # the awarded agent's owner
    units: int


@dataclass(frozen=True)
class Account:
    id: str
    created_at: datetime
    agent_ids: tuple[str, ...]


@dataclass(frozen=True)
class IntegrityParams:
    insular_share: float = 0.8
    cycle_min_contracts: int = 2
    # Rings are small by nature; a whole small market trading in a circle is not one.
    ring_max_size: int = 8
    cluster_min_size: int = 3
    cluster_min_density: float = 0.6
    cluster_min_contracts: int = 6
    new_account_days: int = 7
    new_account_min_agents: int = 10
    rater_min_compared: int = 3
    rater_outlier_deviation: float = 2.0
    rater_outlier_weight: float = 0.25


@dataclass
class Finding:
    kind: str
    accounts: frozenset[str]
    contract_ids: set[str] = field(default_factory=set)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(",".join(sorted(self.accounts)).encode()).hexdigest()
        return f"{self.kind}:{digest[:64]}"


def _trade_graph(trades: Sequence[Trade]) -> nx.DiGraph:
    graph = nx.DiGraph()
    for trade in trades:
        if trade.payer == trade.payee:
            continue  # self-dealing already earns no credit
        if graph.has_edge(trade.payer, trade.payee):
            edge = graph[trade.payer][trade.payee]
            edge["contracts"] += 1
            edge["units"] += trade.units
        else:
            graph.add_edge(trade.payer, trade.payee, contracts=1, units=trade.units)
    return graph


def _internal_share(graph: nx.DiGraph, members: set[str]) -> tuple[float, int]:
    """Share of the members' contracts (either direction) that stay inside the group."""
    internal = total = 0
    for u, v, data in graph.edges(data=True):
        if u in members or v in members:
            total += data["contracts"]
            if u in members and v in members:
                internal += data["contracts"]
    return (internal / total if total else 0.0), internal


def _contracts_between(trades: Iterable[Trade], members: frozenset[str]) -> set[str]:
    return {t.contract_id for t in trades if t.payer in members and t.payee in members}


def circular_flows(trades: Sequence[Trade], params: IntegrityParams) -> list[Finding]:
    graph = _trade_graph(trades)
    strong = nx.DiGraph()
    strong.add_edges_from(
        (u, v) for u, v, d in graph.edges(data=True) if d["contracts"] >= params.cycle_min_contracts
    )
    findings = []
    for component in nx.strongly_connected_components(strong):
        if not 2 <= len(component) <= params.ring_max_size:
            continue
        share, internal = _internal_share(graph, component)
        if share < params.insular_share:
            continue
        members = frozenset(component)
        units = sum(
            d["units"] for u, v, d in graph.edges(data=True) if u in members and v in members
        )
        findings.append(
            Finding(
                kind="circular_flow",
                accounts=members,
                contract_ids=_contracts_between(trades, members),
                detail={
                    "internal_share": round(share, 4),
                    "internal_contracts": internal,
                    "circulated_units": units,
                },
            )
        )
    return findings


def _core(graph: nx.Graph, members: set[str], min_contracts: int) -> set[str]:
    """Drop, until none is left, members with fewer than ``min_contracts`` contracts with the
    rest: community detection pulls one-off outside buyers in, and they must not dilute the
    group's density."""
    core = set(members)
    while True:
        weak = {
            account
            for account in core
            if sum(graph[account][other]["weight"] for other in graph[account] if other in core)
            < min_contracts
        }
        if not weak:
            return core
        core -= weak


def dense_clusters(trades: Sequence[Trade], params: IntegrityParams) -> list[Finding]:
    directed = _trade_graph(trades)
    if directed.number_of_edges() == 0:
        return []
    undirected = nx.Graph()
    for u, v, data in directed.edges(data=True):
        weight = data["contracts"] + (
            undirected[u][v]["weight"] if undirected.has_edge(u, v) else 0
        )
        undirected.add_edge(u, v, weight=weight)
    findings = []
    for found in nx.community.louvain_communities(undirected, weight="weight", seed=0):
        community = _core(undirected, set(found), params.cycle_min_contracts)
        if len(community) < params.cluster_min_size:
            continue
        density = nx.density(undirected.subgraph(community))
        share, internal = _internal_share(directed, community)
        if (
            density < params.cluster_min_density
            or internal < params.cluster_min_contracts
            or share < params.insular_share
        ):
            continue
        both_ways = sum(
            1
            for account in community
            if any(p in community for p in directed.predecessors(account))
            and any(s in community for s in directed.successors(account))
        )
        if both_ways * 2 < len(community):
            continue
        members = frozenset(community)
        findings.append(
            Finding(
                kind="dense_cluster",
                accounts=members,
                contract_ids=_contracts_between(trades, members),
                detail={
                    "density": round(density, 4),
                    "internal_share": round(share, 4),
                    "internal_contracts": internal,
                    "members_buying_and_selling": both_ways,
                },
            )
        )
    return findings


def new_accounts_with_many_agents(
    trades: Sequence[Trade],
    accounts: Iterable[Account],
    *,
    now: datetime,
    params: IntegrityParams,
) -> list[Finding]:
    findings = []
    cutoff = now - timedelta(days=params.new_account_days)
    for account in accounts:
        if account.created_at < cutoff or len(account.agent_ids) < params.new_account_min_agents:
            continue
        involved = {t.contract_id for t in trades if account.id in (t.payer, t.payee)}
        if not involved:
            continue
        findings.append(
            Finding(
                kind="new_account_many_agents",
                accounts=frozenset({account.id}),
                contract_ids=involved,
                detail={
                    "agents": len(account.agent_ids),
                    "account_created_at": account.created_at.isoformat(),
                },
            )
        )
    return findings


def scan(
    trades: Sequence[Trade],
    accounts: Iterable[Account],
    *,
    now: datetime,
    params: IntegrityParams,
) -> list[Finding]:
    findings: list[Finding] = []
    by_accounts: dict[frozenset[str], Finding] = {}
    for finding in [*circular_flows(trades, params), *dense_clusters(trades, params)]:
        # One group caught by both detectors is one suspicion, reviewed once.
        same = by_accounts.get(finding.accounts)
        if same is not None:
            same.contract_ids |= finding.contract_ids
            same.detail = {**same.detail, finding.kind: finding.detail}
            continue
        by_accounts[finding.accounts] = finding
        findings.append(finding)
    findings.extend(new_accounts_with_many_agents(trades, accounts, now=now, params=params))
    return findings


# ---- rater reliability ----


@dataclass(frozen=True)
class RatingSample:
    rater: str
    agent: str
    stars: int


@dataclass(frozen=True)
class RaterReliability:
    weight: float
    compared: int
    mean_deviation: float


def _median_without(ordered: Sequence[float], skip: int) -> float:
    """The median of a sorted list with the element at ``skip`` left out."""
    length = len(ordered) - 1

    def at(position: int) -> float:
        return ordered[position if position < skip else position + 1]

    return (at((length - 1) // 2) + at(length // 2)) / 2


def rater_reliability(
    ratings: Sequence[RatingSample], params: IntegrityParams
) -> dict[str, RaterReliability]:
    """Each rater is compared, agent by agent, with the median of the other raters of that
    agent (each rater counting once per agent, by their mean stars for it), so a rater who
    rates one agent many times cannot outvote the others. A rater's deviation is averaged
    over the agents compared."""
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for rating in ratings:
        entry = sums[(rating.agent, rating.rater)]
        entry[0] += rating.stars
        entry[1] += 1
    by_agent: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for (agent, rater), (total, count) in sums.items():
        by_agent[agent].append((total / count, rater))
    deviations: dict[str, list[float]] = defaultdict(list)
    for means in by_agent.values():
        if len(means) < 3:  # a rater needs at least two others to be compared with
            continue
        means.sort()
        ordered = [mean for mean, _ in means]
        for index, (mean, rater) in enumerate(means):
            deviations[rater].append(abs(mean - _median_without(ordered, index)))
    result = {}
    for rater in sorted({r.rater for r in ratings}):
        compared = deviations.get(rater, [])
        mean_deviation = sum(compared) / len(compared) if compared else 0.0
        weight = 1.0
        if len(compared) >= params.rater_min_compared:
            if mean_deviation >= 1.5 * params.rater_outlier_deviation:
                weight = params.rater_outlier_weight / 2
            elif mean_deviation >= params.rater_outlier_deviation:
                weight = params.rater_outlier_weight
        result[rater] = RaterReliability(
            weight=weight, compared=len(compared), mean_deviation=mean_deviation
        )
    return result
