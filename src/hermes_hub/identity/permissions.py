"""Agent ACLs: rules on agents and organizations, access requests, and the call decision."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from hermes_hub.db.base import Base
from hermes_hub.db.session import dialect_name
from hermes_hub.errors import HubError, NotFoundError
from hermes_hub.events.log import publish, user_recipient
from hermes_hub.identity.acl import Caller, Decision, Rule, Target, decide
from hermes_hub.identity.errors import AgentNotFoundError
from hermes_hub.identity.models import (
    AccessRequest,
    AccessRequestStatus,
    Agent,
    AgentPermission,
    Organization,
    OrganizationPermission,
    OrgMembership,
    OrgRole,
    PermissionEffect,
    PermissionSubject,
    User,
    UserRole,
)
from hermes_hub.identity.principal import Principal
from hermes_hub.identity.service import require_org_role

MANAGING_ORG_ROLES = frozenset({OrgRole.OWNER.value, OrgRole.ADMIN.value})
ACCESS_REQUESTED_EVENT = "agent.access_requested"


# ---- who is calling ----


async def caller_of(session: AsyncSession, principal: Principal) -> Caller:
    """The caller's identity for ACL checks: an agent acts for its owner and its organization;
    a user for themself and every organization they belong to."""
    if principal.agent is not None:
        agent = principal.agent
        return Caller(
            user_id=agent.owner_id,
            agent_id=agent.id,
            organization_ids=frozenset({agent.organization_id} if agent.organization_id else ()),
        )
    if principal.user is None:
        raise ValueError("anonymous principal")
    memberships = await session.scalars(
        select(OrgMembership.organization_id).where(OrgMembership.user_id == principal.user.id)
    )
    return Caller(
        user_id=principal.user.id,
        organization_ids=frozenset(memberships),
        is_admin=principal.is_admin,
    )


def target_of(agent: Agent) -> Target:
    return Target(
        agent_id=agent.id,
        owner_id=agent.owner_id,
        organization_id=agent.organization_id,
        is_public=agent.is_public,
        requires_approval=agent.requires_approval,
        max_calls_per_hour=agent.max_calls_per_hour,
    )


OrgIds = Iterable[uuid.UUID] | Select[Any]


def _subject_pairs(
    user_id: uuid.UUID | None, agent_id: uuid.UUID | None, org_ids: Iterable[uuid.UUID]
) -> list[tuple[str, uuid.UUID]]:
    pairs = [(PermissionSubject.USER.value, user_id)] if user_id is not None else []
    if agent_id is not None:
        pairs.append((PermissionSubject.AGENT.value, agent_id))
    pairs.extend((PermissionSubject.ORGANIZATION.value, org) for org in org_ids)
    return pairs


def _names(
    subject_type: InstrumentedAttribute[str],
    subject_id: InstrumentedAttribute[uuid.UUID],
    pairs: Sequence[tuple[str, uuid.UUID]],
) -> ColumnElement[bool]:
    return or_(*(and_(subject_type == kind, subject_id == value) for kind, value in pairs))


def _caller_pairs(caller: Caller) -> list[tuple[str, uuid.UUID]]:
    return _subject_pairs(caller.user_id, caller.agent_id, caller.organization_ids)


async def rules_for(session: AsyncSession, target: Agent, caller: Caller) -> list[Rule]:
    """The rules on ``target`` (and on its organization) that name this caller."""
    rules = [
        Rule(row.subject_type, row.subject_id, row.effect, row.max_calls_per_hour)
        for row in await session.scalars(
            select(AgentPermission).where(
                AgentPermission.agent_id == target.id,
                _names(
                    AgentPermission.subject_type, AgentPermission.subject_id, _caller_pairs(caller)
                ),
            )
        )
    ]
    if target.organization_id is not None:
        rules.extend(
            Rule(
                row.subject_type,
                row.subject_id,
                PermissionEffect.ALLOW.value,
                row.max_calls_per_hour,
                org_level=True,
            )
            for row in await session.scalars(
                select(OrganizationPermission).where(
                    OrganizationPermission.organization_id == target.organization_id,
                    _names(
                        OrganizationPermission.subject_type,
                        OrganizationPermission.subject_id,
                        _caller_pairs(caller),
                    ),
                )
            )
        )
    return rules


async def decide_call(session: AsyncSession, target: Agent, caller: Caller) -> Decision:
    return decide(target_of(target), caller, await rules_for(session, target, caller))


def permitted_condition(
    *, user_id: uuid.UUID | None, agent_id: uuid.UUID | None, org_ids: OrgIds
) -> ColumnElement[bool]:
    """SQL on ``Agent``: an allow rule on the agent or on its organization names this viewer,
    and no deny rule on the agent does. ``org_ids`` may be a subquery of organization ids."""

    def names(
        type_col: InstrumentedAttribute[str], id_col: InstrumentedAttribute[uuid.UUID]
    ) -> ColumnElement[bool]:
        pairs = _subject_pairs(user_id, agent_id, [])
        orgs = org_ids if isinstance(org_ids, Select) else list(org_ids)
        return or_(
            _names(type_col, id_col, pairs) if pairs else false(),
            and_(type_col == PermissionSubject.ORGANIZATION.value, id_col.in_(orgs)),
        )

    allowed_here = Agent.id.in_(
        select(AgentPermission.agent_id).where(
            AgentPermission.effect == PermissionEffect.ALLOW.value,
            names(AgentPermission.subject_type, AgentPermission.subject_id),
        )
    )
    denied_here = Agent.id.in_(
        select(AgentPermission.agent_id).where(
            AgentPermission.effect == PermissionEffect.DENY.value,
            names(AgentPermission.subject_type, AgentPermission.subject_id),
        )
    )
    allowed_by_org = Agent.organization_id.in_(
        select(OrganizationPermission.organization_id).where(
            names(OrganizationPermission.subject_type, OrganizationPermission.subject_id)
        )
    )
    return and_(or_(allowed_here, allowed_by_org), ~denied_here)


# ---- access requests ----


async def file_access_request(
    session: AsyncSession, *, target: Agent, caller: Caller, now: datetime
) -> AccessRequest:
    """Record (or re-open) the caller's request to call ``target``; tell the owner once per
    new request, not on every retry."""
    subject_type, subject_id = caller.subject
    request = await session.scalar(
        select(AccessRequest).where(
            AccessRequest.agent_id == target.id,
            AccessRequest.subject_type == subject_type,
            AccessRequest.subject_id == subject_id,
        )
    )
    if request is not None and request.status == AccessRequestStatus.PENDING.value:
        request.attempts += 1
        request.last_attempt_at = now
        await session.flush()
        return request
    if request is None:
        # Two first calls at once must not both insert: the second one bumps the first's row.
        dialect_insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
        await session.execute(
            dialect_insert(AccessRequest)
            .values(
                id=uuid.uuid4(),
                agent_id=target.id,
                subject_type=subject_type,
                subject_id=subject_id,
                status=AccessRequestStatus.PENDING.value,
                attempts=1,
                created_at=now,
                last_attempt_at=now,
            )
            .on_conflict_do_nothing()
        )
        request = await session.scalar(
            select(AccessRequest).where(
                AccessRequest.agent_id == target.id,
                AccessRequest.subject_type == subject_type,
                AccessRequest.subject_id == subject_id,
            )
        )
        assert request is not None  # noqa: S101 - inserted or found just above
    else:
        # Denied before: asking again re-opens it, so the owner can change their mind.
        request.status = AccessRequestStatus.PENDING.value
        request.attempts += 1
        request.created_at = now
        request.last_attempt_at = now
        request.decided_at = None
        request.decided_by_id = None
    await session.flush()
    await publish(
        session,
        [user_recipient(target.owner_id)],
        ACCESS_REQUESTED_EVENT,
        {
            "request_id": str(request.id),
            "agent_id": str(target.id),
            "agent_name": target.name,
            "subject_type": subject_type,
            "subject_id": str(subject_id),
        },
    )
    return request


# ---- managing rules ----


async def managed_agent(session: AsyncSession, *, agent_id: uuid.UUID, user: User) -> Agent:
    """The agent if ``user`` may manage its permissions: its owner, an owner or admin of its
    organization, or a hub admin. Anyone else gets 404, as for a private agent."""
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise AgentNotFoundError("No such agent.")
    if agent.owner_id == user.id or user.role == UserRole.ADMIN.value:
        return agent
    if agent.organization_id is not None:
        membership = await session.scalar(
            select(OrgMembership.role).where(
                OrgMembership.organization_id == agent.organization_id,
                OrgMembership.user_id == user.id,
            )
        )
        if membership in MANAGING_ORG_ROLES:
            return agent
    raise AgentNotFoundError("No such agent.")


SUBJECT_MODELS: dict[PermissionSubject, type[Base]] = {
    PermissionSubject.AGENT: Agent,
    PermissionSubject.USER: User,
    PermissionSubject.ORGANIZATION: Organization,
}


@dataclass(frozen=True)
class Subject:
    type: PermissionSubject
    id: uuid.UUID


async def ensure_subject_exists(session: AsyncSession, subject: Subject) -> None:
    model: type[Base] = SUBJECT_MODELS[subject.type]
    if await session.get(model, subject.id) is None:
        raise NotFoundError(
            f"No such {subject.type.value} to name in a rule.", code="subject_not_found"
        )


async def set_agent_rule(
    session: AsyncSession,
    *,
    agent: Agent,
    subject: Subject,
    effect: PermissionEffect,
    max_calls_per_hour: int | None,
    by: User,
    now: datetime,
) -> AgentPermission:
    """Create or replace the rule for ``subject``; an allow also approves its open request."""
    if subject.type is PermissionSubject.AGENT and subject.id == agent.id:
        raise HubError(
            "An agent may always call itself; no rule is needed.", status=422, code="self_rule"
        )
    await ensure_subject_exists(session, subject)
    rule = await session.scalar(
        select(AgentPermission).where(
            AgentPermission.agent_id == agent.id,
            AgentPermission.subject_type == subject.type.value,
            AgentPermission.subject_id == subject.id,
        )
    )
    if rule is None:
        rule = AgentPermission(
            agent_id=agent.id,
            subject_type=subject.type.value,
            subject_id=subject.id,
            created_at=now,
        )
        session.add(rule)
    rule.effect = effect.value
    rule.max_calls_per_hour = max_calls_per_hour
    rule.created_by_id = by.id
    rule.updated_at = now
    request = await session.scalar(
        select(AccessRequest).where(
            AccessRequest.agent_id == agent.id,
            AccessRequest.subject_type == subject.type.value,
            AccessRequest.subject_id == subject.id,
            AccessRequest.status == AccessRequestStatus.PENDING.value,
        )
    )
    if request is not None:
        request.status = (
            AccessRequestStatus.APPROVED.value
            if effect is PermissionEffect.ALLOW
            else AccessRequestStatus.DENIED.value
        )
        request.decided_at = now
        request.decided_by_id = by.id
    await session.flush()
    return rule


async def delete_agent_rule(session: AsyncSession, *, agent: Agent, rule_id: uuid.UUID) -> None:
    rule = await session.get(AgentPermission, rule_id)
    if rule is None or rule.agent_id != agent.id:
        raise NotFoundError("No such rule on this agent.", code="rule_not_found")
    await session.delete(rule)
    await session.flush()


async def list_agent_rules(session: AsyncSession, agent: Agent) -> Sequence[AgentPermission]:
    return (
        await session.scalars(
            select(AgentPermission)
            .where(AgentPermission.agent_id == agent.id)
            .order_by(AgentPermission.created_at, AgentPermission.id)
        )
    ).all()


async def list_access_requests(
    session: AsyncSession, agent: Agent, *, status: str | None = None
) -> Sequence[AccessRequest]:
    query = select(AccessRequest).where(AccessRequest.agent_id == agent.id)
    if status is not None:
        query = query.where(AccessRequest.status == status)
    return (await session.scalars(query.order_by(AccessRequest.created_at, AccessRequest.id))).all()


async def decide_access_request(
    session: AsyncSession,
    *,
    agent: Agent,
    request_id: uuid.UUID,
    approve: bool,
    max_calls_per_hour: int | None,
    by: User,
    now: datetime,
) -> AccessRequest:
    """Approve (an allow rule for the requester) or deny (a deny rule) an open request."""
    request = await session.get(AccessRequest, request_id)
    if request is None or request.agent_id != agent.id:
        raise NotFoundError("No such access request on this agent.", code="request_not_found")
    if request.status != AccessRequestStatus.PENDING.value:
        raise HubError(
            f"This request was already {request.status}.", status=409, code="request_decided"
        )
    await set_agent_rule(
        session,
        agent=agent,
        subject=Subject(PermissionSubject(request.subject_type), request.subject_id),
        effect=PermissionEffect.ALLOW if approve else PermissionEffect.DENY,
        max_calls_per_hour=max_calls_per_hour,
        by=by,
        now=now,
    )
    await session.refresh(request)
    return request


async def set_organization_allow(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    subject: Subject,
    max_calls_per_hour: int | None,
    by: User,
    now: datetime,
) -> OrganizationPermission:
    """Allow ``subject`` to call every agent of the organization (org owners and admins)."""
    if by.role != UserRole.ADMIN.value:
        await require_org_role(
            session, org_id=organization_id, user_id=by.id, roles=MANAGING_ORG_ROLES
        )
    await ensure_subject_exists(session, subject)
    rule = await session.scalar(
        select(OrganizationPermission).where(
            OrganizationPermission.organization_id == organization_id,
            OrganizationPermission.subject_type == subject.type.value,
            OrganizationPermission.subject_id == subject.id,
        )
    )
    if rule is None:
        rule = OrganizationPermission(
            organization_id=organization_id,
            subject_type=subject.type.value,
            subject_id=subject.id,
            created_at=now,
        )
        session.add(rule)
    rule.max_calls_per_hour = max_calls_per_hour
    rule.created_by_id = by.id
    await session.flush()
    return rule


async def list_organization_rules(
    session: AsyncSession, *, organization_id: uuid.UUID, user: User
) -> Sequence[OrganizationPermission]:
    if user.role != UserRole.ADMIN.value:
        await require_org_role(session, org_id=organization_id, user_id=user.id)
    return (
        await session.scalars(
            select(OrganizationPermission)
            .where(OrganizationPermission.organization_id == organization_id)
            .order_by(OrganizationPermission.created_at, OrganizationPermission.id)
        )
    ).all()


async def delete_organization_rule(
    session: AsyncSession, *, organization_id: uuid.UUID, rule_id: uuid.UUID, user: User
) -> None:
    if user.role != UserRole.ADMIN.value:
        await require_org_role(
            session, org_id=organization_id, user_id=user.id, roles=MANAGING_ORG_ROLES
        )
    rule = await session.get(OrganizationPermission, rule_id)
    if rule is None or rule.organization_id != organization_id:
        raise NotFoundError("No such rule on this organization.", code="rule_not_found")
    await session.delete(rule)
    await session.flush()
