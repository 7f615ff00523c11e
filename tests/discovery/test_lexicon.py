"""The in-process lexical index against the published BM25 (``ranking.bm25``)."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_hub.discovery import ranking
from hermes_hub.discovery.lexicon import TermIndex
from hermes_hub.discovery.text import build_document, terms

Corpus = dict[uuid.UUID, dict[str, float]]


def reference(query: Counter[str], corpus: Corpus) -> dict[uuid.UUID, tuple[float, float]]:
    """BM25 and coverage the slow way: every document, ``ranking.bm25``, ``ranking.coverage``."""
    lengths = {agent: sum(weights.values()) for agent, weights in corpus.items()}
    average = sum(lengths.values()) / len(corpus)
    frequency = {term: sum(1 for w in corpus.values() if term in w) for term in query}
    query_idf = {term: ranking.idf(len(corpus), frequency[term]) for term in query}
    found = {}
    for agent, weights in corpus.items():
        shared = [term for term in query if term in weights]
        if not shared:
            continue
        score = ranking.bm25(
            query,
            weights,
            length=lengths[agent],
            average_length=average,
            document_count=len(corpus),
            document_frequency=frequency,
        )
        found[agent] = (score, ranking.coverage(query_idf, shared))
    return found


def indexed(corpus: Corpus) -> TermIndex:
    index = TermIndex()
    index.upsert((agent, weights, sum(weights.values()), ()) for agent, weights in corpus.items())
    return index


VOCABULARY = ["invoice", "pdf", "travel", "flight", "hotel", "tax", "code", "review"]


@settings(max_examples=60, deadline=None)
@given(
    documents=st.lists(
        st.dictionaries(
            st.sampled_from(VOCABULARY), st.sampled_from([1.0, 2.0, 3.0, 4.0]), min_size=1
        ),
        min_size=1,
        max_size=12,
    ),
    query=st.lists(st.sampled_from([*VOCABULARY, "unknown"]), min_size=1, max_size=5),
)
def test_scores_equal_the_published_bm25_and_coverage(
    documents: list[dict[str, float]], query: list[str]
) -> None:
    corpus = {uuid.uuid4(): weights for weights in documents}
    wanted = reference(Counter(query), corpus)
    found = indexed(corpus).score(Counter(query), k=len(corpus))
    assert set(found) == set(wanted)
    for agent, (score, coverage) in wanted.items():
        assert found[agent].bm25 == pytest.approx(score, rel=1e-6)
        assert found[agent].coverage == pytest.approx(coverage, rel=1e-9)


def test_k_keeps_the_best_and_include_adds_others() -> None:
    corpus = {uuid.uuid4(): {"pdf": float(weight)} for weight in range(1, 9)}
    ranked = sorted(corpus, key=lambda agent: -corpus[agent]["pdf"])
    index = indexed(corpus)
    assert set(index.score(Counter(["pdf"]), k=3)) == set(ranked[:3])
    assert set(index.score(Counter(["pdf"]), k=3, include=[ranked[-1], uuid.uuid4()])) == {
        *ranked[:3],
        ranked[-1],
    }
    assert index.score(Counter(["pdf"]), k=0) == {}
    assert index.score(Counter(), k=5) == {}
    assert TermIndex().score(Counter(["pdf"]), k=5) == {}


def test_among_scores_only_those_agents_with_the_whole_corpus_statistics() -> None:
    corpus = {uuid.uuid4(): {"pdf": float(weight), "tax": 1.0} for weight in range(1, 6)}
    corpus[uuid.uuid4()] = {"hotel": 1.0}
    chosen = list(corpus)[:2]
    everyone = indexed(corpus).score(Counter(["pdf"]), k=10)
    only = indexed(corpus).score(Counter(["pdf"]), k=10, among=chosen)
    assert set(only) == set(chosen)
    # idf and the mean length still come from every agent.
    assert all(only[agent] == everyone[agent] for agent in chosen)
    assert indexed(corpus).score(Counter(["pdf"]), k=10, among=[]) == {}


def test_replacing_an_agent_drops_its_old_terms() -> None:
    agent, other = uuid.uuid4(), uuid.uuid4()
    index = TermIndex()
    index.upsert([(agent, {"pdf": 2.0}, 2.0, ("pdf-extraction",)), (other, {"tax": 1.0}, 1.0, ())])
    assert set(index.score(Counter(["pdf"]), k=5)) == {agent}
    index.upsert([(agent, {"travel": 1.0, "hotel": 3.0}, 4.0, ("trip-planning",))])
    assert index.score(Counter(["pdf"]), k=5) == {}
    assert index.document_frequency("pdf") == 0
    assert set(index.score(Counter(["hotel"]), k=5)) == {agent}
    assert index.tags(agent) == ("trip-planning",)
    assert index.tags(uuid.uuid4()) == ()
    assert len(index) == 2
    assert index.average_length == pytest.approx((4.0 + 1.0) / 2)


def test_an_agent_replaced_twice_in_one_batch_keeps_only_the_last_terms() -> None:
    agent = uuid.uuid4()
    index = TermIndex()
    index.upsert([(agent, {"pdf": 1.0}, 1.0, ())])
    index.upsert(
        [(agent, {"tax": 1.0, "code": 1.0}, 2.0, ()), (agent, {"code": 2.0, "hotel": 1.0}, 3.0, ())]
    )
    assert index.document_frequency("pdf") == 0
    assert index.document_frequency("tax") == 0
    assert index.document_frequency("code") == 1
    assert index.score(Counter(["code"]), k=5)[agent].bm25 == pytest.approx(
        ranking.bm25(
            Counter(["code"]),
            {"code": 2.0, "hotel": 1.0},
            length=3.0,
            average_length=3.0,
            document_count=1,
            document_frequency={"code": 1},
        )
    )
    assert index.average_length == pytest.approx(3.0)


def test_indexes_real_documents() -> None:
    pdf = build_document(
        name="Parser", description="Extracts tables from PDF invoices.", capabilities=["pdf"]
    )
    trip = build_document(
        name="Wayfarer", description="Trip coordination and hotels.", capabilities=["travel"]
    )
    pdf_id, trip_id = uuid.uuid4(), uuid.uuid4()
    index = TermIndex()
    index.upsert(
        [
            (pdf_id, pdf.weighted_terms, pdf.length, pdf.tags),
            (trip_id, trip.weighted_terms, trip.length, trip.tags),
        ]
    )
    found = index.score(Counter(terms("pdf invoice tables")), k=5)
    assert set(found) == {pdf_id}
    assert found[pdf_id].coverage == pytest.approx(1.0)
    assert index.tags(pdf_id) == ("pdf",)
