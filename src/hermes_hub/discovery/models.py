from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from hermes_hub.db.base import Base
from hermes_hub.kit.time import utcnow

# Created by the migration only where pgvector exists; the mapping leaves them out.
PGVECTOR_COLUMN = "embedding_vec"
PGVECTOR_INDEX = "ix_agent_search_docs_embedding_vec"
UNMAPPED_SCHEMA_OBJECTS = frozenset({PGVECTOR_COLUMN, PGVECTOR_INDEX})


class PgVector(UserDefinedType[object]):
    """pgvector's type, named so that reflecting the table knows it."""

    cache_ok = True

    def __init__(self, dimensions: int | None = None) -> None:
        self.dimensions = dimensions

    def get_col_spec(self, **kw: object) -> str:
        return "vector" if self.dimensions is None else f"vector({self.dimensions})"


ischema_names.setdefault("vector", PgVector)


class AgentSearchDoc(Base):
    """What discovery knows about one agent: its document's hash, embedding and category.

    On PostgreSQL with pgvector the migration adds ``embedding_vec vector(384)`` with an
    HNSW index; it is written and read with SQL of its own, not through this mapping.
    """

    __tablename__ = "agent_search_docs"

    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    content_hash: Mapped[str] = mapped_column(String(64))
    # The embedding model's name, or "" when the document was indexed without one.
    model: Mapped[str] = mapped_column(String(64), default="")
    # float32, little-endian, L2-normalised.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The labels "why it matched" can quote (tags, skills, sentences) and their embeddings.
    facets: Mapped[list[str]] = mapped_column(default=list)
    facet_vectors: Mapped[bytes | None] = mapped_column(LargeBinary)
    auto_category: Mapped[str | None] = mapped_column(String(32))
    length: Mapped[float] = mapped_column(Float)
    # From discovery_state.revision: in-process indexes load rows past what they have seen.
    revision: Mapped[int] = mapped_column(BigInteger, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentSearchTerm(Base):
    """The lexical index: one row per (term, agent) with the field-weighted frequency."""

    __tablename__ = "agent_search_terms"
    __table_args__ = (Index("ix_agent_search_terms_agent_id", "agent_id"),)

    term: Mapped[str] = mapped_column(String(48), primary_key=True)
    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    weight: Mapped[float] = mapped_column(Float)


class DiscoveryState(Base):
    """One row. Its revision is taken under a row lock, so revisions commit in order."""

    __tablename__ = "discovery_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class Favorite(Base):
    __tablename__ = "user_favorites"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
