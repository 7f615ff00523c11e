"""Discovery: how well it finds agents (quality) and how fast it answers (speed, memory).

1. **Quality**: the hand-labelled set in ``bench/discovery_dataset.json`` (agents in ten
   categories; queries with their relevant agents, most of them paraphrases sharing no word
   with their targets). The agents are inserted into a scratch database, indexed with
   ``discovery.service.reindex``, and every query runs through ``discovery.service.search``
   in three modes: lexical only, semantic only and hybrid. recall@5 and nDCG@10 overall, per
   query kind and per category; the accuracy of the automatic category; the worst hybrid
   queries; on PostgreSQL (pgvector) as well, with how far its rankings agree with SQLite's;
   and what other scorings of the stored vectors (facets) would give.
2. **Speed**: 10,000 agents recombined from the labelled ones (their sentences, tags and
   names), embedded with the real encoder and stored with ``discovery.service.store``. The hub
   runs as ``hermes serve`` in a subprocess; 20 concurrent clients (httpx, keep-alive) call
   ``POST /api/v1/agents/discover`` with the query cache warm (repeated queries) and cold
   (every query distinct). p50/p95/p99, throughput and the hub's CPU per request, on SQLite
   (in-process vector index) and PostgreSQL (pgvector HNSW); beside the time to embed one
   query alone. Before the hub starts, the same searches run in this process with every
   statement timed and a cProfile; if the p95 goal is missed, py-spy samples the hub under
   the same load; the first backend's hub runs again with OpenBLAS's own thread count.
3. **Memory**: the in-process vector index at 10,000 and 100,000 agents (matrix bytes,
   tracemalloc, RSS growth); the hub's RSS; on PostgreSQL the table and HNSW index sizes.

    .venv/bin/python bench/discovery.py            # full run, writes bench/results/discovery.json
    .venv/bin/python bench/discovery.py --quick    # smoke run, writes to the temp dir
"""

from __future__ import annotations

import os

# As hermes_hub does on import, but before numpy loads here, so that this process's own
# encoding and searches run with the hub's BLAS setting (an explicit setting wins).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import contextlib
import cProfile
import gc
import hashlib
import json
import math
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import event, insert, select, text

import _harness as h
import hermes_hub.db.registry  # noqa: F401 - every model, so foreign keys resolve
from hermes_hub.db.session import Database, create_engine
from hermes_hub.discovery import service
from hermes_hub.discovery.categories import category_texts, nearest_category
from hermes_hub.discovery.engine import LocalIndex, VectorMatrix, load_encoder
from hermes_hub.discovery.models import PGVECTOR_INDEX, AgentSearchDoc
from hermes_hub.discovery.service import Discovery, Filters, PreparedDocument, Viewer
from hermes_hub.identity.models import Agent
from hermes_hub.kit.time import utcnow
from ledger import configure_logs
from trust import Backend, bench_settings, insert_users, mib, migrated, rss_kib, uncommitted_changes

PHASES = ("quality", "speed", "memory")
MODES: dict[str, tuple[bool, bool]] = {  # name -> (use_lexical, use_semantic)
    "lexical": (True, False),
    "semantic": (False, True),
    "hybrid": (True, True),
}
DATASET = h.BENCH_DIR / "discovery_dataset.json"
CHECKER = h.BENCH_DIR / "check_discovery_dataset.py"
DISCOVER_PATH = "/api/v1/agents/discover"
GOAL_HYBRID_RECALL_AT_5 = 0.9
GOAL_P95_MS = 25.0
GOAL_AGENTS = 10_000
GOAL_CONCURRENCY = 20
RESULT_LIMIT = 10
RECALL_K = 5
NDCG_K = 10
CLIENT_TIMEOUT_S = 60.0
STORE_BATCH = 500
AGENT_INSERT_BATCH = 2_000
# Re-encoded texts compared with the vector cache before it is trusted.
CACHE_CHECK_SAMPLE = 16
CACHE_CHECK_TOLERANCE = 1e-4
IDLE_CPU_SECONDS = 0.05  # the hub counts as idle below this much CPU in IDLE_WINDOW_S
IDLE_WINDOW_S = 1.0
# hermes_hub sets OPENBLAS_NUM_THREADS=1 unless the environment says otherwise; OpenBLAS's own
# default is one thread per core. The variant runs show what that setting is worth.
BLAS_PER_CORE = {"OPENBLAS_NUM_THREADS": str(os.cpu_count() or 1)}
BATCHED_QUERIES = 20  # queries encoded together: what batching concurrent requests would cost
EMBED_ALONE_COMMAND = "embed-alone"  # the helper process timing the encoder
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
# Candidates a search asks the in-process index for (timed at each size in the memory phase).
TOP_K = 200
WARM_PREFIXES = 3  # ways of asking per labelled query in the warm set
# Ways people start a request; combined with the labelled queries they give distinct,
# realistic queries for the load (the lexical terms they add are stopwords or near it).
QUERY_PREFIXES = (
    "",
    "I need ",
    "looking for an agent to ",
    "can you recommend something that will ",
    "who can ",
    "please find me a bot to ",
    "best agent to ",
    "any service that can ",
)
NAME_SUFFIXES = (
    "Pro",
    "Lite",
    "Plus",
    "Studio",
    "Labs",
    "AI",
    "Bot",
    "Desk",
    "Works",
    "Assist",
    "Cloud",
    "Express",
    "One",
    "Prime",
    "Go",
    "Hub",
    "Kit",
    "Flow",
    "Mate",
    "Suite",
)


# ---------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="a smoke run: 1,000 agents, short loads")
    add("--backends", type=h.backends_arg, default=["sqlite", "postgres"], help="[sqlite,postgres]")
    add("--phases", type=phases_arg, default=list(PHASES), help="[quality,speed,memory]")
    add("--dataset", type=Path, default=DATASET, help="[bench/discovery_dataset.json]")
    add("--agents", type=int, default=GOAL_AGENTS, help="agents served in the speed phase [10000]")
    add(
        "--memory-agents",
        type=h.int_list,
        default=[10_000, 100_000],
        help="sizes of the in-process index measured, comma-separated [10000,100000]",
    )
    add("--concurrency", type=int, default=GOAL_CONCURRENCY, help="concurrent clients [20]")
    add("--duration", type=float, default=20.0, help="seconds per measured load run [20]")
    add("--warmup", type=float, default=3.0, help="untimed seconds before each load run [3]")
    add(
        "--single-client-duration",
        type=float,
        default=8.0,
        help="seconds of the one-client runs (service time without queueing); 0 skips [8]",
    )
    add(
        "--viewer",
        choices=("user", "anonymous"),
        default="user",
        help="who searches: a signed-in user (bearer token) or anonymous [user]",
    )
    add("--embed-samples", type=int, default=200, help="single-query encodes timed [200]")
    add(
        "--profile-seconds",
        type=float,
        default=10.0,
        help="py-spy sampling of the hub per cache state when the p95 goal is missed; 0 skips [10]",
    )
    add(
        "--vector-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "hermes_bench_discovery_vectors.npz",
        help="file keeping the encoder's vectors of the generated texts between runs; checked "
        "against fresh encodes before use [<tmp>/hermes_bench_discovery_vectors.npz]",
    )
    add("--no-vector-cache", action="store_true", help="encode every generated text afresh")
    add(
        "--no-blas-variant",
        dest="blas_variant",
        action="store_false",
        help=f"skip the second hub run (first backend) with {BLAS_PER_CORE}",
    )
    add("--worst", type=int, default=12, help="worst hybrid queries listed [12]")
    add("--seed", type=int, default=6, help="random seed of the generated agents and queries [6]")
    add(
        "--output",
        type=Path,
        default=h.RESULTS_DIR / "discovery.json",
        help="[bench/results/discovery.json]",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.agents = 1_000
        args.memory_agents = [1_000, 10_000]
        args.duration, args.warmup, args.single_client_duration = 3.0, 1.0, 2.0
        args.embed_samples, args.profile_seconds, args.worst = 30, 3.0, 5
        if args.output == h.RESULTS_DIR / "discovery.json":
            # A smoke run must not overwrite the real results.
            args.output = Path(tempfile.gettempdir()) / "hermes_bench_discovery_quick.json"
    if args.agents < 1 or args.concurrency < 1 or args.duration <= 0:
        parser.error("agents, concurrency and duration must be positive")
    return args


def phases_arg(value: str) -> list[str]:
    chosen = [p.strip() for p in value.split(",") if p.strip()]
    if not chosen or set(chosen) - set(PHASES):
        raise argparse.ArgumentTypeError(f"phases are {','.join(PHASES)}, not {value!r}")
    return chosen


# ---------------------------------------------------------------- small helpers


def mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def sentences(description: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(description) if s.strip()]


def proc_rss_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else None


# ---------------------------------------------------------------- the labelled set


@dataclass(frozen=True)
class LabelledSet:
    categories: list[str]
    agents: list[dict[str, Any]]
    queries: list[dict[str, Any]]

    @property
    def by_key(self) -> dict[str, dict[str, Any]]:
        return {agent["key"]: agent for agent in self.agents}

    def query_category(self, query: dict[str, Any]) -> str:
        """The category most of the query's relevant agents belong to."""
        by_key = self.by_key
        counts = Counter(by_key[key]["category"] for key in query["relevant"])
        return counts.most_common(1)[0][0]


def source_digest() -> str:
    """A hash of the discovery package's source: equal at start and end means the code did
    not change while the benchmark ran (the tree is shared with people editing it)."""
    digest = hashlib.sha256()
    for path in sorted((h.REPO_ROOT / "src" / "hermes_hub" / "discovery").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load_dataset(path: Path) -> LabelledSet:
    data = json.loads(path.read_text())
    return LabelledSet(list(data["categories"]), list(data["agents"]), list(data["queries"]))


def check_dataset(path: Path) -> dict[str, Any]:
    """The dataset checker's verdict (recorded, not enforced: the figures say what they say)."""
    done = subprocess.run(  # noqa: S603 - our own script, no shell
        [sys.executable, str(CHECKER), str(path)],
        capture_output=True,
        text=True,
        cwd=h.REPO_ROOT,
        timeout=120,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    return {"ok": done.returncode == 0, "summary": lines[-6:] if lines else [], "path": str(path)}


# ---------------------------------------------------------------- databases and engines


@contextlib.asynccontextmanager
async def engine_for(backend: Backend, workdir: Path) -> AsyncIterator[tuple[Database, Discovery]]:
    """A Database and a started Discovery engine over the backend, as the hub builds them."""
    settings = bench_settings(backend, workdir)
    database = Database.from_engine(create_engine(settings))
    discovery = Discovery(database, settings)
    try:
        await discovery.start()
        yield database, discovery
    finally:
        await database.dispose()


def agent_row(
    agent_id: uuid.UUID, owner_id: uuid.UUID, agent: dict[str, Any], now: Any
) -> dict[str, Any]:
    return {
        "id": agent_id,
        "owner_id": owner_id,
        "name": agent["name"],
        "description": agent["description"],
        "public_key": uuid.uuid4().hex,
        "capabilities": list(agent["capabilities"]),
        "metadata": {},
        "is_public": True,
        "status": "active",
        "created_at": now,
        "updated_at": now,
    }


async def insert_agent_rows(
    database: Database, owners: Sequence[uuid.UUID], agents: Sequence[dict[str, Any]]
) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in agents]
    now = utcnow()
    rows = [
        agent_row(agent_id, owners[i % len(owners)], agent, now)
        for i, (agent_id, agent) in enumerate(zip(ids, agents, strict=True))
    ]
    async with database.writer() as session:
        for start in range(0, len(rows), AGENT_INSERT_BATCH):
            await session.execute(insert(Agent), rows[start : start + AGENT_INSERT_BATCH])
        await session.commit()
    return ids


# ---------------------------------------------------------------- quality


def recall_at(ranked: Sequence[str], relevant: set[str], k: int = RECALL_K) -> float:
    return len(set(ranked[:k]) & relevant) / min(len(relevant), k)


def ndcg_at(ranked: Sequence[str], relevant: set[str], k: int = NDCG_K) -> float:
    gained = sum(1 / math.log2(rank + 2) for rank, key in enumerate(ranked[:k]) if key in relevant)
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return gained / ideal


def reciprocal_rank(ranked: Sequence[str], relevant: set[str], k: int = NDCG_K) -> float:
    for rank, key in enumerate(ranked[:k]):
        if key in relevant:
            return 1 / (rank + 1)
    return 0.0


def scores_of(rankings: dict[str, list[str]], queries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean recall@5, nDCG@10 and MRR@10 of some queries' rankings."""
    recalls, ndcgs, rrs = [], [], []
    for query in queries:
        ranked, relevant = rankings[query["id"]], set(query["relevant"])
        recalls.append(recall_at(ranked, relevant))
        ndcgs.append(ndcg_at(ranked, relevant))
        rrs.append(reciprocal_rank(ranked, relevant))
    return {
        "queries": len(queries),
        "recall_at_5": mean(recalls),
        "ndcg_at_10": mean(ndcgs),
        "mrr_at_10": mean(rrs),
    }


def metrics(labelled: LabelledSet, rankings: dict[str, list[str]]) -> dict[str, Any]:
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for query in labelled.queries:
        by_kind[query["kind"]].append(query)
        by_category[labelled.query_category(query)].append(query)
    return {
        "overall": scores_of(rankings, labelled.queries),
        "by_kind": {kind: scores_of(rankings, qs) for kind, qs in sorted(by_kind.items())},
        "by_category": {
            category: scores_of(rankings, by_category[category])
            for category in labelled.categories
            if by_category[category]
        },
    }


async def rank_all(
    database: Database,
    discovery: Discovery,
    labelled: LabelledSet,
    key_of: dict[uuid.UUID, str],
) -> tuple[dict[str, dict[str, list[str]]], dict[str, Any]]:
    """Every query in every mode: the ranked keys, and the in-process search times."""
    rankings: dict[str, dict[str, list[str]]] = {mode: {} for mode in MODES}
    timings: dict[str, list[float]] = {mode: [] for mode in MODES}
    # One untimed pass fills the query-embedding cache, so the times are of search alone.
    for query in labelled.queries:
        async with database.read_sessions() as session:
            await search_keys(session, discovery, query["query"], MODES["hybrid"], key_of)
    for mode, switches in MODES.items():
        for query in labelled.queries:
            async with database.read_sessions() as session:
                started = time.perf_counter()
                keys = await search_keys(session, discovery, query["query"], switches, key_of)
                timings[mode].append(time.perf_counter() - started)
            rankings[mode][query["id"]] = keys
    return rankings, {mode: h.dist_ms(values) for mode, values in timings.items()}


async def search_keys(
    session: Any,
    discovery: Discovery,
    query: str,
    switches: tuple[bool, bool],
    key_of: dict[uuid.UUID, str],
) -> list[str]:
    use_lexical, use_semantic = switches
    result = await service.search(
        session,
        discovery,
        viewer=Viewer(),
        query=query,
        filters=Filters(),
        limit=RESULT_LIMIT,
        use_lexical=use_lexical,
        use_semantic=use_semantic,
    )
    return [key_of[hit.agent.id] for hit in result.hits]


async def auto_categories(database: Database, key_of: dict[uuid.UUID, str]) -> dict[str, str]:
    async with database.read_sessions() as session:
        rows = await session.execute(select(AgentSearchDoc.agent_id, AgentSearchDoc.auto_category))
        return {key_of[agent_id]: str(category) for agent_id, category in rows}


def category_accuracy(labelled: LabelledSet, assigned: dict[str, str]) -> dict[str, Any]:
    per_category: dict[str, list[bool]] = defaultdict(list)
    confusions: Counter[tuple[str, str]] = Counter()
    for agent in labelled.agents:
        got = assigned.get(agent["key"])
        per_category[agent["category"]].append(got == agent["category"])
        if got != agent["category"]:
            confusions[(agent["category"], str(got))] += 1
    every = [ok for oks in per_category.values() for ok in oks]
    return {
        "accuracy": mean([float(ok) for ok in every]),
        "agents": len(every),
        "by_category": {
            category: mean([float(ok) for ok in per_category[category]])
            for category in labelled.categories
        },
        "most_common_confusions": [
            {"labelled": want, "assigned": got, "agents": count}
            for (want, got), count in confusions.most_common(10)
        ],
    }


def worst_queries(
    labelled: LabelledSet, rankings: dict[str, dict[str, list[str]]], count: int
) -> list[dict[str, Any]]:
    by_key = labelled.by_key

    def describe_key(key: str) -> str:
        agent = by_key[key]
        return f"{agent['name']} ({key})"

    rows = []
    for query in labelled.queries:
        relevant = set(query["relevant"])
        hybrid = rankings["hybrid"][query["id"]]
        rows.append(
            {
                "id": query["id"],
                "kind": query["kind"],
                "query": query["query"],
                "recall_at_5": {
                    mode: round(recall_at(rankings[mode][query["id"]], relevant), 3)
                    for mode in MODES
                },
                "ndcg_at_10": round(ndcg_at(hybrid, relevant), 3),
                "relevant": [describe_key(key) for key in query["relevant"]],
                "hybrid_top_5": [
                    describe_key(key) + (" *" if key in relevant else "") for key in hybrid[:5]
                ],
                "relevant_ranks_in_hybrid_top_10": [
                    rank + 1 for rank, key in enumerate(hybrid) if key in relevant
                ],
            }
        )
    rows.sort(key=lambda row: (row["recall_at_5"]["hybrid"], row["ndcg_at_10"], row["id"]))
    return rows[:count]


async def quality_backend(
    backend: Backend, workdir: Path, labelled: LabelledSet, worst: int
) -> tuple[dict[str, Any], dict[str, dict[str, list[str]]]]:
    async with engine_for(backend, workdir) as (database, discovery):
        owners = await insert_users(database, 1, f"quality-{backend.name}")
        ids = await insert_agent_rows(database, owners, labelled.agents)
        key_of = {
            agent_id: agent["key"] for agent_id, agent in zip(ids, labelled.agents, strict=True)
        }
        started = time.perf_counter()
        written = await service.reindex(database, discovery)
        index_seconds = time.perf_counter() - started
        rankings, timings = await rank_all(database, discovery, labelled, key_of)
        assigned = await auto_categories(database, key_of)
        what_if = await vector_what_if(database, discovery, labelled, key_of)
        status = discovery.status().as_dict()
    result = {
        "semantic_mode": status["mode"],
        "model": status["model"],
        "agents_indexed": written,
        "reindex_seconds": round(index_seconds, 2),
        "modes": {mode: metrics(labelled, rankings[mode]) for mode in MODES},
        "search_in_process_ms": timings,
        "auto_category": category_accuracy(labelled, assigned),
        "worst_hybrid_queries": worst_queries(labelled, rankings, worst),
        "semantic_what_if": what_if,
    }
    return result, rankings


async def vector_what_if(
    database: Database,
    discovery: Discovery,
    labelled: LabelledSet,
    key_of: dict[uuid.UUID, str],
) -> dict[str, Any] | None:
    """Rankings by the stored vectors alone, scored differently: what the semantic side
    could do with what the index already holds (every agent ranked, no filters or fusion).

    ``document`` is the cosine to the whole document (the semantic mode's signal);
    ``best_facet`` the best cosine to one of its facets (tags, skills, sentences), which
    the search only uses to explain a match today; the others mix the two.
    """
    embedder = discovery.embedder
    if embedder is None:
        return None
    async with database.read_sessions() as session:
        rows = (
            await session.execute(
                select(
                    AgentSearchDoc.agent_id, AgentSearchDoc.embedding, AgentSearchDoc.facet_vectors
                )
            )
        ).all()
    keys = [key_of[agent_id] for agent_id, _, _ in rows]
    dimension = embedder.dimension
    documents = np.stack([np.frombuffer(raw, dtype="<f4") for _, raw, _ in rows])
    facets = [
        np.frombuffer(raw, dtype="<f4").reshape(-1, dimension)
        if raw
        else np.zeros((0, dimension), np.float32)
        for _, _, raw in rows
    ]
    variants: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for query in labelled.queries:
        vector = await embedder.query(query["query"])
        document = documents @ vector
        best_facet = np.array(
            [float(np.max(f @ vector)) if f.size else -1.0 for f in facets], dtype=np.float32
        )
        scored = {
            "document": document,
            "best_facet": best_facet,
            "max_of_both": np.maximum(document, best_facet),
            "mean_of_both": (document + best_facet) / 2,
        }
        for name, scores in scored.items():
            order = np.argsort(-scores, kind="stable")[:NDCG_K]
            variants[name][query["id"]] = [keys[int(i)] for i in order]
    return {
        "what": " ".join((vector_what_if.__doc__ or "").split()),
        "variants": {
            name: {
                "overall": scores_of(rankings, labelled.queries),
                "paraphrase": scores_of(
                    rankings, [q for q in labelled.queries if q["kind"] == "paraphrase"]
                ),
            }
            for name, rankings in variants.items()
        },
    }


def agreement(
    first: dict[str, dict[str, list[str]]], second: dict[str, dict[str, list[str]]]
) -> dict[str, Any]:
    """How far two backends' rankings of the same queries agree, per mode."""
    found: dict[str, Any] = {}
    for mode in MODES:
        ids = sorted(set(first[mode]) & set(second[mode]))
        same_list = same_top5 = 0
        overlaps = []
        differing = []
        for query_id in ids:
            a, b = first[mode][query_id], second[mode][query_id]
            same_list += a == b
            same_top5 += set(a[:5]) == set(b[:5])
            # Two empty answers agree completely.
            overlaps.append(len(set(a) & set(b)) / max(len(a), len(b)) if a or b else 1.0)
            if a != b and len(differing) < 5:
                differing.append({"id": query_id, "sqlite": a, "postgres": b})
        found[mode] = {
            "queries": len(ids),
            "identical_top_10": same_list,
            "same_top_5_set": same_top5,
            "mean_top_10_overlap": mean(overlaps),
            "first_differences": differing,
        }
    return found


def quality_phase(
    backends: Sequence[str], workdir: Path, labelled: LabelledSet, worst: int
) -> dict[str, Any]:
    results: dict[str, Any] = {"backends": {}, "skipped": {}}
    rankings: dict[str, dict[str, dict[str, list[str]]]] = {}
    for name in backends:
        with migrated(name, workdir, f"quality-{name}") as backend:
            if backend is None:
                results["skipped"][name] = "PostgreSQL unreachable"
                continue
            print(
                f"{name}: quality phase ({len(labelled.agents)} agents, "
                f"{len(labelled.queries)} queries)"
            )
            data, rankings[name] = asyncio.run(quality_backend(backend, workdir, labelled, worst))
            data["database"] = backend.info
            results["backends"][name] = data
            for mode in MODES:
                overall = data["modes"][mode]["overall"]
                print(
                    f"  {mode:8s} recall@5 {overall['recall_at_5']:.3f}  "
                    f"nDCG@10 {overall['ndcg_at_10']:.3f}"
                )
    if "sqlite" in rankings and "postgres" in rankings:
        results["sqlite_vs_postgres"] = agreement(rankings["sqlite"], rankings["postgres"])
    return results


# ---------------------------------------------------------------- generated agents


def synthesize(labelled: LabelledSet, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` agents: the labelled ones first, then recombinations of them.

    A variant of a labelled agent takes one or two sentences from agents of the same topic
    (sometimes one more from the same category), 2 to 5 tags from the topic's tags (sometimes
    one from the category), and a varied name; so the vocabulary, its frequencies and the
    document lengths stay those of hand-written agents.
    """
    by_topic: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for agent in labelled.agents:
        by_topic[(agent["category"], agent["topic"])].append(agent)
        by_category[agent["category"]].append(agent)
    generated = [dict(agent) for agent in labelled.agents[:count]]
    index = len(generated)
    while len(generated) < count:
        base = labelled.agents[index % len(labelled.agents)]
        index += 1
        mates = by_topic[(base["category"], base["topic"])]
        kin = by_category[base["category"]]
        parts = [rng.choice(sentences(rng.choice(mates)["description"]))]
        if rng.random() < 0.5:
            parts.append(rng.choice(sentences(rng.choice(mates)["description"])))
        if rng.random() < 0.25:
            parts.append(rng.choice(sentences(rng.choice(kin)["description"])))
        tag_pool = sorted({tag for mate in mates for tag in mate["capabilities"]})
        tags = rng.sample(tag_pool, rng.randint(min(2, len(tag_pool)), min(5, len(tag_pool))))
        if rng.random() < 0.2:
            extra = rng.choice(rng.choice(kin)["capabilities"])
            if extra not in tags:
                tags.append(extra)
        generated.append(
            {
                "key": f"{base['key']}~{index}",
                "name": variant_name(base, kin, rng),
                "description": " ".join(dict.fromkeys(parts)),
                "capabilities": tags,
                "category": base["category"],
                "topic": base["topic"],
            }
        )
    return generated


def variant_name(base: dict[str, Any], kin: Sequence[dict[str, Any]], rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.4:
        name = f"{base['name']} {rng.choice(NAME_SUFFIXES)}"
    elif roll < 0.7:
        other = rng.choice(kin)["name"].split()[-1]
        name = f"{base['name'].split()[0]} {other}"
    else:
        name = f"{base['name']} {rng.randint(2, 99)}"
    return name[:100]


def load_queries(labelled: LabelledSet) -> list[str]:
    """Distinct realistic queries: the labelled ones with each way of asking."""
    found = [
        prefix + query["query"]
        for query in labelled.queries
        for prefix in QUERY_PREFIXES[:WARM_PREFIXES]
    ]
    return list(dict.fromkeys(found))


def cold_queries(labelled: LabelledSet, rng: random.Random) -> Iterator[str]:
    """Queries never seen before: a labelled query, a way of asking and a topic word.

    The added word comes from the agents' own vocabulary, so it also changes the lexical
    side of the search as a real new query would.
    """
    vocabulary = sorted(
        {
            word
            for agent in labelled.agents
            for word in re.findall(r"[a-z]{5,}", agent["description"].lower())
        }
    )
    seen: set[str] = set()
    bases = [query["query"] for query in labelled.queries]
    while True:
        words = " ".join(rng.sample(vocabulary, 2))
        candidate = f"{rng.choice(QUERY_PREFIXES)}{rng.choice(bases)}, {words}"
        key = " ".join(candidate.casefold().split())
        if key not in seen:
            seen.add(key)
            yield candidate


# ---------------------------------------------------------------- vectors of generated agents


@dataclass
class Prepared:
    """The documents of the generated agents, with the vectors ``store`` writes."""

    documents: list[PreparedDocument]
    texts_embedded: int
    distinct_facet_labels: int
    embed_seconds: float
    texts_per_second: float | None
    cache: dict[str, Any]


class VectorCache:
    """The encoder's output for texts seen in earlier runs, keyed by the text's hash."""

    def __init__(self, path: Path | None, model: str) -> None:
        self.path = path
        self.model = model
        self.vectors: dict[str, np.ndarray[Any, Any]] = {}
        self.status = "off" if path is None else "empty"
        if path is not None and path.exists():
            with contextlib.suppress(OSError, ValueError, KeyError), np.load(path) as saved:
                if str(saved["model"]) == model:
                    keys = [str(k) for k in saved["keys"]]
                    self.vectors = dict(zip(keys, saved["vectors"], strict=True))
                    self.status = "loaded"

    @staticmethod
    def key(text_value: str) -> str:
        return hashlib.sha256(text_value.encode("utf-8")).hexdigest()

    def verify(self, encoder: Any, texts: Sequence[str], rng: random.Random) -> float | None:
        """Re-encode a sample of cached texts; drop the cache if any vector moved."""
        cached = [t for t in texts if self.key(t) in self.vectors]
        if not cached:
            return None
        sample = rng.sample(cached, min(CACHE_CHECK_SAMPLE, len(cached)))
        fresh = encoder.encode(sample)
        stored = np.stack([self.vectors[self.key(t)] for t in sample])
        drift = float(np.max(np.abs(fresh - stored)))
        if drift > CACHE_CHECK_TOLERANCE:
            self.vectors.clear()
            self.status = f"discarded (max drift {drift:.2e})"
        return drift

    def save(self) -> None:
        if self.path is None or not self.vectors:
            return
        keys = sorted(self.vectors)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("wb") as out:
            np.savez(
                out,
                model=np.array(self.model),
                keys=np.array(keys),
                vectors=np.stack([self.vectors[k] for k in keys]).astype(np.float32),
            )


def prepare_generated(
    generated: Sequence[dict[str, Any]], cache_path: Path | None, rng: random.Random
) -> Prepared:
    """Documents and facets exactly as ``service.prepare`` builds them; vectors from the
    encoder, each distinct text (document or facet label) encoded once."""
    encoder, reason = load_encoder(True, None)
    if encoder is None:
        raise SystemExit(f"the speed phase needs the embedding model: {reason}")
    documents, facets = [], []
    for agent in generated:
        orm = Agent(
            name=agent["name"],
            description=agent["description"],
            capabilities=agent["capabilities"],
            agent_metadata={},
        )
        document = service._document_of(orm)
        documents.append(document)
        facets.append(service._facets(orm, document))
    labels = list(dict.fromkeys(label for row in facets for label in row))
    texts = list(dict.fromkeys([d.text for d in documents] + labels))
    cache = VectorCache(cache_path, encoder.model_name)
    drift = cache.verify(encoder, texts, rng)
    missing = [t for t in texts if cache.key(t) not in cache.vectors]
    started = time.perf_counter()
    for start in range(0, len(missing), 512):
        chunk = missing[start : start + 512]
        for text_value, vector in zip(chunk, encoder.encode(chunk), strict=True):
            cache.vectors[cache.key(text_value)] = vector
        done = min(start + 512, len(missing))
        print(f"  embedded {done}/{len(missing)} texts ({time.perf_counter() - started:.0f} s)")
    embed_seconds = time.perf_counter() - started
    cache.save()
    category_vectors = encoder.encode(category_texts())
    prepared = []
    for document, labels_of in zip(documents, facets, strict=True):
        embedding = cache.vectors[cache.key(document.text)]
        facet_vectors = (
            np.stack([cache.vectors[cache.key(label)] for label in labels_of])
            if labels_of
            else np.zeros((0, encoder.dimension), dtype=np.float32)
        )
        prepared.append(
            PreparedDocument(
                document=document,
                model=encoder.model_name,
                facets=labels_of,
                embedding=embedding,
                facet_vectors=facet_vectors,
                category=nearest_category(embedding, category_vectors),
            )
        )
    return Prepared(
        documents=prepared,
        texts_embedded=len(missing),
        distinct_facet_labels=len(labels),
        embed_seconds=round(embed_seconds, 1),
        texts_per_second=round(len(missing) / embed_seconds, 1) if missing else None,
        cache={
            "path": str(cache_path) if cache_path else None,
            "status": cache.status,
            "texts": len(texts),
            "from_cache": len(texts) - len(missing),
            "encoded_now": len(missing),
            "check_max_abs_drift": drift,
        },
    )


def time_query_embedding(dataset: Path, samples: int, seed: int) -> dict[str, Any]:
    """``encoder.encode([q])`` alone, on distinct queries, in this (otherwise idle) process:
    wall time and this process's CPU time per call (OpenBLAS threads included)."""
    encoder, _ = load_encoder(True, None)
    assert encoder is not None
    queries = cold_queries(load_dataset(dataset), random.Random(seed))
    for _ in range(5):
        encoder.encode([next(queries)])
    timings, cpu = [], []
    for _ in range(samples):
        query = next(queries)
        cpu_before = time.process_time()
        started = time.perf_counter()
        encoder.encode([query])
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_before)
    batched = []
    for _ in range(max(1, samples // BATCHED_QUERIES)):
        batch = [next(queries) for _ in range(BATCHED_QUERIES)]
        started = time.perf_counter()
        encoder.encode(batch)
        batched.append((time.perf_counter() - started) / BATCHED_QUERIES)
    return h.dist_ms(timings) | {
        "cpu_ms_mean": round(1000 * statistics.fmean(cpu), 3),
        f"batched_{BATCHED_QUERIES}_ms_per_query_median": round(
            1000 * statistics.median(batched), 3
        ),
        "what": "encoder.encode([query]) of distinct load queries; batched: encode() of "
        f"{BATCHED_QUERIES} distinct queries at once, divided by {BATCHED_QUERIES}",
    }


def query_embedding_variants(dataset: Path, samples: int, seed: int) -> dict[str, Any]:
    """The same timing in fresh processes, with the hub's BLAS setting (one thread) and with
    OpenBLAS's own default (one per core)."""
    found: dict[str, Any] = {}
    variants = (("hub_default", {}), ("openblas_thread_per_core", BLAS_PER_CORE))
    for name, extra in variants:
        done = subprocess.run(  # noqa: S603 - this script, no shell
            [
                sys.executable,
                str(Path(__file__).resolve()),
                EMBED_ALONE_COMMAND,
                str(dataset),
                str(samples),
                str(seed),
            ],
            env=os.environ | extra,
            capture_output=True,
            text=True,
            cwd=h.REPO_ROOT,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            found[name] = {"error": done.stderr[-500:]}
            continue
        found[name] = json.loads(done.stdout.strip().splitlines()[-1]) | {"environment": extra}
    return found


# ---------------------------------------------------------------- speed: building the index


async def build_index(
    backend: Backend,
    workdir: Path,
    generated: Sequence[dict[str, Any]],
    prepared: Prepared,
    queries: Sequence[str],
) -> dict[str, Any]:
    """Agent rows, then every search document written by ``service.store`` (batched); then
    searches in this process, with each statement timed."""
    async with engine_for(backend, workdir) as (database, discovery):
        owners = await insert_users(database, 100, f"speed-{backend.name}")
        started = time.perf_counter()
        ids = await insert_agent_rows(database, owners, generated)
        insert_seconds = time.perf_counter() - started
        started = time.perf_counter()
        pairs = list(zip(ids, prepared.documents, strict=True))
        for start in range(0, len(pairs), STORE_BATCH):
            async with database.writer() as session:
                for agent_id, document in pairs[start : start + STORE_BATCH]:
                    await service.store(session, discovery, agent_id, document, None)
                await session.commit()
        store_seconds = time.perf_counter() - started
        found: dict[str, Any] = {
            "agents": len(ids),
            "writer_mode": discovery.mode.value,
            "agent_rows_seconds": round(insert_seconds, 2),
            "store_seconds": round(store_seconds, 2),
            "store_agents_per_s": round(len(ids) / store_seconds, 1),
        }
        if backend.name == "postgres":
            async with database.engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(text("VACUUM ANALYZE"))
            found["sizes"] = await postgres_sizes(database)
        else:
            found["matrix_from_database"] = await matrix_from_database(database)
            found["sqlite_file_mib"] = round(backend.sqlite_path.stat().st_size / 2**20, 1)
        found["in_process_search"] = await searches_in_process(database, discovery, queries, 2)
        search = found["in_process_search"]["search"]
        print(f"  in-process hybrid search p50 {search['p50_ms']} ms, p95 {search['p95_ms']} ms")
    return found


async def postgres_sizes(database: Database) -> dict[str, Any]:
    queries = {
        "agent_search_docs_total_mib": "pg_total_relation_size('agent_search_docs')",
        "agent_search_docs_heap_mib": "pg_relation_size('agent_search_docs')",
        "agent_search_docs_toast_mib": (
            "coalesce(pg_total_relation_size(nullif((SELECT reltoastrelid FROM pg_class "
            "WHERE relname = 'agent_search_docs'), 0)), 0)"
        ),
        "hnsw_index_mib": f"pg_relation_size('{PGVECTOR_INDEX}')",
        "agent_search_terms_total_mib": "pg_total_relation_size('agent_search_terms')",
        "agents_total_mib": "pg_total_relation_size('agents')",
    }
    found: dict[str, Any] = {}
    async with database.read_sessions() as session:
        for name, expression in queries.items():
            value = await session.scalar(text(f"SELECT {expression}"))
            found[name] = round(int(value or 0) / 2**20, 2)
        found["agent_search_terms_rows"] = await session.scalar(
            text("SELECT count(*) FROM agent_search_terms")
        )
    return found


# What each statement of a search is, from its SQL; the first match wins.
STATEMENT_KINDS: tuple[tuple[str, str], ...] = (
    (r"SET LOCAL", "pgvector: SET LOCAL hnsw options"),
    (r"<=>.*ORDER BY", "pgvector: HNSW top-k"),
    (r"<=>", "pgvector: similarities of lexical-only candidates"),
    (r"agent_search_docs\.revision >", "in-process index: refresh (newer rows)"),
    (r"agent_search_docs\.facet_vectors", "hits: the best agents' rows and facets"),
    (r"FROM agents.*trust_scores", "candidates: filters, trust and category of the candidates"),
    (r"^\s*(BEGIN|COMMIT|ROLLBACK)", "BEGIN / COMMIT / ROLLBACK"),
)


def statement_kind(statement: str) -> str:
    flat = " ".join(statement.split())
    for pattern, kind in STATEMENT_KINDS:
        if re.search(pattern, flat, re.IGNORECASE):
            return kind
    return "other: " + flat[:80]


async def searches_in_process(
    database: Database, discovery: Discovery, queries: Sequence[str], repeats: int
) -> dict[str, Any]:
    """Hybrid searches by a signed-in user in this process, one at a time, with the query
    embeddings cached: the search alone (no HTTP, no queueing) and its statements' times."""
    spent: dict[str, list[float]] = defaultdict(list)
    started_at: list[float] = []

    def before(*_: Any) -> None:
        started_at.append(time.perf_counter())

    def after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if started_at:
            spent[statement_kind(statement)].append(time.perf_counter() - started_at.pop())

    viewer = Viewer(user_id=uuid.uuid4())
    for query in queries:  # fills the embedding cache, untimed
        async with database.read_sessions() as session:
            await service.search(
                session, discovery, viewer=viewer, query=query, filters=Filters(), limit=10
            )
    sync_engine = database.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    timings = []
    try:
        for _ in range(repeats):
            for query in queries:
                began = time.perf_counter()
                async with database.read_sessions() as session:
                    await service.search(
                        session, discovery, viewer=viewer, query=query, filters=Filters(), limit=10
                    )
                timings.append(time.perf_counter() - began)
    finally:
        event.remove(sync_engine, "before_cursor_execute", before)
        event.remove(sync_engine, "after_cursor_execute", after)
    profile = await profile_searches(database, discovery, viewer, queries)
    searches = len(timings)
    total_ms = 1000 * sum(timings)
    statements = {
        kind: {
            "per_search": round(len(values) / searches, 2),
            "ms_per_search": round(1000 * sum(values) / searches, 3),
            "share_of_search": round(1000 * sum(values) / total_ms, 3),
            "p95_ms": h.percentile_ms([1000 * v for v in values], 95),
        }
        for kind, values in sorted(spent.items(), key=lambda item: -sum(item[1]))
    }
    inside = sum(sum(values) for values in spent.values())
    return {
        "search": h.dist_ms(timings),
        "statements": statements,
        "python_outside_statements_ms_per_search": round(
            1000 * (sum(timings) - inside) / searches, 3
        ),
        "cprofile": profile,
        "what": "service.search (hybrid, Viewer(user_id=...), limit 10) sequentially in the "
        "benchmark's process, its own read session per search, query embeddings cached; "
        "statement times are inside the driver (cursor execute events)",
    }


async def profile_searches(
    database: Database, discovery: Discovery, viewer: Viewer, queries: Sequence[str]
) -> dict[str, Any]:
    """cProfile of one more pass over the queries (the event loop's thread only: time in the
    database driver's thread shows up as the loop waiting)."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        for query in queries:
            async with database.read_sessions() as session:
                await service.search(
                    session, discovery, viewer=viewer, query=query, filters=Filters(), limit=10
                )
    finally:
        profiler.disable()
    stats: Any = pstats.Stats(profiler)
    searches = len(queries)
    rows = [
        (function, short_path(path), calls, own, cumulative)
        for (path, _line, function), (_cc, calls, own, cumulative, _callers) in stats.stats.items()
    ]

    def listed(order: int, keep: Callable[[str], bool], top: int) -> list[dict[str, Any]]:
        chosen = sorted((row for row in rows if keep(row[1])), key=lambda row: -row[order])
        return [
            {
                "function": f"{function} ({path})",
                "calls_per_search": round(calls / searches, 1),
                "own_ms_per_search": round(1000 * own / searches, 3),
                "cumulative_ms_per_search": round(1000 * cumulative / searches, 3),
            }
            for function, path, calls, own, cumulative in chosen[:top]
        ]

    return {
        "searches": searches,
        "top_own_time": listed(3, lambda path: True, 20),
        "hub_functions_cumulative": listed(4, lambda path: "hermes_hub" in path, 20),
        "note": "profiled, so slower than unprofiled; compare shares, not ms",
    }


async def matrix_from_database(database: Database) -> dict[str, Any]:
    """What loading the in-process index from the database costs (as the hub's start does)."""
    gc.collect()
    rss_before = rss_kib("VmRSS")
    tracemalloc.start()
    started = time.perf_counter()
    index = LocalIndex(matrix=VectorMatrix(384))
    async with database.read_sessions() as session:
        await index.refresh(session, force=True)
    seconds = time.perf_counter() - started
    matrix = index.matrix
    assert matrix is not None
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = rss_kib("VmRSS")
    result = {
        "vectors": len(matrix),
        "load_seconds": round(seconds, 3),
        "matrix_mib": round(matrix.nbytes / 2**20, 2),
        "documents_with_terms": len(index.terms),
        "tracemalloc_retained_mib": round(current / 2**20, 2),
        "tracemalloc_peak_mib": round(peak / 2**20, 2),
        "rss_growth_mib": mib((rss_after or 0) - (rss_before or 0)),
    }
    del matrix, index
    return result


# ---------------------------------------------------------------- speed: load through HTTP


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    hits: list[int] = field(default_factory=list)


async def drive(
    base_url: str,
    headers: dict[str, str],
    next_query: Callable[[], str],
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    server_pid: int,
) -> dict[str, Any]:
    """``concurrency`` closed-loop clients for ``warmup`` + ``duration`` seconds."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    tally = Tally()
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=CLIENT_TIMEOUT_S
    ) as client:
        measuring = False
        deadline = time.perf_counter() + warmup

        async def worker() -> None:
            while time.perf_counter() < deadline:
                body = {"query": next_query(), "limit": RESULT_LIMIT}
                started = time.perf_counter()
                counted = measuring
                try:
                    response = await client.post(DISCOVER_PATH, json=body)
                except httpx.HTTPError as exc:
                    if counted:
                        tally.errors[type(exc).__name__] += 1
                    continue
                elapsed = time.perf_counter() - started
                if not counted:
                    continue
                if response.status_code != 200:
                    tally.errors[f"status_{response.status_code}"] += 1
                    continue
                answer = response.json()
                tally.latencies.append(elapsed)
                tally.modes[str(answer.get("mode"))] += 1
                tally.hits.append(len(answer.get("results", [])))

        if warmup > 0:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        measuring = True
        cpu_server = h.process_cpu_seconds(server_pid)
        cpu_client = time.process_time()
        began = time.perf_counter()
        deadline = began + duration
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
        client_cpu = time.process_time() - cpu_client
        server_cpu_after = h.process_cpu_seconds(server_pid)
    ok = len(tally.latencies)
    server_cpu = (
        server_cpu_after - cpu_server
        if cpu_server is not None and server_cpu_after is not None
        else None
    )
    return h.dist_ms(tally.latencies) | {
        "requests_per_s": round(ok / elapsed, 1),
        "ok": ok,
        "errors": sum(tally.errors.values()),
        "error_detail": dict(tally.errors),
        "duration_s": round(elapsed, 2),
        "concurrency": concurrency,
        "server_cpu_ms_per_request": round(1000 * server_cpu / ok, 2)
        if server_cpu and ok
        else None,
        "server_cpu_fraction": round(server_cpu / elapsed, 3) if server_cpu is not None else None,
        "client_cpu_fraction": round(client_cpu / elapsed, 3),
        "modes_answered": dict(tally.modes),
        "mean_results": mean([float(n) for n in tally.hits]),
    }


async def prime(
    base_url: str, headers: dict[str, str], queries: Sequence[str], concurrency: int
) -> None:
    """Send every query once, so the hub's query cache holds them all."""
    pending = iter(queries)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=CLIENT_TIMEOUT_S
    ) as client:

        async def worker() -> None:
            for query in pending:
                response = await client.post(DISCOVER_PATH, json={"query": query, "limit": 10})
                if response.status_code != 200:
                    raise RuntimeError(f"discover answered {response.status_code}: {response.text}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def wait_idle(pid: int, timeout: float = 300.0) -> float:
    """Wait until the hub stops working (its start-up backfill checks every agent)."""
    began = time.monotonic()
    last = h.process_cpu_seconds(pid)
    while time.monotonic() - began < timeout:
        time.sleep(IDLE_WINDOW_S)
        now = h.process_cpu_seconds(pid)
        if last is None or now is None:
            return time.monotonic() - began
        if now - last < IDLE_CPU_SECONDS:
            return time.monotonic() - began
        last = now
    return time.monotonic() - began


def readiness(server: h.Server) -> dict[str, Any]:
    response = httpx.get(server.base_url + "/readyz", timeout=10)
    checks = response.json().get("checks", {})
    discovery: dict[str, Any] = checks.get("discovery", {})
    return discovery


def viewer_headers(server: h.Server, viewer: str) -> dict[str, str]:
    if viewer == "anonymous":
        return {}
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        return h.register_owner(client).headers


@dataclass
class LoadPlan:
    warm_queries: list[str]
    cold: Iterator[str]
    rng: random.Random

    def warm(self) -> str:
        return self.rng.choice(self.warm_queries)

    def fresh(self) -> str:
        return next(self.cold)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Extra environment for the hub started inside (``clean_env`` copies os.environ)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def serve_and_load(
    procs: h.Processes,
    backend: Backend,
    workdir: Path,
    plan: LoadPlan,
    args: argparse.Namespace,
    *,
    label: str,
    hub_environment: dict[str, str] | None = None,
    full: bool = True,
) -> dict[str, Any]:
    """Start the hub on the prepared database and load it; ``full`` adds the one-client
    runs and, if the goal is missed, the profile."""
    with environment(hub_environment or {}):
        server = h.start_hub(
            procs,
            name=f"hub-{backend.name}-{label}",
            workdir=workdir,
            database_url=backend.url,
            redis_url=None,
        )
    pid = server.process.pid
    found: dict[str, Any] = {"hub_environment": hub_environment or {}}
    found["started_rss_mib"] = mib(proc_rss_kib(pid))
    found["backfill_wait_s"] = round(wait_idle(pid), 1)
    found["readyz_discovery"] = readiness(server)
    found["rss_after_start_mib"] = mib(proc_rss_kib(pid))
    headers = viewer_headers(server, args.viewer)
    found["viewer"] = args.viewer

    def run(name: str, next_query: Callable[[], str], concurrency: int, duration: float) -> None:
        figures = asyncio.run(
            drive(
                server.base_url,
                headers,
                next_query,
                concurrency=concurrency,
                duration=duration,
                warmup=args.warmup,
                server_pid=pid,
            )
        )
        found[name] = figures
        print(
            f"  {name:24s} {h.describe(figures)}  server CPU "
            f"{figures['server_cpu_ms_per_request']} ms/req"
        )

    try:
        print(f"  priming the query cache with {len(plan.warm_queries)} distinct queries")
        asyncio.run(prime(server.base_url, headers, plan.warm_queries, args.concurrency))
        run("warm", plan.warm, args.concurrency, args.duration)
        run("cold", plan.fresh, args.concurrency, args.duration)
        if full and args.single_client_duration > 0:
            run("warm_one_client", plan.warm, 1, args.single_client_duration)
            run("cold_one_client", plan.fresh, 1, args.single_client_duration)
        found["rss_after_load_mib"] = mib(proc_rss_kib(pid))
        missed = any(
            found[name]["p95_ms"] is None or found[name]["p95_ms"] >= GOAL_P95_MS
            for name in ("warm", "cold")
        )
        if full and missed and args.profile_seconds > 0:
            found["profile"] = {
                name: profile_under_load(server, headers, next_query, args, workdir, name)
                for name, next_query in (("warm", plan.warm), ("cold", plan.fresh))
            }
        found["server_log_warnings"] = server.log_events()
    finally:
        procs.stop(server.process)
    return found


# ---------------------------------------------------------------- profiling the hub


FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


def profile_under_load(
    server: h.Server,
    headers: dict[str, str],
    next_query: Callable[[], str],
    args: argparse.Namespace,
    workdir: Path,
    label: str,
) -> dict[str, Any]:
    """py-spy samples of the hub while the same load runs (not a measured run)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {"skipped": "py-spy not installed (pip install py-spy)"}
    out = workdir / f"profile-{label}-{server.name}.txt"
    command = [
        spy,
        "record",
        "--pid",
        str(server.process.pid),
        "--duration",
        str(int(max(1, args.profile_seconds))),
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(out),
    ]
    spy_log = workdir / f"py-spy-{label}.log"
    with spy_log.open("wb") as log:
        sampler = subprocess.Popen(  # noqa: S603 - py-spy from our venv, no shell
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            asyncio.run(
                drive(
                    server.base_url,
                    headers,
                    next_query,
                    concurrency=args.concurrency,
                    duration=args.profile_seconds + 2,
                    warmup=0.5,
                    server_pid=server.process.pid,
                )
            )
            sampler.wait(timeout=60)
        finally:
            if sampler.poll() is None:
                sampler.terminate()
                sampler.wait(timeout=10)
    if not out.exists():
        return {"skipped": f"py-spy wrote nothing: {spy_log.read_text(errors='replace')[-400:]}"}
    return summarize_profile(out.read_text(errors="replace"))


# Where a sample's innermost frame lies, by file path; the first match wins.
PROFILE_BUCKETS: tuple[tuple[str, str], ...] = (
    ("discovery/encoder.py", "query embedding (encoder, numpy)"),
    ("tokenizers", "query embedding (encoder, numpy)"),
    ("aiosqlite", "database driver (aiosqlite / sqlite3)"),
    ("sqlite3", "database driver (aiosqlite / sqlite3)"),
    ("asyncpg", "database driver (asyncpg)"),
    ("sqlalchemy", "SQLAlchemy (compile, ORM, rows)"),
    ("hermes_hub/discovery", "hermes discovery (Python)"),
    ("hermes_hub", "hermes other (auth, middleware...)"),
    ("pydantic", "FastAPI / Starlette / pydantic / uvicorn"),
    ("fastapi", "FastAPI / Starlette / pydantic / uvicorn"),
    ("starlette", "FastAPI / Starlette / pydantic / uvicorn"),
    ("uvicorn", "FastAPI / Starlette / pydantic / uvicorn"),
    ("h11", "FastAPI / Starlette / pydantic / uvicorn"),
    ("httptools", "FastAPI / Starlette / pydantic / uvicorn"),
    ("numpy", "numpy (outside the encoder)"),
    ("asyncio", "event loop (uvloop's C work: sockets, callbacks)"),
    ("uvloop", "event loop (uvloop's C work: sockets, callbacks)"),
    ("threading", "threads handing off work"),
    ("concurrent", "threads handing off work"),
)

# Functions of the hub worth seeing inclusive time of, whatever their depth.
PROFILE_FOCUS = (
    "search",
    "_lexical",
    "_semantic_pgvector",
    "_similarities_pgvector",
    "_explain",
    "_eligible_ids",
    "refresh",
    "top",
    "similarities",
    "query",
    "encode",
    "relevance",
    "matched_tags",
    "discover_agents",
    "_request_session",
    "writer",
    "_check_organization",
)


def bucket_of(path: str) -> str:
    for needle, bucket in PROFILE_BUCKETS:
        if needle in path:
            return bucket
    return "other"


def summarize_profile(raw: str) -> dict[str, Any]:
    """Self and inclusive samples from py-spy's collapsed stacks ("a;b;c count" lines)."""
    total = idle_pool = 0
    self_buckets: Counter[str] = Counter()
    self_functions: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = []
        for frame in stack.split(";"):
            found = FRAME.match(frame.strip())
            if found:
                frames.append((found.group("function"), found.group("file")))
        if not frames:
            continue
        function, path = frames[-1]
        if function == "_worker" and path.endswith("concurrent/futures/thread.py"):
            # An idle thread-pool worker blocked on its queue: py-spy counts it as running.
            idle_pool += count
            continue
        total += count
        self_buckets[bucket_of(path)] += count
        self_functions[f"{function} ({short_path(path)})"] += count
        for name in {
            f"{function} ({short_path(path)})"
            for function, path in frames
            if "hermes_hub" in path and function in PROFILE_FOCUS
        }:
            inclusive[name] += count

    def share(counter: Counter[str], top: int) -> list[dict[str, Any]]:
        return [
            {"where": name, "samples": n, "share": round(n / total, 3)}
            for name, n in counter.most_common(top)
        ]

    return {
        "samples": total,
        "idle_thread_pool_samples_dropped": idle_pool,
        "note": "py-spy at 200 Hz over every thread that was running (not idle); the encoder "
        "runs in worker threads and SQLite in aiosqlite's threads beside the event loop, so "
        "shares are of thread-samples; a C call is counted in the Python frame calling it "
        "(the sqlite3 calls in aiosqlite's _connection_worker_thread, uvloop's own work in "
        "Runner.run)",
        "self_by_area": share(self_buckets, 20),
        "self_top_functions": share(self_functions, 25),
        "inclusive_hub_functions": share(inclusive, 20),
    }


def short_path(path: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# ---------------------------------------------------------------- speed phase


def speed_phase(
    backends: Sequence[str],
    workdir: Path,
    labelled: LabelledSet,
    args: argparse.Namespace,
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    results: dict[str, Any] = {"backends": {}, "skipped": {}, "blas_thread_per_core": {}}
    print(f"speed: embedding one query alone ({args.embed_samples} samples)")
    alone = query_embedding_variants(args.dataset, args.embed_samples, args.seed)
    results["query_embedding_alone"] = alone
    for name, figures in alone.items():
        print(
            f"  {name}: p50 {figures.get('p50_ms')} ms, p95 {figures.get('p95_ms')} ms, "
            f"CPU {figures.get('cpu_ms_mean')} ms per query"
        )
    # Its own generator, so the agents (and the vector cache's texts) do not depend on
    # what else drew numbers before.
    generated = synthesize(labelled, args.agents, random.Random(args.seed))
    print(f"speed: {len(generated)} agents generated; computing their vectors")
    cache_path = None if args.no_vector_cache else args.vector_cache
    prepared = prepare_generated(generated, cache_path, rng)
    results["generated"] = {
        "agents": len(generated),
        "labelled_agents_included": min(len(labelled.agents), len(generated)),
        "distinct_descriptions": len({a["description"] for a in generated}),
        "distinct_names": len({a["name"] for a in generated}),
        "distinct_capability_tags": len({t for a in generated for t in a["capabilities"]}),
        "mean_document_terms": round(
            statistics.fmean(d.document.length for d in prepared.documents), 1
        ),
        "distinct_facet_labels": prepared.distinct_facet_labels,
        "texts_encoded_now": prepared.texts_embedded,
        "encode_seconds": prepared.embed_seconds,
        "encode_texts_per_s": prepared.texts_per_second,
        "vector_cache": prepared.cache,
    }
    warm = load_queries(labelled)
    in_process_queries = [query["query"] for query in labelled.queries]
    results["queries"] = {
        "warm_distinct": len(warm),
        "warm": "the labelled queries, each asked in 3 ways (as written, 'I need ...', "
        "'looking for an agent to ...'); sent once each before the run so "
        "the hub's query-embedding cache (2,048 entries) holds them all, then drawn at random",
        "cold": "every request a query never sent before: a labelled query, a prefix and two "
        "words from the agents' vocabulary; the embedding cache never hits",
    }
    with h.Processes() as procs:
        for name in backends:
            with migrated(name, workdir, f"speed-{name}") as backend:
                if backend is None:
                    results["skipped"][name] = "PostgreSQL unreachable"
                    continue
                print(f"{name}: speed phase, storing {len(generated)} search documents")
                data = asyncio.run(
                    build_index(backend, workdir, generated, prepared, in_process_queries)
                )
                print(f"  stored in {data['store_seconds']} s; starting the hub")
                plan = LoadPlan(warm, cold_queries(labelled, rng), rng)
                data |= serve_and_load(procs, backend, workdir, plan, args, label="main")
                if args.blas_variant and not results["blas_thread_per_core"]:
                    print(f"{name}: the hub again with {BLAS_PER_CORE}")
                    results["blas_thread_per_core"] = {"backend": name} | serve_and_load(
                        procs,
                        backend,
                        workdir,
                        plan,
                        args,
                        label="blas-per-core",
                        hub_environment=BLAS_PER_CORE,
                        full=False,
                    )
                data["database"] = backend.info
                results["backends"][name] = data
    return results


# ---------------------------------------------------------------- memory phase


def matrix_memory(count: int, rng: np.random.Generator) -> dict[str, Any]:
    """An in-process index of ``count`` random unit vectors, filled as ``refresh`` fills it."""
    gc.collect()
    rss_before = rss_kib("VmRSS")
    tracemalloc.start()
    matrix = VectorMatrix(384)
    started = time.perf_counter()
    for start in range(0, count, 5_000):
        size = min(5_000, count - start)
        block = rng.standard_normal((size, 384)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        matrix.upsert((uuid.uuid4(), vector) for vector in block)
        del block
    fill_seconds = time.perf_counter() - started
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = rss_kib("VmRSS")
    query = rng.standard_normal(384).astype(np.float32)
    query /= np.linalg.norm(query)
    timings = []
    for _ in range(50):
        began = time.perf_counter()
        matrix.top(query, TOP_K)
        timings.append(time.perf_counter() - began)
    result = {
        "vectors": len(matrix),
        "matrix_rows_allocated": int(matrix.nbytes // (384 * 4)),
        "matrix_mib": round(matrix.nbytes / 2**20, 2),
        "vectors_only_mib": round(count * 384 * 4 / 2**20, 2),
        "tracemalloc_retained_mib": round(current / 2**20, 2),
        "tracemalloc_peak_mib": round(peak / 2**20, 2),
        "rss_growth_mib": mib((rss_after or 0) - (rss_before or 0)),
        "fill_seconds": round(fill_seconds, 2),
        f"top_{TOP_K}_ms": h.dist_ms(timings),
    }
    del matrix
    gc.collect()
    return result


def memory_phase(sizes: Sequence[int], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    found = {}
    for count in sizes:
        print(f"memory: in-process index of {count} vectors")
        found[str(count)] = matrix_memory(count, rng)
        print(
            f"  matrix {found[str(count)]['matrix_mib']} MiB, retained "
            f"{found[str(count)]['tracemalloc_retained_mib']} MiB"
        )
    return {
        "in_process_index": found,
        "what": "VectorMatrix(384).upsert of random unit vectors in this process; "
        "matrix_mib is the float32 array (it doubles as it grows, from 1,024 rows), "
        "tracemalloc_retained_mib adds the agent ids and the id -> row dict; rss_growth_mib "
        "is VmRSS after minus before (tracemalloc's own bookkeeping included)",
    }


# ---------------------------------------------------------------- goals and main


def goals(results: dict[str, Any]) -> dict[str, Any]:
    verdicts: dict[str, Any] = {}
    quality = results.get("quality", {}).get("backends", {})
    for name, data in quality.items():
        hybrid = data["modes"]["hybrid"]["overall"]["recall_at_5"]
        lexical = data["modes"]["lexical"]["overall"]["recall_at_5"]
        verdicts[f"{name}_hybrid_recall_at_5"] = {
            "value": hybrid,
            "goal": f">= {GOAL_HYBRID_RECALL_AT_5}",
            "met": hybrid is not None and hybrid >= GOAL_HYBRID_RECALL_AT_5,
        }
        verdicts[f"{name}_hybrid_above_lexical"] = {
            "value": round(hybrid - lexical, 4) if hybrid is not None and lexical else None,
            "goal": "hybrid recall@5 clearly above lexical only",
            "lexical_recall_at_5": lexical,
            "met": hybrid is not None and lexical is not None and hybrid - lexical >= 0.1,
        }
    speed = results.get("speed", {}).get("backends", {})
    for name, data in speed.items():
        for label in ("warm", "cold"):
            p95 = data[label]["p95_ms"]
            full_size = data["agents"] >= GOAL_AGENTS and data[label]["concurrency"] >= 20
            verdicts[f"{name}_{label}_p95_ms"] = {
                "requests_per_s": data[label]["requests_per_s"],
                "value": p95,
                "goal": f"< {GOAL_P95_MS} at {GOAL_AGENTS} agents, {GOAL_CONCURRENCY} clients",
                "met": (p95 is not None and p95 < GOAL_P95_MS) if full_size else None,
            }
    return verdicts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logs()
    began = time.perf_counter()
    machine = h.machine_info() | {"uncommitted_changes": uncommitted_changes()}
    digest_at_start = source_digest()
    started_at = h.now_iso()
    labelled = load_dataset(args.dataset)
    dataset_check = check_dataset(args.dataset)
    if not dataset_check["ok"]:
        print(
            "warning: the dataset checker reports problems:\n  "
            + "\n  ".join(dataset_check["summary"])
        )
    results: dict[str, Any] = {}
    h.install_fast_loop()
    with h.workspace() as workdir:
        if "quality" in args.phases:
            results["quality"] = quality_phase(args.backends, workdir, labelled, args.worst)
        if "speed" in args.phases:
            results["speed"] = speed_phase(args.backends, workdir, labelled, args)
    if "memory" in args.phases:
        results["memory"] = memory_phase(args.memory_agents, args.seed)
    output = {
        "benchmark": "discovery",
        "timestamp": started_at,
        "finished": h.now_iso(),
        "run_seconds": round(time.perf_counter() - began, 1),
        "machine": machine
        | {
            "loadavg_at_end": h.loadavg(),
            "discovery_source_digest": {"start": digest_at_start, "end": source_digest()},
            "note": "2 cores, shared with other jobs (noisy); the load client, the hub, "
            "PostgreSQL and anything else running share them",
        },
        "parameters": {
            "quick": args.quick,
            "phases": args.phases,
            "backends": args.backends,
            "agents": args.agents,
            "memory_agents": args.memory_agents,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "single_client_duration_s": args.single_client_duration,
            "viewer": args.viewer,
            "embed_samples": args.embed_samples,
            "profile_seconds": args.profile_seconds,
            "seed": args.seed,
        },
        "dataset": {
            "agents": len(labelled.agents),
            "queries": len(labelled.queries),
            "queries_by_kind": dict(Counter(q["kind"] for q in labelled.queries)),
            "check": dataset_check,
        },
        "what": WHAT,
        "goals": goals(results),
        **results,
    }
    h.write_results(args.output, output)
    print_summary(output)
    return 0


WHAT = {
    "recall_at_5": "|relevant ∩ top 5| / min(|relevant|, 5), mean over queries",
    "ndcg_at_10": "nDCG@10 with binary gains (1 for a relevant agent), ideal = all relevant "
    "first; mean over queries",
    "mrr_at_10": "1 / rank of the first relevant agent in the top 10 (0 if none)",
    "modes": "discovery.service.search(viewer=Viewer() (anonymous; every agent is public), "
    "filters=Filters(), limit=10): lexical = use_semantic=False, semantic = use_lexical=False, "
    "hybrid = both (what POST /discover does)",
    "by_category": "a query's category is that of (most of) its relevant agents",
    "auto_category": "agent_search_docs.auto_category (nearest category description to the "
    "agent's embedding) against the dataset's label; agents.category is not set",
    "worst_hybrid_queries": "lowest hybrid recall@5 then nDCG@10; '*' marks relevant agents "
    "in the top 5",
    "sqlite_vs_postgres": "the same queries on SQLite (in-process matrix, exact cosine) and "
    "PostgreSQL (pgvector HNSW, ef_search 200): identical top-10 lists, same top-5 sets, mean "
    "shared fraction of the top 10",
    "generated_agents": "the labelled agents, then variants of them: 1 or 2 sentences from "
    "agents of the same topic (25 %: one more from the same category), 2 to 5 of the topic's "
    "tags (20 %: one more from the category), the name varied; no agent card, all public, "
    "100 owners, no trust scores (every agent ranks at the trust prior)",
    "vectors": "real encoder output: each distinct text (document text or facet label) "
    "encoded once with SentenceEncoder.encode in batches of 32 and shared by the agents and "
    "both backends (production encodes [document, *facets] per agent: the same vectors up "
    "to float rounding); kept in a cache file between runs, which is checked against fresh "
    "encodes of a sample and discarded on any drift",
    "store": "discovery.service.store per agent (revision, document, terms, pgvector column), "
    "500 agents per transaction, as reindex writes them",
    "load": "the hub as 'hermes serve' (one worker, uvloop, rate limits 10,000,000/min, no "
    "Redis) on the prepared database, after its start-up backfill went idle; closed-loop "
    "httpx clients in this process, keep-alive, POST /api/v1/agents/discover {query, limit "
    "10}; latency measured at the client, errors are non-200 answers",
    "warm_cold": "warm = queries already in the hub's query-embedding cache; cold = every "
    "query new, so each request embeds its query (in a worker thread)",
    "one_client": "the same with one client: the service time of a request without queueing",
    "blas_thread_per_core": "the first backend's hub started again with OPENBLAS_NUM_THREADS "
    "= the core count, OpenBLAS's own default (hermes_hub sets 1 unless told otherwise), "
    "warm and cold runs only",
    "in_process_search": "service.search in the benchmark's process on the same database "
    "before the hub starts: latency without HTTP or queueing, each statement's time inside "
    "the driver, and a cProfile of one more pass",
    "query_embedding_alone": "encoder.encode([query]) in the benchmark's process with no hub "
    "running",
    "profile": "py-spy record (200 Hz, raw) of the hub during an extra load run of the same "
    "kind, when a p95 misses the goal; self_by_area buckets each sample by the file of its "
    "innermost frame",
}


def print_summary(results: dict[str, Any]) -> None:
    print(f"\nrun took {results['run_seconds']:.0f} s")
    for goal, verdict in results["goals"].items():
        met = verdict["met"]
        state = "not at the goal's size" if met is None else ("met" if met else "MISSED")
        print(f"{goal}: {verdict['value']} (goal {verdict['goal']}): {state}")


if __name__ == "__main__":
    if sys.argv[1:2] == [EMBED_ALONE_COMMAND]:
        path, samples, seed = sys.argv[2:5]
        print(json.dumps(time_query_embedding(Path(path), int(samples), int(seed))))
        sys.exit(0)
    sys.exit(main())
