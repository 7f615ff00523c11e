"""Discovery's pure parts without a database: text, ranking, categories, the vector matrix
and the embedder's query cache."""

from __future__ import annotations

import hashlib
import itertools
import math
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hermes_hub.discovery import engine, ranking
from hermes_hub.discovery.categories import (
    CATEGORIES,
    CATEGORY_SLUGS,
    category_texts,
    lexical_category,
    nearest_category,
)
from hermes_hub.discovery.engine import Embedder, VectorMatrix
from hermes_hub.discovery.text import (
    MAX_DOCUMENT_CHARS,
    MAX_SKILLS,
    MAX_TERM_LENGTH,
    Skill,
    build_document,
    card_skills,
    matched_tags,
    stem,
    tag_words,
    terms,
)

# ---- text ----


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("agents", "agent"),
        ("booking", "book"),
        ("bookings", "book"),
        ("booked", "book"),
        ("companies", "company"),
        ("translation", "translat"),
        ("translations", "translat"),
        ("payments", "pay"),
        # Never aggressive: short words, digits and -ss/-us/-is endings stay as they are.
        ("bus", "bus"),
        ("class", "class"),
        ("status", "status"),
        ("analysis", "analysis"),
        ("12345", "12345"),
        ("cats", "cat"),
        ("tes", "tes"),
    ],
)
def test_stem(word: str, expected: str) -> None:
    assert stem(word) == expected


@pytest.mark.parametrize(
    ("singular", "inflected"),
    [("invoice", "invoices"), ("image", "images"), ("service", "services"), ("create", "created")],
)
def test_stem_conflates_words_ending_in_e_with_their_inflections(
    singular: str, inflected: str
) -> None:
    assert stem(inflected) == stem(singular)


def test_stem_keeps_at_least_three_characters() -> None:
    # "ing" would leave two characters; "s" then leaves four.
    assert stem("sings") == "sing"
    assert stem("ring") == "ring"
    assert all(len(stem(word)) >= 3 for word in ["being", "eyes", "oration", "ties", "owed"])


def test_terms_drop_stopwords_and_single_letters_and_stem() -> None:
    assert terms("The agents are booking flights! a b 7 x") == ["agent", "book", "flight", "7"]
    assert terms("I need help with my vacation") == ["vacat"]
    assert terms("") == []
    assert terms("!!! --- ???") == []


def test_terms_fold_case_accents_and_compatibility_forms() -> None:
    assert terms("CAFÉ Résumé") == ["caf", "resum"]
    assert terms("ﬁnance") == terms("finance")  # the "fi" ligature
    assert terms("\uff30\uff24\uff26") == ["pdf"]  # full-width letters


def test_terms_split_on_underscores_and_punctuation_and_keep_repeats() -> None:
    assert terms("pdf_extraction, pdf-extraction") == ["pdf", "extract"] * 2


def test_terms_are_truncated() -> None:
    [term] = terms("x" * 200)
    assert term == "x" * MAX_TERM_LENGTH


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("financial-analysis", "financial analysis"),
        ("pdf_extraction", "pdf extraction"),
        ("a.b:c/d+e f", "a b c d e f"),
        ("--ocr--", "ocr"),
        ("translate", "translate"),
    ],
)
def test_tag_words(tag: str, expected: str) -> None:
    assert tag_words(tag) == expected


def test_matched_tags_accepts_dashes_spaces_case_and_punctuation() -> None:
    tags = ["pdf-extraction", "ocr", "extraction-pdf"]
    assert matched_tags("I want pdf-extraction", tags) == ["pdf-extraction"]
    assert matched_tags("I want pdf extraction", tags) == ["pdf-extraction"]
    assert matched_tags("PDF Extraction, please", tags) == ["pdf-extraction"]
    assert matched_tags("pdf_extraction", tags) == ["pdf-extraction"]
    assert matched_tags("OCR.", tags) == ["ocr"]
    assert matched_tags("pdf extraction then ocr", tags) == ["pdf-extraction", "ocr"]


def test_matched_tags_needs_the_whole_phrase_in_order() -> None:
    tags = ["pdf-extraction", "ocr"]
    assert matched_tags("pdfextraction", tags) == []
    assert matched_tags("extraction of pdf", tags) == []
    assert matched_tags("pdf", tags) == []
    assert matched_tags("pdfs extraction", tags) == []  # words are compared unstemmed
    assert matched_tags("ocrs and procr", tags) == []
    assert matched_tags("anything", []) == []
    assert matched_tags("anything", ["---"]) == []  # a tag with no words never matches


def test_card_skills_reads_a_well_formed_card() -> None:
    metadata = {
        "agent_card": {
            "skills": [
                {"name": "Flights", "description": "Books flights", "tags": ["travel", "air"]}
            ]
        }
    }
    assert card_skills(metadata) == [Skill("Flights", "Books flights", ("travel", "air"))]


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {},
        {"other": 1},
        {"agent_card": None},
        {"agent_card": "a string"},
        {"agent_card": ["a", "list"]},
        {"agent_card": {}},
        {"agent_card": {"skills": None}},
        {"agent_card": {"skills": "not a list"}},
        {"agent_card": {"skills": {"name": "a mapping"}}},
        {"agent_card": {"skills": [None, 1, "text", ["x"]]}},
    ],
)
def test_card_skills_tolerates_malformed_cards(metadata: Any) -> None:
    assert card_skills(metadata) == []


def test_card_skills_tolerates_malformed_fields() -> None:
    metadata = {
        "agent_card": {
            "skills": [
                {"name": 5, "description": ["x"], "tags": "ocr"},
                {"name": "Scan", "tags": ["ocr", 7, None, {"x": 1}, "scan"]},
                "garbage",
                {},
            ]
        }
    }
    assert card_skills(metadata) == [
        Skill("", "", ()),
        Skill("Scan", "", ("ocr", "scan")),
        Skill("", "", ()),
    ]


def test_card_skills_keeps_at_most_max_skills() -> None:
    skills = [{"name": f"skill {index}"} for index in range(MAX_SKILLS + 10)]
    found = card_skills({"agent_card": {"skills": skills}})
    assert len(found) == MAX_SKILLS
    assert found[-1].name == f"skill {MAX_SKILLS - 1}"


def test_build_document_weights_tags_over_name_over_description() -> None:
    document = build_document(
        name="Trip Planner", description="Plans trips", capabilities=["trip-planning"]
    )
    assert document.text == "Trip Planner\nPlans trips\nCapabilities: trip planning."
    # trip: name 2 + description 1 + tag 3; plann (planner, planning): name 2 + tag 3.
    assert document.weighted_terms == {"trip": 6.0, "plann": 5.0, "plan": 1.0}
    assert document.length == 12.0
    assert document.tags == ("trip-planning",)
    assert document.skill_names == ()


def test_build_document_includes_card_skills_and_their_tags() -> None:
    metadata = {
        "agent_card": {
            "skills": [
                {
                    "name": "Scanner",
                    "description": "Reads receipts",
                    "tags": ["OCR", "ocr", "scan"],
                },
                {"name": "", "description": "ignored without a name", "tags": ["ignored-no"]},
            ]
        }
    }
    document = build_document(name="X", description="", capabilities=["OCR"], metadata=metadata)
    assert document.tags == ("ocr", "scan", "ignored-no")
    assert document.skill_names == ("Scanner",)
    assert (
        document.text == "X\nCapabilities: ocr, scan, ignored no.\nSkills: Scanner: Reads receipts"
    )
    assert document.weighted_terms["ocr"] == 3.0  # one tag, once: case duplicates merged
    # Skill text is weighted as description; a nameless skill's description is left out.
    assert document.weighted_terms["scann"] == 1.0
    assert document.weighted_terms["receipt"] == 1.0
    # A nameless skill still contributes its tags.
    assert document.weighted_terms["ignor"] == 3.0


def test_build_document_without_text_is_empty() -> None:
    document = build_document(name="", description="", capabilities=[])
    assert document.text == ""
    assert document.weighted_terms == {}
    assert document.length == 0.0


def test_content_hash_is_the_sha256_of_the_text_and_stable() -> None:
    def make(**changes: Any) -> Any:
        fields: dict[str, Any] = {
            "name": "Trip Planner",
            "description": "Plans trips",
            "capabilities": ["trip-planning", "booking"],
            "metadata": {"price_note": "cheap"},
        }
        return build_document(**{**fields, **changes})

    document = make()
    assert document.content_hash == hashlib.sha256(document.text.encode()).hexdigest()
    assert make().content_hash == document.content_hash
    # Metadata other than the agent card and repeated or re-cased tags change nothing.
    assert make(metadata={"other": [1, 2]}).content_hash == document.content_hash
    assert make(metadata=None).content_hash == document.content_hash
    assert (
        make(capabilities=["trip-planning", "BOOKING", "booking"]).content_hash
        == document.content_hash
    )
    # Any searchable change does.
    assert make(description="Plans trips.").content_hash != document.content_hash
    assert make(name="Trip planner").content_hash != document.content_hash
    assert make(capabilities=["trip-planning"]).content_hash != document.content_hash
    card = {"agent_card": {"skills": [{"name": "Hotels"}]}}
    assert make(metadata=card).content_hash != document.content_hash


def test_document_text_is_capped() -> None:
    document = build_document(name="n", description="word " * 5000, capabilities=[])
    assert len(document.text) == MAX_DOCUMENT_CHARS


def test_content_hash_changes_whenever_the_lexical_terms_do() -> None:
    # The largest agent the API accepts: a 4,000-character description, 64 tags of 64.
    description = "x" * 4000
    tags = [f"{index:02d}" + "a" * 62 for index in range(63)]
    before = build_document(name="n", description=description, capabilities=[*tags, "ocr"])
    after = build_document(name="n", description=description, capabilities=[*tags, "translate"])
    assert before.weighted_terms != after.weighted_terms
    assert before.content_hash != after.content_hash


# ---- ranking ----


def test_idf_matches_the_formula() -> None:
    assert ranking.idf(3, 1) == pytest.approx(math.log(1 + 2.5 / 1.5))
    assert ranking.idf(10, 0) == pytest.approx(math.log(22.0))


def test_idf_falls_with_document_frequency_and_rises_with_corpus_size() -> None:
    by_frequency = [ranking.idf(100, df) for df in range(101)]
    assert all(a > b for a, b in itertools.pairwise(by_frequency))
    by_size = [ranking.idf(n, 3) for n in range(3, 200)]
    assert all(a < b for a, b in itertools.pairwise(by_size))
    assert by_frequency[-1] > 0  # a term in every document still counts a little


def test_bm25_matches_a_hand_computation() -> None:
    # Three documents; "trip" is in one of them. avgdl = (12 + 6 + 12) / 3 = 10.
    corpus = {
        "planner": {"trip": 6.0, "plann": 5.0, "plan": 1.0},
        "invoices": {"invoice": 3.0, "pay": 3.0},
        "tickets": {"ticket": 6.0, "plann": 6.0},
    }
    lengths = {name: sum(terms.values()) for name, terms in corpus.items()}
    average = sum(lengths.values()) / 3
    frequency = {"trip": 1, "plann": 2, "invoice": 1, "pay": 1, "ticket": 1, "plan": 1}

    def score(query: dict[str, int], name: str) -> float:
        return ranking.bm25(
            query,
            corpus[name],
            length=lengths[name],
            average_length=average,
            document_count=3,
            document_frequency=frequency,
        )

    # idf(trip) = ln(1 + 2.5 / 1.5) = 0.98083; K = 1.2 (0.25 + 0.75 * 12 / 10) = 1.38;
    # 0.98083 * 6 * 2.2 / (6 + 1.38) = 1.75433.
    assert score({"trip": 1}, "planner") == pytest.approx(1.75433, abs=1e-4)
    # A repeated query term counts twice.
    assert score({"trip": 2}, "planner") == pytest.approx(2 * 1.75433, abs=1e-4)
    # idf(plann) = ln(1 + 1.5 / 2.5) = 0.47000; 0.47000 * 5 * 2.2 / (5 + 1.38) = 0.81034.
    assert score({"plann": 1}, "planner") == pytest.approx(0.81034, abs=1e-4)
    assert score({"trip": 1, "plann": 1}, "planner") == pytest.approx(2.56467, abs=1e-4)
    # The shorter document: K = 1.2 (0.25 + 0.75 * 6 / 10) = 0.84;
    # idf(invoice) = 0.98083; 0.98083 * 3 * 2.2 / (3 + 0.84) = 1.68580.
    assert score({"invoice": 1}, "invoices") == pytest.approx(1.68580, abs=1e-4)
    assert score({"trip": 1}, "invoices") == 0.0
    assert score({"unknown": 3}, "planner") == 0.0


def test_bm25_of_an_empty_corpus_is_zero() -> None:
    assert (
        ranking.bm25(
            {"a": 1},
            {"a": 1.0},
            length=1.0,
            average_length=0.0,
            document_count=0,
            document_frequency={},
        )
        == 0.0
    )


def test_bm25_saturates_in_term_frequency() -> None:
    def with_frequency(frequency: float) -> float:
        return ranking.bm25(
            {"t": 1},
            {"t": frequency},
            length=10.0,
            average_length=10.0,
            document_count=10,
            document_frequency={"t": 1},
        )

    values = [with_frequency(f) for f in (1, 2, 4, 8, 1000)]
    assert all(a < b for a, b in itertools.pairwise(values))
    assert values[-1] < ranking.idf(10, 1) * (ranking.BM25_K1 + 1)


def fuse(
    semantic: float | None,
    bm25_score: float,
    best_bm25: float,
    coverage: float = 1.0,
    tag: bool = False,
) -> ranking.Relevance:
    return ranking.relevance(
        semantic=semantic,
        bm25_score=bm25_score,
        best_bm25=best_bm25,
        coverage=coverage,
        tag_match=tag,
    )


def test_relevance_fuses_semantic_lexical_and_tag() -> None:
    fused = fuse(0.6, 2.0, 4.0)
    assert fused.relevance == pytest.approx(ranking.W_SEMANTIC * 0.6 + ranking.W_LEXICAL * 0.5)
    assert (fused.semantic, fused.lexical, fused.tag_match) == (0.6, 0.5, False)
    # Matching half of the query's information halves the lexical evidence.
    partial = fuse(0.6, 2.0, 4.0, coverage=0.5)
    assert partial.lexical == pytest.approx(0.25)
    tagged = fuse(0.6, 2.0, 4.0, tag=True)
    assert tagged.relevance == pytest.approx(fused.relevance + ranking.W_TAG)
    assert tagged.tag_match is True
    assert fuse(0.95, 4.0, 4.0, tag=True).relevance == 1.0


def test_relevance_clamps_negative_cosine_and_handles_no_lexical_match() -> None:
    fused = fuse(-0.4, 0.0, 0.0, coverage=0.0)
    assert (fused.relevance, fused.semantic, fused.lexical) == (0.0, 0.0, 0.0)
    # No candidate matched a word: nothing to normalise by.
    assert fuse(0.5, 3.0, 0.0).lexical == 0.0


def test_relevance_in_lexical_only_mode() -> None:
    half = fuse(None, 1.0, 2.0)
    assert half.relevance == pytest.approx(0.5 * (1 - ranking.W_TAG))
    assert (half.semantic, half.lexical) == (0.0, 0.5)
    tagged = fuse(None, 1.0, 2.0, tag=True)
    assert tagged.relevance == pytest.approx(0.5 * (1 - ranking.W_TAG) + ranking.W_TAG)
    assert fuse(None, 2.0, 2.0, tag=True).relevance == pytest.approx(1.0)
    assert fuse(None, 2.0, 2.0).relevance == pytest.approx(1 - ranking.W_TAG)
    # The best BM25 match covering a third of the query gets a third of the credit.
    third = fuse(None, 2.0, 2.0, coverage=1 / 3)
    assert third.relevance == pytest.approx((1 - ranking.W_TAG) / 3)


def test_coverage_is_the_share_of_the_query_idf_matched() -> None:
    query_idf = {"hotel": 1.0, "trip": 3.0}
    assert ranking.coverage(query_idf, ["trip"]) == pytest.approx(0.75)
    assert ranking.coverage(query_idf, ["trip", "trip", "hotel"]) == pytest.approx(1.0)
    assert ranking.coverage(query_idf, ["unrelated"]) == 0.0
    assert ranking.coverage(query_idf, []) == 0.0
    assert ranking.coverage({}, ["trip"]) == 0.0
    assert ranking.coverage({"the": 0.0}, ["the"]) == 0.0


def test_min_relevance_drops_faint_matches_only() -> None:
    # Meaning alone must clear the threshold.
    faint = fuse((ranking.MIN_RELEVANCE - 0.01) / ranking.W_SEMANTIC, 0.0, 5.0, coverage=0.0)
    near = fuse((ranking.MIN_RELEVANCE + 0.01) / ranking.W_SEMANTIC, 0.0, 5.0, coverage=0.0)
    assert faint.relevance < ranking.MIN_RELEVANCE <= near.relevance
    # A named tag is always enough, in either mode.
    for semantic in (None, 0.0):
        assert fuse(semantic, 0.0, 5.0, coverage=0.0, tag=True).relevance >= (ranking.MIN_RELEVANCE)
    # Lexically, a candidate far below the query's best match is dropped.
    assert fuse(None, 0.5, 5.0).relevance < ranking.MIN_RELEVANCE


@given(
    semantic=st.none() | st.floats(-1.0, 1.0),
    best=st.floats(0.0, 1e6),
    share=st.floats(0.0, 1.0),
    coverage=st.floats(0.0, 1.0),
    tag=st.booleans(),
)
def test_relevance_stays_within_zero_and_one(
    semantic: float | None, best: float, share: float, coverage: float, tag: bool
) -> None:
    fused = fuse(semantic, best * share, best, coverage=coverage, tag=tag)
    assert 0.0 <= fused.relevance <= 1.0
    assert 0.0 <= fused.lexical <= 1.0 + 1e-9
    assert 0.0 <= fused.semantic <= 1.0


@given(
    semantic=st.floats(0.0, 1.0),
    bm25_score=st.floats(0.0, 100.0),
    extra=st.floats(0.0, 100.0),
    coverage=st.floats(0.0, 1.0),
    tag=st.booleans(),
)
def test_relevance_never_falls_when_evidence_grows(
    semantic: float, bm25_score: float, extra: float, coverage: float, tag: bool
) -> None:
    best = bm25_score + extra
    base = fuse(semantic, bm25_score, best, coverage=coverage, tag=False).relevance
    assert fuse(semantic, best, best, coverage=coverage, tag=False).relevance >= base
    assert fuse(semantic, bm25_score, best, coverage=1.0, tag=False).relevance >= base
    assert fuse(min(1.0, semantic + 0.1), bm25_score, best, coverage=coverage).relevance >= base
    assert fuse(semantic, bm25_score, best, coverage=coverage, tag=True).relevance >= base
    assert fuse(semantic, bm25_score, best, coverage=coverage, tag=tag).relevance >= base


def test_final_score_weights() -> None:
    assert ranking.final_score(1.0, trust=0.0, online=False) == pytest.approx(ranking.BASE)
    assert ranking.final_score(1.0, trust=1.0, online=True) == pytest.approx(1.0)
    assert ranking.final_score(0.5, trust=0.5, online=True) == pytest.approx(0.5 * 0.95)
    # Out-of-range trust is clamped.
    assert ranking.final_score(0.8, trust=7.0, online=False) == ranking.final_score(
        0.8, trust=1.0, online=False
    )
    assert ranking.final_score(0.8, trust=-1.0, online=False) == ranking.final_score(
        0.8, trust=0.0, online=False
    )
    assert ranking.final_score(0.0, trust=1.0, online=True) == 0.0


@given(
    relevant=st.floats(0.0, 1.0),
    other=st.floats(0.0, 1.0),
    trust_a=st.floats(0.0, 1.0),
    trust_b=st.floats(0.0, 1.0),
    online_a=st.booleans(),
    online_b=st.booleans(),
)
def test_final_score_orders_by_relevance_unless_within_fifteen_percent(
    relevant: float,
    other: float,
    trust_a: float,
    trust_b: float,
    online_a: bool,
    online_b: bool,
) -> None:
    a = ranking.final_score(relevant, trust=trust_a, online=online_a)
    b = ranking.final_score(other, trust=trust_b, online=online_b)
    if relevant * ranking.BASE > other * (1 + 1e-9):
        assert a > b
    # Equal relevance: trust, then availability, decide.
    same = ranking.final_score(relevant, trust=max(trust_a, trust_b), online=True)
    assert same >= ranking.final_score(relevant, trust=min(trust_a, trust_b), online=online_b)


# ---- categories ----


def test_ten_categories_with_distinct_slugs() -> None:
    assert len(CATEGORIES) == 10
    assert len(set(CATEGORY_SLUGS)) == 10
    assert category_texts()[0].startswith("Content Creation. Writing")


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("Bookkeeping, invoices and tax returns for small companies", "finance"),
        ("Penetration testing and vulnerability scanning of web apps", "security"),
        ("Translation and summarisation of legal text", "natural-language"),
        ("Dashboards and forecasting from your spreadsheets", "data-analysis"),
        ("Background removal and upscaling for product photos", "image-processing"),
    ],
)
def test_lexical_category(description: str, expected: str) -> None:
    document = build_document(name="agent", description=description, capabilities=[])
    assert lexical_category(document.weighted_terms) == expected


def test_lexical_category_without_shared_terms_is_none_and_ties_go_to_the_first() -> None:
    assert lexical_category({}) is None
    assert lexical_category({"zzzz": 4.0}) is None
    # "analysis" is in Data Analysis, Natural Language, Security and Finance.
    assert lexical_category({"analysis": 1.0}) == "data-analysis"
    # Weight decides between categories.
    assert lexical_category({"analysis": 1.0, "bank": 0.5}) == "finance"


def test_nearest_category_with_hand_made_vectors() -> None:
    basis = np.eye(10, dtype=np.float32)
    for index, category in enumerate(CATEGORIES):
        assert nearest_category(basis[index], basis) == category.slug
    mixed = np.zeros(10, dtype=np.float32)
    mixed[1], mixed[9] = 0.6, 0.8
    assert nearest_category(mixed, basis) == "finance"
    # Vectors of another dimension than ten work the same.
    wide = np.zeros((10, 4), dtype=np.float32)
    wide[:, 0] = np.linspace(0.0, 0.9, 10)
    wide[4] = [0.0, 1.0, 0.0, 0.0]
    assert nearest_category(np.array([0.1, 0.9, 0.0, 0.0], dtype=np.float32), wide) == (
        "natural-language"
    )


# ---- the in-process vector matrix ----


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def ids(count: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=index + 1) for index in range(count)]


def test_vector_matrix_upsert_and_replace() -> None:
    matrix = VectorMatrix(3)
    a, b, c = ids(3)
    assert len(matrix) == 0
    assert matrix.top(unit(1, 0, 0), 5) == []
    matrix.upsert([(a, unit(1, 0, 0)), (b, unit(0, 1, 0))])
    assert len(matrix) == 2
    assert matrix.similarities(unit(1, 0, 0), [a, b, c]) == {a: 1.0, b: 0.0}
    # Replacing keeps one row per agent.
    matrix.upsert([(a, unit(0, 0, 1)), (c, unit(0, 1, 1))])
    assert len(matrix) == 3
    assert matrix.similarities(unit(0, 0, 1), [a]) == {a: pytest.approx(1.0)}
    assert matrix.similarities(unit(1, 0, 0), [a]) == {a: 0.0}
    assert matrix.similarities(unit(1, 0, 0), []) == {}
    assert matrix.similarities(unit(1, 0, 0), [uuid.uuid4()]) == {}


def test_vector_matrix_grows_beyond_its_first_block() -> None:
    dimension = 8
    matrix = VectorMatrix(dimension)
    agents = ids(2500)
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(len(agents), dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    matrix.upsert(zip(agents[:1000], vectors[:1000], strict=True))
    capacity = matrix.nbytes
    matrix.upsert(zip(agents[1000:], vectors[1000:], strict=True))
    assert len(matrix) == 2500
    assert matrix.nbytes > capacity
    # Every row survived the copies: each vector is its own nearest neighbour.
    for index in (0, 999, 1000, 1023, 1024, 2047, 2048, 2499):
        [(best, similarity)] = matrix.top(vectors[index], 1)
        assert best == agents[index]
        assert similarity == pytest.approx(1.0, abs=1e-5)
    query = vectors[5]
    found = matrix.similarities(query, agents)
    assert len(found) == 2500
    assert found[agents[2400]] == pytest.approx(float(vectors[2400] @ query), abs=1e-5)


def test_vector_matrix_top_orders_and_limits() -> None:
    matrix = VectorMatrix(2)
    a, b, c, d = ids(4)
    matrix.upsert([(a, unit(1, 0)), (b, unit(1, 1)), (c, unit(0, 1)), (d, unit(-1, 0))])
    query = unit(1, 0.2)
    assert [agent for agent, _ in matrix.top(query, 10)] == [a, b, c, d]
    assert [agent for agent, _ in matrix.top(query, 2)] == [a, b]
    assert matrix.top(query, 0) == []
    scores = [score for _, score in matrix.top(query, 4)]
    assert scores == sorted(scores, reverse=True)
    assert scores[-1] < 0  # opposite vectors keep their negative cosine


def test_vector_matrix_top_among() -> None:
    matrix = VectorMatrix(2)
    a, b, c, d = ids(4)
    matrix.upsert([(a, unit(1, 0)), (b, unit(1, 1)), (c, unit(0, 1)), (d, unit(-1, 0))])
    query = unit(1, 0)
    assert [agent for agent, _ in matrix.top(query, 5, among=[d, c])] == [c, d]
    assert [agent for agent, _ in matrix.top(query, 1, among=[d, b, c])] == [b]
    # Agents the matrix does not know are ignored; nothing to rank is an empty list.
    assert [agent for agent, _ in matrix.top(query, 5, among=[uuid.uuid4(), c])] == [c]
    assert matrix.top(query, 5, among=[]) == []
    assert matrix.top(query, 5, among=[uuid.uuid4()]) == []


@settings(max_examples=60, deadline=None)
@given(
    vectors=st.integers(1, 40).flatmap(
        lambda n: arrays(np.float32, (n, 4), elements=st.floats(-1, 1, width=32))
    ),
    query=arrays(np.float32, (4,), elements=st.floats(-1, 1, width=32)),
    k=st.integers(1, 50),
    subset=st.none() | st.sets(st.integers(0, 39)),
)
def test_vector_matrix_top_equals_a_brute_force_sort(
    vectors: np.ndarray, query: np.ndarray, k: int, subset: set[int] | None
) -> None:
    agents = ids(len(vectors))
    matrix = VectorMatrix(4)
    matrix.upsert(zip(agents, vectors, strict=True))
    pool = range(len(agents)) if subset is None else sorted(i for i in subset if i < len(agents))
    expected = {agents[i]: float(np.dot(vectors[i].astype(np.float64), query)) for i in pool}
    among = None if subset is None else [agents[i] for i in pool]
    found = matrix.top(query, k, among=among)

    assert len(found) == min(k, len(expected))
    assert len({agent for agent, _ in found}) == len(found)
    for agent, score in found:
        assert score == pytest.approx(expected[agent], abs=1e-4)
    scores = [score for _, score in found]
    assert scores == sorted(scores, reverse=True)
    best = sorted(expected.values(), reverse=True)[: len(found)]
    assert scores == pytest.approx(best, abs=1e-4)


# ---- the embedder's query cache ----


class CountingEncoder:
    """Encodes text as a deterministic unit vector and counts the texts it saw."""

    model_name = "fake-encoder"
    dimension = 4

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        rows = []
        for text in texts:
            digest = hashlib.sha256(text.encode()).digest()
            vector = np.frombuffer(digest[:16], dtype=np.uint32).astype(np.float32) + 1.0
            rows.append(vector / np.linalg.norm(vector))
        return np.array(rows, dtype=np.float32)


def embedder() -> tuple[Embedder, CountingEncoder]:
    encoder = CountingEncoder()
    return Embedder(encoder), encoder  # type: ignore[arg-type]


async def test_query_cache_encodes_each_query_once() -> None:
    cache, encoder = embedder()
    first = await cache.query("Book a flight")
    again = await cache.query("Book a flight")
    assert again is first
    assert encoder.seen == ["Book a flight"]
    assert not first.flags.writeable  # shared between requests, so never mutated


async def test_query_cache_key_ignores_case_accents_and_spacing() -> None:
    cache, encoder = embedder()
    first = await cache.query("Café  booking ")
    assert await cache.query("cafe booking") is first
    assert await cache.query("CAFÉ\tbooking") is first
    assert encoder.seen == ["Café  booking "]
    await cache.query("cafe bookings")
    assert len(encoder.seen) == 2


async def test_query_cache_evicts_the_least_recently_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "QUERY_CACHE_SIZE", 3)
    cache, encoder = embedder()
    for query in ("alpha", "bravo", "charlie"):
        await cache.query(query)
    await cache.query("alpha")  # now the most recently used
    await cache.query("delta")  # evicts bravo, the least recently used
    assert encoder.seen == ["alpha", "bravo", "charlie", "delta"]
    for query in ("alpha", "charlie", "delta"):
        await cache.query(query)
    assert len(encoder.seen) == 4
    await cache.query("bravo")
    assert encoder.seen[-1] == "bravo"
    assert len(encoder.seen) == 5
    # bravo's return evicted alpha (least recently used after the reads above).
    await cache.query("alpha")
    assert len(encoder.seen) == 6


async def test_embedder_documents_and_category_vectors() -> None:
    cache, encoder = embedder()
    empty = await cache.documents([])
    assert empty.shape == (0, 4)
    assert encoder.seen == []
    vectors = await cache.documents(["one", "two"])
    assert vectors.shape == (2, 4)
    categories = await cache.category_vectors()
    assert categories.shape == (10, 4)
    assert await cache.category_vectors() is categories
    assert encoder.seen == ["one", "two", *category_texts()]
