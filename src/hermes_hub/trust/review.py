"""The integrity side of trust: the scan that flags rings and sybils, rater reliability,
admin review of flags, and bans with their whitewash check at enrollment."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.config import Settings
from hermes_hub.errors import ConflictError, HubError, NotFoundError
from hermes_hub.identity.models import Agent, AgentApiKey, AgentStatus, User
from hermes_hub.mesh.models import AgentMetric
from hermes_hub.trust import integrity, service
from hermes_hub.trust.models import (
    AgentBan,
    FlaggedContract,
    RaterWeight,
    Rating,
    TrustFlag,
)

FLAG_OPEN = "open"
FLAG_CONFIRMED = "confirmed"


class FlagNotFoundError(NotFoundError):
    code = "trust_flag_not_found"


def name_key(name: str) -> str:
    """A name as compared for re-enrollment: case, spacing and punctuation do not matter."""
    return re.sub(r"[\W_]+", "", name.casefold())[:100]


# ---- the scan ----


@dataclass(frozen=True)
class ScanReport:
    trades: int
    findings: int
    new_flags: int
    contracts_held_back: int
    raters_down_weighted: int
    agents_recomputed: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


async def _trades(session: AsyncSession) -> list[integrity.Trade]:
    rows = await session.execute(
        select(
            AgentMetric.contract_id,
            AgentMetric.requester_owner_id,
            AgentMetric.agent_owner_id,
            AgentMetric.earned_units,
        ).where(
            AgentMetric.requester_owner_id.is_not(None),
            AgentMetric.agent_owner_id.is_not(None),
        )
    )
    return [
        integrity.Trade(contract_id=str(c), payer=str(p), payee=str(q), units=int(u or 0))
        for c, p, q, u in rows
    ]


async def _accounts(
    session: AsyncSession, *, now: datetime, params: integrity.IntegrityParams
) -> list[integrity.Account]:
    young = now - timedelta(days=params.new_account_days)
    agents: dict[uuid.UUID, list[str]] = defaultdict(list)
    users = {
        row[0]: row[1]
        for row in await session.execute(
            select(User.id, User.created_at).where(User.created_at >= young)
        )
    }
    if users:
        for owner_id, agent_id in await session.execute(
            select(Agent.owner_id, Agent.id).where(Agent.owner_id.in_(list(users)))
        ):
            agents[owner_id].append(str(agent_id))
    return [
        integrity.Account(id=str(user_id), created_at=created_at, agent_ids=tuple(agents[user_id]))
        for user_id, created_at in users.items()
    ]


async def _agents_of(session: AsyncSession, contract_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    if not contract_ids:
        return set()
    found: set[uuid.UUID] = set()
    for start in range(0, len(contract_ids), 1000):
        chunk = contract_ids[start : start + 1000]
        found.update(
            await session.scalars(
                select(AgentMetric.agent_id).where(AgentMetric.contract_id.in_(chunk))
            )
        )
    return found


async def update_rater_weights(
    session: AsyncSession, *, params: integrity.IntegrityParams, now: datetime
) -> tuple[int, set[uuid.UUID]]:
    """Store every rater's reliability; return how many are down-weighted and the agents
    whose ratings changed weight."""
    rows = (
        await session.execute(select(Rating.rater_owner_id, Rating.agent_id, Rating.stars))
    ).all()
    reliability = integrity.rater_reliability(
        [integrity.RatingSample(rater=str(r), agent=str(a), stars=s) for r, a, s in rows], params
    )
    stored = {row.rater_owner_id: row for row in await session.scalars(select(RaterWeight))}
    changed_raters: set[uuid.UUID] = set()
    for rater_text, found in reliability.items():
        rater = uuid.UUID(rater_text)
        row = stored.get(rater)
        if (row.weight if row is not None else 1.0) != found.weight:
            changed_raters.add(rater)
        if row is None:
            session.add(
                RaterWeight(
                    rater_owner_id=rater,
                    weight=found.weight,
                    compared_ratings=found.compared,
                    mean_deviation=found.mean_deviation,
                    updated_at=now,
                )
            )
        else:
            row.weight = found.weight
            row.compared_ratings = found.compared
            row.mean_deviation = found.mean_deviation
            row.updated_at = now
    await session.flush()
    affected = {a for r, a, _ in rows if r in changed_raters}
    down = sum(1 for found in reliability.values() if found.weight < 1.0)
    return down, affected


async def scan(session: AsyncSession, *, settings: Settings, now: datetime) -> ScanReport:
    """Flag suspicious trade, re-weigh raters, and recompute the agents this changes."""
    params = integrity.IntegrityParams()
    trades = await _trades(session)
    accounts = await _accounts(session, now=now, params=params)
    findings = integrity.scan(trades, accounts, now=now, params=params)
    new_flags = 0
    held_back: set[uuid.UUID] = set()
    for finding in findings:
        flag = await session.scalar(
            select(TrustFlag).where(TrustFlag.fingerprint == finding.fingerprint)
        )
        if flag is not None and flag.status == service.FLAG_DISMISSED:
            continue  # an admin already looked at this group and cleared it
        if flag is None:
            flag = TrustFlag(
                kind=finding.kind,
                status=FLAG_OPEN,
                fingerprint=finding.fingerprint,
                accounts=sorted(finding.accounts),
                agent_ids=[],
                detail=finding.detail,
                created_at=now,
                updated_at=now,
            )
            session.add(flag)
            await session.flush()
            new_flags += 1
        known = set(
            await session.scalars(
                select(FlaggedContract.contract_id).where(FlaggedContract.flag_id == flag.id)
            )
        )
        fresh = sorted({uuid.UUID(c) for c in finding.contract_ids} - known)
        for contract_id in fresh:
            session.add(FlaggedContract(flag_id=flag.id, contract_id=contract_id))
        held_back.update(fresh)
        agent_ids = await _agents_of(session, sorted(known | set(fresh)))
        flag.agent_ids = sorted(str(a) for a in agent_ids)
        flag.detail = finding.detail
        flag.updated_at = now
    await session.flush()
    down, rating_agents = await update_rater_weights(session, params=params, now=now)
    affected = await _agents_of(session, sorted(held_back)) | rating_agents
    if affected:
        await service.recompute(session, sorted(affected), settings=settings, now=now)
    return ScanReport(
        trades=len(trades),
        findings=len(findings),
        new_flags=new_flags,
        contracts_held_back=len(held_back),
        raters_down_weighted=down,
        agents_recomputed=len(affected),
    )


# ---- admin review ----


async def list_flags(
    session: AsyncSession, *, status: str | None, limit: int, offset: int
) -> tuple[Sequence[TrustFlag], int]:
    query = select(TrustFlag)
    counter = select(func.count()).select_from(TrustFlag)
    if status is not None:
        query = query.where(TrustFlag.status == status)
        counter = counter.where(TrustFlag.status == status)
    flags = (
        await session.scalars(
            query.order_by(TrustFlag.created_at.desc(), TrustFlag.id).limit(limit).offset(offset)
        )
    ).all()
    return flags, int(await session.scalar(counter) or 0)


async def flag_contract_count(
    session: AsyncSession, flag_ids: Sequence[uuid.UUID]
) -> dict[Any, int]:
    if not flag_ids:
        return {}
    rows = await session.execute(
        select(FlaggedContract.flag_id, func.count())
        .where(FlaggedContract.flag_id.in_(flag_ids))
        .group_by(FlaggedContract.flag_id)
    )
    return {flag_id: int(count) for flag_id, count in rows}


async def resolve_flag(
    session: AsyncSession,
    *,
    flag_id: uuid.UUID,
    decision: str,
    note: str | None,
    admin: User,
    settings: Settings,
    now: datetime,
) -> TrustFlag:
    """Confirm (the outcomes stay out for good) or dismiss (they count again)."""
    flag = await session.get(TrustFlag, flag_id, with_for_update=True)
    if flag is None:
        raise FlagNotFoundError("No such trust flag.")
    if flag.status != FLAG_OPEN:
        raise ConflictError(f"This flag was already {flag.status}.", code="flag_already_resolved")
    flag.status = FLAG_CONFIRMED if decision == "confirm" else service.FLAG_DISMISSED
    flag.resolved_at = now
    flag.resolved_by = admin.id
    flag.resolution_note = note
    flag.updated_at = now
    await session.flush()
    affected = {uuid.UUID(a) for a in flag.agent_ids}
    if flag.subject_agent_id is not None:
        affected.add(flag.subject_agent_id)
    if affected:
        await service.recompute(session, sorted(affected), settings=settings, now=now)
    return flag


# ---- bans and whitewashing ----


async def ban_agent(
    session: AsyncSession,
    *,
    agent_id: uuid.UUID,
    reason: str,
    admin: User,
    settings: Settings,
    now: datetime,
) -> Agent:
    """Ban an agent: it stops working (keys revoked, status banned), and its key and name
    are remembered so a re-enrollment starts on probation at the prior."""
    agent = await session.get(Agent, agent_id, with_for_update=True)
    if agent is None:
        raise HubError("No such agent.", status=404, code="agent_not_found")
    if agent.status == AgentStatus.BANNED.value:
        raise ConflictError("This agent is already banned.", code="agent_already_banned")
    session.add(
        AgentBan(
            agent_id=agent.id,
            public_key=agent.public_key,
            name_key=name_key(agent.name),
            owner_id=agent.owner_id,
            reason=reason,
            banned_by=admin.id,
            banned_at=now,
        )
    )
    agent.status = AgentStatus.BANNED.value
    # The key is released (the ban row keeps it) so the same key can enroll again, and be
    # recognised when it does.
    agent.public_key = f"banned:{agent.id.hex}"
    agent.updated_at = now
    await session.execute(
        update(AgentApiKey)
        .where(AgentApiKey.agent_id == agent.id, AgentApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.flush()
    await service.recompute(session, [agent.id], settings=settings, now=now)
    return agent


async def check_banned_identity(
    session: AsyncSession, *, agent: Agent, settings: Settings, now: datetime
) -> TrustFlag | None:
    """At enrollment and on rename: an agent with a banned agent's key or name is put on
    probation (its trust capped at the prior) until an admin dismisses the flag; its score
    is recomputed either way. A match an admin already ruled on is not raised again."""
    key = name_key(agent.name)
    bans = (
        await session.scalars(
            select(AgentBan)
            .where((AgentBan.public_key == agent.public_key) | (AgentBan.name_key == key))
            .order_by(AgentBan.banned_at, AgentBan.id)
        )
    ).all()
    flag = None
    if bans:
        same_key = any(ban.public_key == agent.public_key for ban in bans)
        fingerprint = (
            f"{service.FLAG_WHITEWASH}:{agent.id.hex}:"
            + ("key" if same_key else f"name:{key}")[:40]
        )
        existing = await session.scalar(
            select(TrustFlag.id).where(TrustFlag.fingerprint == fingerprint)
        )
        if existing is None:
            flag = TrustFlag(
                kind=service.FLAG_WHITEWASH,
                status=FLAG_OPEN,
                fingerprint=fingerprint,
                subject_agent_id=agent.id,
                accounts=[str(agent.owner_id)],
                agent_ids=[str(agent.id)],
                detail={
                    "banned_agents": [str(ban.agent_id) for ban in bans],
                    "same_key": same_key,
                    "same_name": any(ban.name_key == key for ban in bans),
                    "name": agent.name,
                },
                created_at=now,
                updated_at=now,
            )
            session.add(flag)
            await session.flush()
    await service.recompute(session, [agent.id], settings=settings, now=now)
    return flag
