"""The published ranking formula of discovery (pure; the README restates it).

For a query q and an agent a:

    bm25(q, a)      = BM25 over the agent's field-weighted terms (k1 = 1.2, b = 0.75,
                      idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5)))
    coverage(q, a)  = sum of idf(t) over the query's terms the agent has
                      / sum of idf(t) over all the query's terms
    lexical(q, a)   = coverage(q, a) * bm25(q, a) / max over this query's candidates of bm25
    semantic(q, a)  = max(0, cosine(embedding(q), embedding(a)))
    tag(q, a)       = 1 if the query spells out one of the agent's capability tags, else 0

    relevance = min(1, W_SEMANTIC * semantic + W_LEXICAL * lexical + W_TAG * tag)
    score     = relevance * (BASE + W_TRUST * trust + W_AVAILABLE * online)

Lexical-only mode (no embedding model): relevance = min(1, (1 - W_TAG) * lexical + W_TAG *
tag). Results below MIN_RELEVANCE are dropped: they share neither words nor meaning with
the query.

Why coverage: the best BM25 match always normalises to 1, even when it shares one incidental
word with a long question; weighting by the share of the query's information the agent
matched keeps such a match from outranking an agent that means what was asked. Lexical
evidence is a bonus on top of meaning (W_LEXICAL), not an equal partner, because measured
on the labelled set in bench/ a larger lexical weight lowered recall on paraphrased queries
without raising it on keyword queries. Trust and availability only reorder agents of
similar relevance: together they move a score by at most 15%.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

BM25_K1 = 1.2
BM25_B = 0.75

W_SEMANTIC = 1.0
W_LEXICAL = 0.15
W_TAG = 0.15

BASE = 0.85
W_TRUST = 0.10
W_AVAILABLE = 0.05

MIN_RELEVANCE = 0.15


def idf(document_count: int, document_frequency: int) -> float:
    return math.log(1 + (document_count - document_frequency + 0.5) / (document_frequency + 0.5))


def bm25(
    query_terms: Mapping[str, int],
    weighted_terms: Mapping[str, float],
    *,
    length: float,
    average_length: float,
    document_count: int,
    document_frequency: Mapping[str, int],
) -> float:
    """BM25 of one document; ``weighted_terms`` are its field-weighted term frequencies."""
    if average_length <= 0:
        return 0.0
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / average_length)
    total = 0.0
    for term, repeats in query_terms.items():
        frequency = weighted_terms.get(term, 0.0)
        if frequency <= 0:
            continue
        weight = idf(document_count, document_frequency.get(term, 0))
        total += repeats * weight * frequency * (BM25_K1 + 1) / (frequency + norm)
    return total


@dataclass(frozen=True)
class Relevance:
    relevance: float
    semantic: float
    lexical: float  # coverage times BM25 relative to the query's best
    tag_match: bool


def relevance(
    *,
    semantic: float | None,
    bm25_score: float,
    best_bm25: float,
    coverage: float,
    tag_match: bool,
) -> Relevance:
    """Fuse one candidate's signals; ``semantic`` is None when semantic search is off."""
    lexical = coverage * bm25_score / best_bm25 if best_bm25 > 0 else 0.0
    tag = 1.0 if tag_match else 0.0
    if semantic is None:
        value = (1 - W_TAG) * lexical + W_TAG * tag
        return Relevance(min(1.0, value), 0.0, lexical, tag_match)
    cosine = max(0.0, semantic)
    value = W_SEMANTIC * cosine + W_LEXICAL * lexical + W_TAG * tag
    return Relevance(min(1.0, value), cosine, lexical, tag_match)


def coverage(query_idf: Mapping[str, float], matched: Iterable[str]) -> float:
    """The share of the query's idf mass carried by the terms the agent has."""
    total = sum(query_idf.values())
    if total <= 0:
        return 0.0
    return sum(query_idf.get(term, 0.0) for term in set(matched)) / total


def final_score(relevance_value: float, *, trust: float, online: bool) -> float:
    trust = min(1.0, max(0.0, trust))
    return relevance_value * (BASE + W_TRUST * trust + W_AVAILABLE * (1.0 if online else 0.0))
