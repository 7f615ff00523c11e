"""Discovery services: keeping each agent's search document current, and searching.

``index_agent`` runs in the transaction that changed the agent. ``search`` gathers
candidates from the lexical index (in-process BM25 postings, ``lexicon``) and the vector
index (pgvector or the in-process matrix), keeps those the database says the viewer may see
and that pass the filters, ranks them with ``ranking`` (the published formula) from a few
columns, and loads the rows of the ones it returns.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.config import Settings
from hermes_hub.db.session import Database, after_commit, dialect_name, run_after_commit
from hermes_hub.discovery import ranking
from hermes_hub.discovery.categories import lexical_category, nearest_category
from hermes_hub.discovery.engine import (
    Embedder,
    LocalIndex,
    SemanticMode,
    SemanticStatus,
    Vector,
    VectorMatrix,
    from_bytes,
    load_encoder,
    pgvector_literal,
    pgvector_ready,
    to_bytes,
)
from hermes_hub.discovery.lexicon import LexicalMatch
from hermes_hub.discovery.models import (
    PGVECTOR_COLUMN,
    AgentSearchDoc,
    AgentSearchTerm,
    DiscoveryState,
)
from hermes_hub.discovery.text import (
    SearchDocument,
    build_document,
    card_skills,
    query_phrase,
    tag_words,
    tags_in,
    terms,
)
from hermes_hub.identity.models import Agent, AgentStatus, OrgMembership
from hermes_hub.identity.permissions import permitted_condition
from hermes_hub.identity.principal import Principal
from hermes_hub.identity.service import capability_condition
from hermes_hub.kit.time import utcnow
from hermes_hub.trust.formula import PRIOR
from hermes_hub.trust.models import TrustScore

logger = structlog.get_logger(__name__)

# Which of some agents are online now (``events.presence.Presence.online``).
OnlineLookup = Callable[[Sequence[uuid.UUID]], Awaitable[set[uuid.UUID]]]

# Candidates from each side: five per wanted result, at least 50, at most 200.
CANDIDATES_PER_RESULT = 5
MIN_CANDIDATES = 50
MAX_CANDIDATES = 200
MAX_FACETS = 12
PGVECTOR_DIMENSION = 384
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class Discovery:
    """The process's discovery engine: the embedder (if any), the mode and the matrix."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self.embedder: Embedder | None = None
        self.mode = SemanticMode.OFF
        self.reason = "not started"
        self.index = LocalIndex(matrix=None)

    async def start(self) -> None:
        encoder, reason = await asyncio.to_thread(
            load_encoder, self.settings.semantic_search, self.settings.semantic_model_dir
        )
        if encoder is None:
            self.mode, self.reason = SemanticMode.OFF, reason
            logger.warning("semantic_search_off", reason=reason)
            async with self.database.read_sessions() as session:
                await self.index.refresh(session, force=True)
            return
        self.embedder = Embedder(encoder)
        async with self.database.read_sessions() as session:
            use_pgvector = (
                dialect_name(session) == "postgresql"
                and encoder.dimension == PGVECTOR_DIMENSION
                and await pgvector_ready(session)
            )
            if use_pgvector:
                self.mode, self.reason = SemanticMode.PGVECTOR, ""
            else:
                self.index = LocalIndex(matrix=VectorMatrix(encoder.dimension))
                self.mode = SemanticMode.IN_PROCESS
                self.reason = (
                    "pgvector is not available in this database"
                    if dialect_name(session) == "postgresql"
                    else ""
                )
            await self.index.refresh(session, force=True)

    @property
    def matrix(self) -> VectorMatrix | None:
        return self.index.matrix

    def status(self) -> SemanticStatus:
        return SemanticStatus(
            mode=self.mode,
            model=self.embedder.model_name if self.embedder else None,
            reason=self.reason,
            indexed_vectors=len(self.matrix) if self.matrix is not None else None,
        )

    @property
    def semantic(self) -> bool:
        return self.embedder is not None and self.mode is not SemanticMode.OFF


# ---- indexing ----


def _facets(agent: Agent, document: SearchDocument) -> list[str]:
    labels: list[str] = [tag_words(tag) for tag in document.tags]
    for skill in card_skills(agent.agent_metadata):
        if skill.name:
            labels.append(f"{skill.name}: {skill.description}".strip(": ")[:200])
    sentences = [s.strip() for s in _SENTENCE_END.split(agent.description) if s.strip()]
    labels.extend(sentence[:200] for sentence in sentences[:3])
    return list(dict.fromkeys(label for label in labels if label))[:MAX_FACETS]


async def _next_revision(session: AsyncSession) -> int:
    # The row lock orders revisions by commit, so an in-process index never skips one.
    take = (
        update(DiscoveryState)
        .where(DiscoveryState.id == 1)
        .values(revision=DiscoveryState.revision + 1)
        .returning(DiscoveryState.revision)
    )
    revision = await session.scalar(take)
    if revision is None:
        # The migration creates the row; if it is gone, concurrent first writers must not
        # both insert it (the loser would fail with a unique violation).
        dialect_insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
        await session.execute(
            dialect_insert(DiscoveryState)
            .values(id=1, revision=0)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        revision = await session.scalar(take)
    if revision is None:  # the insert above guarantees the row within this transaction
        raise RuntimeError("discovery_state has no row")
    return int(revision)


@dataclass(frozen=True)
class PreparedDocument:
    """An agent's search document with its vectors, computed before any write."""

    document: SearchDocument
    model: str
    facets: list[str]
    embedding: Vector | None
    facet_vectors: Vector | None
    category: str


def _document_of(agent: Agent) -> SearchDocument:
    return build_document(
        name=agent.name,
        description=agent.description,
        capabilities=agent.capabilities,
        metadata=agent.agent_metadata,
    )


async def prepare(
    discovery: Discovery, agent: Agent, document: SearchDocument | None = None
) -> PreparedDocument:
    document = document or _document_of(agent)
    facets = _facets(agent, document)
    if discovery.embedder is None:
        return PreparedDocument(
            document=document,
            model="",
            facets=facets,
            embedding=None,
            facet_vectors=None,
            category=lexical_category(document.weighted_terms) or "automation",
        )
    vectors = await discovery.embedder.documents([document.text, *facets])
    return PreparedDocument(
        document=document,
        model=discovery.embedder.model_name,
        facets=facets,
        embedding=vectors[0],
        facet_vectors=vectors[1:],
        category=nearest_category(vectors[0], await discovery.embedder.category_vectors()),
    )


def _model_name(discovery: Discovery) -> str:
    return discovery.embedder.model_name if discovery.embedder else ""


async def index_agent(
    session: AsyncSession, discovery: Discovery, agent: Agent, *, force: bool = False
) -> bool:
    """Bring the agent's search document up to date; return whether anything changed.

    Runs in the caller's transaction. The text is re-embedded only when it changed (or the
    model did), so edits to price or visibility cost one lookup.
    """
    existing = await session.get(AgentSearchDoc, agent.id)
    document = _document_of(agent)
    if (
        not force
        and existing is not None
        and existing.content_hash == document.content_hash
        and existing.model == _model_name(discovery)
    ):
        return False
    await store(session, discovery, agent.id, await prepare(discovery, agent, document), existing)
    return True


async def store(
    session: AsyncSession,
    discovery: Discovery,
    agent_id: uuid.UUID,
    prepared: PreparedDocument,
    existing: AgentSearchDoc | None,
) -> None:
    document = prepared.document
    revision = await _next_revision(session)
    values: dict[str, Any] = {
        "content_hash": document.content_hash,
        "model": prepared.model,
        "embedding": to_bytes(prepared.embedding) if prepared.embedding is not None else None,
        "facets": prepared.facets,
        "facet_vectors": (
            to_bytes(prepared.facet_vectors) if prepared.facet_vectors is not None else None
        ),
        "auto_category": prepared.category,
        "length": document.length,
        "revision": revision,
        "updated_at": utcnow(),
    }
    if existing is None:
        await session.execute(insert(AgentSearchDoc).values(agent_id=agent_id, **values))
    else:
        await session.execute(
            update(AgentSearchDoc).where(AgentSearchDoc.agent_id == agent_id).values(**values)
        )
    await session.execute(delete(AgentSearchTerm).where(AgentSearchTerm.agent_id == agent_id))
    if document.weighted_terms:
        await session.execute(
            insert(AgentSearchTerm),
            [
                {"term": term, "agent_id": agent_id, "weight": weight}
                for term, weight in document.weighted_terms.items()
            ],
        )
    if discovery.mode is SemanticMode.PGVECTOR:
        vector = prepared.embedding
        await session.execute(
            text(
                f"UPDATE agent_search_docs SET {PGVECTOR_COLUMN} = CAST(:vector AS vector) "  # noqa: S608 - constant column
                "WHERE agent_id = :agent_id"
            ),
            {
                "vector": pgvector_literal(vector) if vector is not None else None,
                "agent_id": agent_id,
            },
        )
    after_commit(session, discovery.index.invalidate)


async def reindex(
    database: Database, discovery: Discovery, *, force: bool = False, batch_size: int = 64
) -> int:
    """Index every agent whose document is missing or stale; return how many were written.

    Each batch is read, then embedded with no transaction open, then written in a short
    transaction that skips any agent edited meanwhile (its own edit indexed it).
    """
    written = 0
    last: uuid.UUID | None = None
    model = _model_name(discovery)
    while True:
        async with database.read_sessions() as session:
            query = (
                select(Agent, AgentSearchDoc.content_hash, AgentSearchDoc.model)
                .outerjoin(AgentSearchDoc, AgentSearchDoc.agent_id == Agent.id)
                .order_by(Agent.id)
                .limit(batch_size)
            )
            if last is not None:
                query = query.where(Agent.id > last)
            rows = (await session.execute(query)).all()
        if not rows:
            return written
        last = rows[-1][0].id
        documents = [(agent, _document_of(agent), hash_, model_) for agent, hash_, model_ in rows]
        prepared = [
            (agent.id, await prepare(discovery, agent, document))
            for agent, document, content_hash, indexed_model in documents
            if force or content_hash != document.content_hash or indexed_model != model
        ]
        if not prepared:
            continue
        async with database.writer() as session:
            for agent_id, document in prepared:
                agent = await session.get(Agent, agent_id)
                if (
                    agent is None
                    or _document_of(agent).content_hash != document.document.content_hash
                ):
                    continue
                existing = await session.get(AgentSearchDoc, agent_id)
                await store(session, discovery, agent_id, document, existing)
                written += 1
            await session.commit()
            run_after_commit(session)


# ---- who sees what ----


@dataclass(frozen=True)
class Viewer:
    """Whose search this is: an anonymous visitor sees public agents only."""

    user_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    agent_org_id: uuid.UUID | None = None
    # The agent's owner: an agent acts for them, as in the call ACL.
    agent_owner_id: uuid.UUID | None = None
    is_admin: bool = False

    @classmethod
    def of(cls, principal: Principal | None) -> Viewer:
        if principal is None:
            return cls()
        if principal.agent is not None:
            return cls(
                agent_id=principal.agent.id,
                agent_org_id=principal.agent.organization_id,
                agent_owner_id=principal.agent.owner_id,
            )
        return cls(
            user_id=principal.user.id if principal.user else None, is_admin=principal.is_admin
        )


def visible_condition(viewer: Viewer) -> ColumnElement[bool]:
    """Everyone sees public agents. A private one is seen by whoever the call ACL lets call
    it without asking: its owner (and the owner's agents), its organization's members and
    agents, itself, admins, and the subjects of an allow rule on it or on its organization."""
    if viewer.is_admin:
        return true()
    allowed: list[ColumnElement[bool]] = [Agent.is_public.is_(True)]
    if viewer.user_id is not None:
        memberships = select(OrgMembership.organization_id).where(
            OrgMembership.user_id == viewer.user_id
        )
        allowed.append(Agent.owner_id == viewer.user_id)
        allowed.append(Agent.organization_id.in_(memberships))
        allowed.append(
            permitted_condition(user_id=viewer.user_id, agent_id=None, org_ids=memberships)
        )
    if viewer.agent_id is not None:
        agent_orgs = [viewer.agent_org_id] if viewer.agent_org_id is not None else []
        allowed.append(Agent.id == viewer.agent_id)
        if viewer.agent_owner_id is not None:
            allowed.append(Agent.owner_id == viewer.agent_owner_id)
        if viewer.agent_org_id is not None:
            allowed.append(Agent.organization_id == viewer.agent_org_id)
        allowed.append(
            permitted_condition(
                user_id=viewer.agent_owner_id, agent_id=viewer.agent_id, org_ids=agent_orgs
            )
        )
    return or_(*allowed)


# ---- searching ----


@dataclass(frozen=True)
class Filters:
    max_price_units: int | None = None
    min_reputation: float | None = None
    organization_id: uuid.UUID | None = None
    available_now: bool = False
    capability: str | None = None
    category: str | None = None


def effective_category() -> ColumnElement[Any]:
    return func.coalesce(Agent.category, AgentSearchDoc.auto_category)


def filter_condition(
    session: AsyncSession, viewer: Viewer, filters: Filters
) -> ColumnElement[bool]:
    """Everything but availability, over ``agents`` outer-joined with ``trust_scores`` and
    ``agent_search_docs``."""
    conditions: list[ColumnElement[bool]] = [
        Agent.status == AgentStatus.ACTIVE.value,
        visible_condition(viewer),
    ]
    if filters.max_price_units is not None:
        # An agent without a list price quotes per contract: it is not excluded by price.
        conditions.append(
            or_(Agent.base_price_units.is_(None), Agent.base_price_units <= filters.max_price_units)
        )
    if filters.min_reputation is not None:
        conditions.append(func.coalesce(TrustScore.trust, PRIOR) >= filters.min_reputation)
    if filters.organization_id is not None:
        conditions.append(Agent.organization_id == filters.organization_id)
    if filters.capability is not None:
        conditions.append(
            capability_condition(session).bindparams(cap=filters.capability.lower())  # type: ignore[arg-type]
        )
    if filters.category is not None:
        conditions.append(effective_category() == filters.category)
    return and_(*conditions)


@dataclass
class Hit:
    agent: Agent
    trust: TrustScore | None
    category: str | None
    relevance: ranking.Relevance
    score: float = 0.0
    online: bool = False
    why: str = ""
    matched: list[str] = field(default_factory=list)

    @property
    def trust_value(self) -> float:
        return self.trust.trust if self.trust is not None else PRIOR


@dataclass
class _Ranked:
    """A candidate that passed the filters, ranked from columns before any row is loaded."""

    agent_id: uuid.UUID
    trust: float
    category: str | None
    relevance: ranking.Relevance
    matched: list[str]
    score: float = 0.0
    online: bool = False


async def _semantic_pgvector(
    session: AsyncSession, vector: Vector, condition: ColumnElement[bool], k: int
) -> dict[uuid.UUID, float]:
    literal_vector = pgvector_literal(vector)
    distance = text(f"agent_search_docs.{PGVECTOR_COLUMN} <=> CAST(:query_vector AS vector)")
    # Filtered HNSW scans keep going until k rows pass the filter (pgvector 0.8).
    await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    await session.execute(text("SET LOCAL hnsw.ef_search = 200"))
    rows = await session.execute(
        select(Agent.id, text(f"1 - ({distance.text}) AS similarity"))
        .select_from(AgentSearchDoc)
        .join(Agent, Agent.id == AgentSearchDoc.agent_id)
        .outerjoin(TrustScore, TrustScore.agent_id == Agent.id)
        .where(condition, text(f"agent_search_docs.{PGVECTOR_COLUMN} IS NOT NULL"))
        .order_by(distance)
        .limit(k)
        .params(query_vector=literal_vector)
    )
    return {agent_id: float(similarity) for agent_id, similarity in rows}


async def _similarities_pgvector(
    session: AsyncSession, vector: Vector, agent_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, float]:
    if not agent_ids:
        return {}
    rows = await session.execute(
        select(
            AgentSearchDoc.agent_id,
            text(f"1 - ({PGVECTOR_COLUMN} <=> CAST(:query_vector AS vector))"),
        )
        .where(
            AgentSearchDoc.agent_id.in_(list(agent_ids)),
            text(f"{PGVECTOR_COLUMN} IS NOT NULL"),
        )
        .params(query_vector=pgvector_literal(vector))
    )
    return {agent_id: float(similarity) for agent_id, similarity in rows}


@dataclass
class SearchResult:
    hits: list[Hit]
    semantic: bool
    mode: str


async def search(
    session: AsyncSession,
    discovery: Discovery,
    *,
    viewer: Viewer,
    query: str,
    filters: Filters,
    limit: int,
    online: OnlineLookup | None = None,
    use_lexical: bool = True,
    use_semantic: bool = True,
) -> SearchResult:
    """The ``limit`` best agents for ``query`` that the viewer may see and pass ``filters``."""
    query_terms = Counter(terms(query)) if use_lexical else Counter()
    condition = filter_condition(session, viewer, filters)
    embedder = discovery.embedder if use_semantic and discovery.semantic else None
    semantic_on = embedder is not None
    mode = discovery.mode.value if semantic_on else "lexical"
    breadth = min(MAX_CANDIDATES, max(MIN_CANDIDATES, CANDIDATES_PER_RESULT * limit))
    index = discovery.index
    await index.refresh(session)
    vector = await embedder.query(query) if embedder is not None else None
    among: list[uuid.UUID] | None = None
    if filters.organization_id is not None or filters.capability or filters.category:
        # Narrow filters: rank exactly within the agents they leave.
        among = await _eligible_ids(session, condition)
    while True:
        semantic = await _semantic(session, discovery, vector, condition, among, breadth)
        nearest = list(semantic)
        lexical = index.terms.score(query_terms, breadth, include=semantic, among=among)
        missing = [agent_id for agent_id in lexical if agent_id not in semantic]
        if vector is not None and missing:
            if discovery.mode is SemanticMode.PGVECTOR:
                semantic.update(await _similarities_pgvector(session, vector, missing))
            elif discovery.matrix is not None:
                semantic.update(discovery.matrix.similarities(vector, missing))
        candidates = list(dict.fromkeys([*semantic, *lexical]))
        if not candidates:
            return SearchResult([], semantic_on, mode)
        rows = (
            await session.execute(
                select(Agent.id, TrustScore.trust, effective_category())
                .outerjoin(TrustScore, TrustScore.agent_id == Agent.id)
                .outerjoin(AgentSearchDoc, AgentSearchDoc.agent_id == Agent.id)
                .where(Agent.id.in_(candidates), condition)
            )
        ).all()
        # The in-process indexes rank every agent and the viewer's filters apply afterwards:
        # if hidden or filtered agents crowded the best ones out, rank again among the
        # eligible agents only (pgvector filters inside its index scan).
        eligible = {agent_id for agent_id, _, _ in rows}
        crowded = (len(lexical) >= breadth and len(eligible.intersection(lexical)) < limit) or (
            discovery.mode is SemanticMode.IN_PROCESS
            and len(nearest) >= breadth
            and len(eligible.intersection(nearest)) < limit
        )
        if among is None and crowded:
            among = await _eligible_ids(session, condition)
            continue
        break

    phrase = query_phrase(query)
    best_bm25 = max(
        (lexical[agent_id].bm25 for agent_id, _, _ in rows if agent_id in lexical), default=0.0
    )
    no_match = LexicalMatch(0.0, 0.0)
    ranked: list[_Ranked] = []
    for agent_id, trust, category in rows:
        tags = tags_in(phrase, index.terms.tags(agent_id)) if use_lexical else []
        match = lexical.get(agent_id, no_match)
        fused = ranking.relevance(
            semantic=semantic.get(agent_id, 0.0) if semantic_on else None,
            bm25_score=match.bm25,
            best_bm25=best_bm25,
            coverage=match.coverage,
            tag_match=bool(tags),
        )
        if fused.relevance >= ranking.MIN_RELEVANCE:
            ranked.append(
                _Ranked(agent_id, trust if trust is not None else PRIOR, category, fused, tags)
            )

    present = await online([hit.agent_id for hit in ranked]) if online and ranked else set()
    if filters.available_now:
        ranked = [hit for hit in ranked if hit.agent_id in present]
    for hit in ranked:
        hit.online = hit.agent_id in present
        hit.score = ranking.final_score(hit.relevance.relevance, trust=hit.trust, online=hit.online)
    ranked.sort(key=lambda hit: (-hit.score, -hit.relevance.relevance, str(hit.agent_id)))
    hits = await _load_hits(session, ranked[:limit], query_terms, vector)
    return SearchResult(hits, semantic_on, mode)


async def _semantic(
    session: AsyncSession,
    discovery: Discovery,
    vector: Vector | None,
    condition: ColumnElement[bool],
    among: list[uuid.UUID] | None,
    candidates: int,
) -> dict[uuid.UUID, float]:
    """The agents nearest in meaning, with their cosine similarity."""
    if vector is None:
        return {}
    if discovery.mode is SemanticMode.PGVECTOR:
        return await _semantic_pgvector(session, vector, condition, candidates)
    if discovery.matrix is None:
        return {}
    return dict(discovery.matrix.top(vector, candidates, among=among))


async def _eligible_ids(session: AsyncSession, condition: ColumnElement[bool]) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(Agent.id)
        .outerjoin(TrustScore, TrustScore.agent_id == Agent.id)
        .outerjoin(AgentSearchDoc, AgentSearchDoc.agent_id == Agent.id)
        .where(condition)
    )
    return list(rows)


async def _load_hits(
    session: AsyncSession,
    ranked: list[_Ranked],
    query_terms: Counter[str],
    vector: Vector | None,
) -> list[Hit]:
    """The ranked agents' rows, each with one line on why it matched: the tag named in the
    query, else the closest facet, else the words it shares with the query."""
    if not ranked:
        return []
    rows = await session.execute(
        select(Agent, TrustScore, AgentSearchDoc.facets, AgentSearchDoc.facet_vectors)
        .outerjoin(TrustScore, TrustScore.agent_id == Agent.id)
        .outerjoin(AgentSearchDoc, AgentSearchDoc.agent_id == Agent.id)
        .where(Agent.id.in_([hit.agent_id for hit in ranked]))
    )
    loaded = {agent.id: (agent, trust, labels, raw) for agent, trust, labels, raw in rows}
    hits: list[Hit] = []
    for found in ranked:
        if found.agent_id not in loaded:
            continue  # gone since it was ranked
        agent, trust, labels, raw = loaded[found.agent_id]
        hit = Hit(
            agent=agent,
            trust=trust,
            category=found.category,
            relevance=found.relevance,
            score=found.score,
            online=found.online,
            matched=found.matched,
        )
        hit.why = _why(hit, labels or [], raw if vector is not None else None, query_terms, vector)
        hits.append(hit)
    return hits


def _why(
    hit: Hit,
    labels: list[str],
    raw: bytes | None,
    query_terms: Counter[str],
    vector: Vector | None,
) -> str:
    if hit.matched:
        return f"capability '{hit.matched[0]}' named in the query"
    if vector is not None and raw and labels:
        similarities = from_bytes(raw, vector.size) @ vector
        best = int(np.argmax(similarities))
        if best < len(labels):
            return f"close in meaning to '{labels[best]}'"
    shared = [
        tag for tag in hit.agent.capabilities if set(terms(tag_words(tag))) & set(query_terms)
    ]
    if shared:
        return f"capability '{shared[0]}' shares words with the query"
    words = [term for term in query_terms if term in set(terms(hit.agent.description))]
    return (
        f"description mentions {', '.join(repr(w) for w in words[:3])}"
        if words
        else "close in meaning to the agent's description"
    )
