"""The trust score the mesh reads when it filters and ranks bids.

Until the trust engine (computed from ``mesh_agent_metrics``) exists, every agent has the
prior, 0.5: the value the engine's Bayesian pull starts new agents at. Everything that
needs trust asks here, so the engine replaces one function.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

PRIOR_TRUST = 0.5


async def trust_scores(
    session: AsyncSession, agent_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, float]:
    return dict.fromkeys(agent_ids, PRIOR_TRUST)


async def trust_score(session: AsyncSession, agent_id: uuid.UUID) -> float:
    return (await trust_scores(session, [agent_id]))[agent_id]
