"""The numpy all-MiniLM-L6-v2 runtime: shapes, batching, truncation, errors, and agreement
with values computed by the real sentence-transformers (torch) on the same model files."""

from __future__ import annotations

import json
import math
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from hermes_hub.discovery.encoder import (
    MODEL_PACKAGE,
    ModelUnavailableError,
    SentenceEncoder,
    erf,
    find_model_dir,
    gelu,
)

MODEL_DIR = find_model_dir()
if MODEL_DIR is None:
    pytest.skip(f"the {MODEL_PACKAGE} model package is not installed", allow_module_level=True)

# First 8 dimensions of sentence-transformers 6.2.0 (torch 2.13.0 CPU) embeddings of these
# texts with the same model files, rounded to 5 decimals (see bench/encoder_parity.py).
REFERENCE_PREFIXES = {
    "I need help with my vacation": [
        0.07559, 0.01526, 0.07425, 0.02352, -0.01629, 0.06324, 0.03072, -0.04432,
    ],
    "An agent that reviews Python pull requests for security bugs.": [
        -0.11062, 0.0438, -0.07699, 0.01298, -0.00318, -0.0851, 0.03381, 0.00562,
    ],
    "": [-0.11884, 0.0483, -0.00255, -0.01101, 0.05195, 0.01029, 0.11543, 0.0007],
    # 362 tokens, so this one also checks truncation at max_seq_length (256).
    "The hub routes paid work between autonomous agents. " * 40: [
        0.03785, -0.05729, -0.03122, -0.00596, 0.01346, -0.00825, -0.01293, -0.00809,
    ],
}  # fmt: skip

MIXED_TEXTS = [
    "book a flight",
    "",
    "An agent that summarises long legal contracts and flags unusual indemnity clauses, "
    "with citations to the clause numbers it relies on.",
    "SQL",
    "translate German invoices into English and extract totals, VAT and due dates",
    "café résumé naïve 東京 🚀",
    "weather",
]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    assert MODEL_DIR is not None
    return SentenceEncoder.load(MODEL_DIR)


def test_find_model_dir_does_not_import_the_package() -> None:
    was_imported = MODEL_PACKAGE in sys.modules
    assert find_model_dir() == MODEL_DIR
    assert (MODEL_PACKAGE in sys.modules) == was_imported


def test_describes_the_model(encoder: SentenceEncoder) -> None:
    assert encoder.model_name == "all-MiniLM-L6-v2"
    assert encoder.dimension == 384
    assert encoder.max_tokens == 256


def test_shape_dtype_and_unit_rows(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(MIXED_TEXTS)
    assert vectors.shape == (len(MIXED_TEXTS), 384)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_no_texts_gives_an_empty_matrix(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_order_is_kept_and_batches_match_single_texts(encoder: SentenceEncoder) -> None:
    singles = np.vstack([encoder.encode([text]) for text in MIXED_TEXTS])
    for batch_size in (1, 2, 3, 32):
        batched = encoder.encode(MIXED_TEXTS, batch_size=batch_size)
        np.testing.assert_allclose(batched, singles, atol=1e-5)
    # Distinct texts give distinct rows, so a shuffled order would not pass the check above.
    assert np.all(np.abs(singles @ singles.T - np.eye(len(MIXED_TEXTS))) < 0.999)


def test_repeated_texts_give_identical_rows(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(["same text", "other", "same text"])
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)


def test_empty_string_is_the_cls_sep_embedding(encoder: SentenceEncoder) -> None:
    vector = encoder.encode([""])[0]
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    np.testing.assert_allclose(encoder.encode(["   "])[0], vector, atol=1e-6)


def test_long_text_is_truncated(encoder: SentenceEncoder) -> None:
    head = "agents negotiate contracts and settle payments " * 120
    long_a = (head + "alpha " * 2000)[:10_000]
    long_b = (head + "omega " * 2000)[:10_000]
    assert len(long_a) == 10_000
    vectors = encoder.encode([long_a, long_b])
    assert np.all(np.isfinite(vectors))
    # Only what lies beyond the first 256 tokens differs, and it is cut off.
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_semantic_sanity(encoder: SentenceEncoder) -> None:
    query, travel, database = encoder.encode(
        [
            "I need help with my vacation",
            "trip coordination and itinerary planning",
            "SQL query optimization",
        ]
    )
    assert float(query @ travel) > float(query @ database) + 0.1


def test_matches_sentence_transformers_reference(encoder: SentenceEncoder) -> None:
    texts = list(REFERENCE_PREFIXES)
    vectors = encoder.encode(texts)
    for text, vector in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(vector[:8], REFERENCE_PREFIXES[text], atol=1e-4)


def test_concurrent_calls_agree_with_sequential_ones(encoder: SentenceEncoder) -> None:
    inputs = [MIXED_TEXTS[index:] + MIXED_TEXTS[:index] for index in range(len(MIXED_TEXTS))]
    expected = [encoder.encode(texts) for texts in inputs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(encoder.encode, inputs))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_rejects_a_bare_string_and_bad_batch_size(encoder: SentenceEncoder) -> None:
    with pytest.raises(TypeError):
        encoder.encode("a single string")
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(["text"], batch_size=0)


def test_erf_and_gelu_are_accurate() -> None:
    grid = np.linspace(-6.0, 6.0, 200_001, dtype=np.float32)
    want = np.array([math.erf(float(value)) for value in grid])
    got = erf(grid)
    assert got.dtype == np.float32
    assert float(np.max(np.abs(got - want))) < 5e-7
    want_gelu = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in grid.tolist()])
    assert float(np.max(np.abs(gelu(grid) - want_gelu))) < 2e-6
    assert erf(np.zeros(3, dtype=np.float32)).tolist() == [0.0, 0.0, 0.0]


# ---------------------------------------------------------------------- load errors


def _copy_model(destination: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """A copy of the model directory without its 90 MB weights (tests write their own)."""
    assert MODEL_DIR is not None
    destination.mkdir()
    for name in ("config.json", "tokenizer.json", "sentence_bert_config.json"):
        if name not in skip:
            shutil.copy(MODEL_DIR / name, destination / name)
    return destination


def test_load_rejects_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        SentenceEncoder.load(tmp_path / "absent")


def test_load_names_missing_files(tmp_path: Path) -> None:
    model_dir = _copy_model(tmp_path / "model", skip=("tokenizer.json",))
    with pytest.raises(ModelUnavailableError, match=r"model\.safetensors, tokenizer\.json"):
        SentenceEncoder.load(model_dir)


@pytest.mark.parametrize(
    "content",
    [b"", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", b"\xff" * 64],
    ids=["empty", "bad-header", "huge-length"],
)
def test_load_rejects_corrupt_weights(tmp_path: Path, content: bytes) -> None:
    model_dir = _copy_model(tmp_path / "model")
    (model_dir / "model.safetensors").write_bytes(content)
    with pytest.raises(ModelUnavailableError, match=r"model\.safetensors"):
        SentenceEncoder.load(model_dir)


def test_load_rejects_truncated_weights(tmp_path: Path) -> None:
    assert MODEL_DIR is not None
    model_dir = _copy_model(tmp_path / "model")
    with (MODEL_DIR / "model.safetensors").open("rb") as source:
        (model_dir / "model.safetensors").write_bytes(source.read(1_000_000))
    with pytest.raises(ModelUnavailableError, match="corrupt offsets"):
        SentenceEncoder.load(model_dir)


def test_load_rejects_an_unsupported_config(tmp_path: Path) -> None:
    model_dir = _copy_model(tmp_path / "model")
    config = json.loads((model_dir / "config.json").read_text())
    config["hidden_act"] = "relu"
    (model_dir / "config.json").write_text(json.dumps(config))
    (model_dir / "model.safetensors").write_bytes(b"unused")
    with pytest.raises(ModelUnavailableError, match="hidden_act"):
        SentenceEncoder.load(model_dir)


def test_load_rejects_a_broken_tokenizer(tmp_path: Path) -> None:
    model_dir = _copy_model(tmp_path / "model")
    (model_dir / "tokenizer.json").write_text('{"version": "1.0"}')
    (model_dir / "model.safetensors").write_bytes(b"unused")
    with pytest.raises(ModelUnavailableError, match="tokenizer"):
        SentenceEncoder.load(model_dir)
