"""The in-process lexical index: BM25 postings over every agent's field-weighted terms.

Each process keeps one, loaded from ``agent_search_terms`` at start and brought up to date
from the rows whose revision is newer (as the vector matrix is). Scoring a query is a few
numpy operations over the postings of its terms, with no SQL and no statement to compile;
the database stays the source of truth for who may see an agent and whether it passes the
filters, which ``service.search`` checks on the candidates this index proposes.

Only the event loop touches an index and no method awaits between reading and using the
arrays, so requests share it without locks.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hermes_hub.discovery import ranking

_EMPTY_ROWS = np.zeros(0, dtype=np.int32)
_EMPTY_WEIGHTS = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class LexicalMatch:
    bm25: float
    coverage: float  # the share of the query's idf mass the agent's terms carry


@dataclass(frozen=True)
class Posting:
    rows: NDArray[np.int32]
    weights: NDArray[np.float32]


class TermIndex:
    """Agents' terms and tags, keyed by row; postings per term as numpy arrays."""

    def __init__(self) -> None:
        self._ids: list[uuid.UUID] = []
        self._row_of: dict[uuid.UUID, int] = {}
        self._lengths = np.zeros(0, dtype=np.float64)
        # Each agent's terms, to take its postings out when it is indexed again.
        self._terms_of: list[tuple[str, ...]] = []
        self._tags_of: list[tuple[str, ...]] = []
        self._postings: dict[str, Posting] = {}
        self._total_length = 0.0
        self._documents = 0

    def __len__(self) -> int:
        return self._documents

    @property
    def average_length(self) -> float:
        return self._total_length / self._documents if self._documents else 0.0

    def document_frequency(self, term: str) -> int:
        posting = self._postings.get(term)
        return 0 if posting is None else int(posting.rows.size)

    def tags(self, agent_id: uuid.UUID) -> tuple[str, ...]:
        row = self._row_of.get(agent_id)
        return () if row is None else self._tags_of[row]

    def upsert(
        self,
        documents: Iterable[tuple[uuid.UUID, Mapping[str, float], float, Iterable[str]]],
    ) -> None:
        """Add or replace agents: (id, term -> weight, document length, tags)."""
        added: dict[str, tuple[list[int], list[float]]] = {}
        removed: dict[str, set[int]] = {}
        for agent_id, weighted_terms, length, tags in documents:
            row = self._row_of.get(agent_id)
            if row is None:
                row = len(self._ids)
                self._ids.append(agent_id)
                self._row_of[agent_id] = row
                self._terms_of.append(())
                self._tags_of.append(())
                if row >= self._lengths.size:
                    grown = np.zeros(max(1024, 2 * self._lengths.size), dtype=np.float64)
                    grown[: self._lengths.size] = self._lengths
                    self._lengths = grown
                self._documents += 1
            else:
                self._total_length -= float(self._lengths[row])
                for term in self._terms_of[row]:
                    removed.setdefault(term, set()).add(row)
                    pending = added.get(term)
                    if pending is not None and row in pending[0]:
                        # Replaced twice in one batch: drop the first replacement too.
                        index = pending[0].index(row)
                        del pending[0][index], pending[1][index]
            self._lengths[row] = length
            self._total_length += float(length)
            # Interned: the vocabulary is shared by many agents, each row read brings a copy.
            self._terms_of[row] = tuple(sys.intern(term) for term in weighted_terms)
            self._tags_of[row] = tuple(tags)
            for term, weight in zip(self._terms_of[row], weighted_terms.values(), strict=True):
                rows, weights = added.setdefault(term, ([], []))
                rows.append(row)
                weights.append(weight)
        for term in removed.keys() | added.keys():
            self._rebuild(term, removed.get(term, set()), added.get(term, ([], [])))

    def _rebuild(self, term: str, removed: set[int], added: tuple[list[int], list[float]]) -> None:
        current = self._postings.get(term)
        rows = current.rows if current is not None else _EMPTY_ROWS
        weights = current.weights if current is not None else _EMPTY_WEIGHTS
        if removed and rows.size:
            keep = ~np.isin(rows, np.fromiter(removed, dtype=np.int32, count=len(removed)))
            rows, weights = rows[keep], weights[keep]
        if added[0]:
            rows = np.concatenate([rows, np.asarray(added[0], dtype=np.int32)])
            weights = np.concatenate([weights, np.asarray(added[1], dtype=np.float32)])
        if rows.size:
            self._postings[term] = Posting(rows, weights)
        else:
            self._postings.pop(term, None)

    def score(
        self,
        query_terms: Mapping[str, int],
        k: int,
        *,
        include: Iterable[uuid.UUID] = (),
        among: Iterable[uuid.UUID] | None = None,
    ) -> dict[uuid.UUID, LexicalMatch]:
        """BM25 (as ``ranking.bm25``) and coverage of the ``k`` best agents sharing a term
        with the query, and of those in ``include``; only agents ``among`` when given."""
        if not query_terms or not self._documents or k <= 0:
            return {}
        average_length = self.average_length
        query_idf = {
            term: ranking.idf(self._documents, self.document_frequency(term))
            for term in query_terms
        }
        total_idf = sum(query_idf.values())
        found = [(term, self._postings[term]) for term in query_terms if term in self._postings]
        if not found or total_idf <= 0 or average_length <= 0:
            return {}
        rows, inverse = np.unique(
            np.concatenate([posting.rows for _, posting in found]), return_inverse=True
        )
        norm = ranking.BM25_K1 * (
            1 - ranking.BM25_B + ranking.BM25_B * self._lengths[rows] / average_length
        )
        bm25 = np.zeros(rows.size, dtype=np.float64)
        covered = np.zeros(rows.size, dtype=np.float64)
        start = 0
        for term, posting in found:
            at = inverse[start : start + posting.rows.size]
            start += posting.rows.size
            frequency = posting.weights.astype(np.float64)
            bm25[at] += (
                query_terms[term]
                * query_idf[term]
                * frequency
                * (ranking.BM25_K1 + 1)
                / (frequency + norm[at])
            )
            covered[at] += query_idf[term]
        if among is not None:
            allowed = self._rows_of(among)
            keep = np.isin(rows, allowed)
            rows, bm25, covered = rows[keep], bm25[keep], covered[keep]
        if rows.size > k:
            best = np.argpartition(-bm25, k - 1)[:k]
            wanted = self._rows_of(include)
            if wanted.size:
                best = np.union1d(best, np.flatnonzero(np.isin(rows, wanted)))
            rows, bm25, covered = rows[best], bm25[best], covered[best]
        return {
            self._ids[int(row)]: LexicalMatch(float(value), min(1.0, float(part) / total_idf))
            for row, value, part in zip(rows, bm25, covered, strict=True)
        }

    def _rows_of(self, agent_ids: Iterable[uuid.UUID]) -> NDArray[np.int64]:
        return np.fromiter(
            (row for agent_id in agent_ids if (row := self._row_of.get(agent_id)) is not None),
            dtype=np.int64,
        )
