"""Identity services: users, agent enrollment and API keys, organizations.

Every function takes the request's session and only flushes; the caller commits once.
Objects the caller may not see raise a ``NotFoundError`` subclass, never a 403, so that
their existence does not leak.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, TextClause, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.db.session import dialect_name
from hermes_hub.errors import ConflictError, HubError
from hermes_hub.identity import crypto, passwords, tokens
from hermes_hub.identity.errors import (
    AgentNotFoundError,
    EmailTakenError,
    EnrollmentNotFoundError,
    InvalidCredentialsError,
    OrganizationNotFoundError,
)
from hermes_hub.identity.models import (
    Agent,
    AgentApiKey,
    AgentStatus,
    Enrollment,
    Organization,
    OrgMembership,
    OrgRole,
    User,
    UserRole,
)
from hermes_hub.identity.principal import Principal
from hermes_hub.identity.schemas import AgentUpdate, EnrollRequest
from hermes_hub.kit.money import credits_to_units

MAX_ACTIVE_KEYS_PER_AGENT = 10
ORG_MANAGER_ROLES = frozenset({OrgRole.OWNER.value, OrgRole.ADMIN.value})


def normalize_email(email: str) -> str:
    return email.strip().lower()


# ---- users ----


async def register_user(
    session: AsyncSession, *, email: str, password: str, role: UserRole = UserRole.USER
) -> User:
    """Create a user. Raises ``WeakPasswordError`` or ``EmailTakenError``."""
    email = normalize_email(email)
    passwords.check_password_policy(password, user_inputs=(email, email.split("@")[0]))
    # Hash before the first query: on SQLite that query opens the write transaction, which
    # should not stay open through ~100 ms of hashing.
    password_hash = await passwords.hash_password(password)
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTakenError("An account with this email already exists.")
    user = User(email=email, password_hash=password_hash, role=role.value)
    session.add(user)
    await session.flush()
    return user


async def authenticate_user(session: AsyncSession, *, email: str, password: str) -> User:
    """Return the active user with these credentials or raise ``InvalidCredentialsError``."""
    user = await session.scalar(select(User).where(User.email == normalize_email(email)))
    valid = await passwords.verify_password(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        raise InvalidCredentialsError("Email or password is incorrect.")
    return user


async def get_active_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    user = await session.get(User, user_id)
    return user if user is not None and user.is_active else None


async def list_users(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[User], int]:
    total = await session.scalar(select(func.count()).select_from(User)) or 0
    users = await session.scalars(
        select(User).order_by(User.created_at, User.id).limit(limit).offset(offset)
    )
    return users.all(), total


async def update_user(
    session: AsyncSession,
    *,
    actor: User,
    user_id: uuid.UUID,
    role: UserRole | None,
    is_active: bool | None,
) -> User:
    """Admin change of a user's role or active flag. An admin cannot demote or disable themself."""
    user = await session.get(User, user_id)
    if user is None:
        raise HubError("No such user.", status=404, code="user_not_found")
    if user.id == actor.id and (role not in (None, UserRole.ADMIN) or is_active is False):
        raise ConflictError(
            "Admins cannot demote or deactivate themselves.", code="cannot_modify_self"
        )
    if role is not None:
        user.role = role.value
    if is_active is not None:
        user.is_active = is_active
    await session.flush()
    return user


# ---- API keys ----


@dataclass(frozen=True)
class IssuedKey:
    record: AgentApiKey
    token: str


async def _issue_api_key(
    session: AsyncSession, *, agent_id: uuid.UUID, now: datetime, ttl: timedelta
) -> IssuedKey:
    generated = tokens.generate_api_key()
    record = AgentApiKey(
        agent_id=agent_id,
        prefix=generated.prefix,
        token_hash=generated.token_hash,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(record)
    await session.flush()
    return IssuedKey(record=record, token=generated.token)


async def authenticate_api_key(
    session: AsyncSession, *, token: str, now: datetime
) -> tuple[Agent, AgentApiKey] | None:
    """Return the agent and key for a live API key, or ``None`` if unknown/revoked/expired."""
    row = (
        await session.execute(
            select(AgentApiKey, Agent)
            .join(Agent, Agent.id == AgentApiKey.agent_id)
            .where(AgentApiKey.token_hash == tokens.hash_api_key(token))
        )
    ).first()
    if row is None:
        return None
    key, agent = row
    if key.revoked_at is not None or key.expires_at <= now:
        return None
    if agent.status == AgentStatus.BANNED.value:
        return None
    return agent, key


async def touch_api_key(session: AsyncSession, *, key_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(AgentApiKey).where(AgentApiKey.id == key_id).values(last_used_at=now)
    )


async def list_api_keys(session: AsyncSession, *, agent: Agent) -> Sequence[AgentApiKey]:
    result = await session.scalars(
        select(AgentApiKey)
        .where(AgentApiKey.agent_id == agent.id)
        .order_by(AgentApiKey.created_at.desc())
    )
    return result.all()


async def create_api_key(
    session: AsyncSession, *, agent: Agent, now: datetime, ttl: timedelta, revoke_existing: bool
) -> IssuedKey:
    """Issue a new key; optionally revoke all others in the same transaction (rotation)."""
    if revoke_existing:
        await session.execute(
            update(AgentApiKey)
            .where(AgentApiKey.agent_id == agent.id, AgentApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    else:
        active = await session.scalar(
            select(func.count())
            .select_from(AgentApiKey)
            .where(
                AgentApiKey.agent_id == agent.id,
                AgentApiKey.revoked_at.is_(None),
                AgentApiKey.expires_at > now,
            )
        )
        if (active or 0) >= MAX_ACTIVE_KEYS_PER_AGENT:
            raise ConflictError(
                f"An agent may hold at most {MAX_ACTIVE_KEYS_PER_AGENT} live keys; "
                "revoke one first.",
                code="too_many_keys",
            )
    return await _issue_api_key(session, agent_id=agent.id, now=now, ttl=ttl)


async def revoke_api_key(
    session: AsyncSession, *, agent: Agent, key_id: uuid.UUID, now: datetime
) -> AgentApiKey:
    key = await session.scalar(
        select(AgentApiKey).where(AgentApiKey.id == key_id, AgentApiKey.agent_id == agent.id)
    )
    if key is None:
        raise HubError("No such key for this agent.", status=404, code="api_key_not_found")
    if key.revoked_at is not None:
        raise ConflictError("This key is already revoked.", code="api_key_already_revoked")
    key.revoked_at = now
    await session.flush()
    return key


# ---- enrollment ----


async def start_enrollment(
    session: AsyncSession, *, owner: User, request: EnrollRequest, now: datetime, ttl: timedelta
) -> Enrollment:
    """Record an enrollment and return it with a fresh single-use challenge bound to the key.

    Raises ``InvalidPublicKeyError``, ``ConflictError(public_key_in_use)`` and, for an
    organization the owner does not manage, ``OrganizationNotFoundError``.
    """
    public_key = crypto.parse_public_key(request.public_key)
    await _ensure_key_unused(session, public_key)
    if request.organization_id is not None:
        await require_org_role(
            session, org_id=request.organization_id, user_id=owner.id, roles=ORG_MANAGER_ROLES
        )
    enrollment = Enrollment(
        owner_id=owner.id,
        organization_id=request.organization_id,
        name=request.name,
        description=request.description,
        public_key=public_key,
        capabilities=request.capabilities,
        endpoint_url=request.endpoint_url,
        enrollment_metadata=request.metadata,
        challenge=f"hermes-enroll:{secrets.token_urlsafe(32)}",
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(enrollment)
    await session.flush()
    return enrollment


async def _ensure_key_unused(session: AsyncSession, public_key: str) -> None:
    if await session.scalar(select(Agent.id).where(Agent.public_key == public_key)) is not None:
        raise ConflictError(
            "This public key already belongs to an enrolled agent.", code="public_key_in_use"
        )


@dataclass(frozen=True)
class EnrolledAgent:
    agent: Agent
    key: IssuedKey


async def complete_enrollment(
    session: AsyncSession,
    *,
    enrollment_id: uuid.UUID,
    signature: str,
    now: datetime,
    key_ttl: timedelta,
) -> EnrolledAgent:
    """Verify the signed challenge, create the agent and its first API key.

    Raises ``EnrollmentNotFoundError``, ``InvalidSignatureError`` and ``ConflictError``
    (challenge already used, expired, or the key enrolled meanwhile by another agent).
    """
    enrollment = await session.get(Enrollment, enrollment_id, with_for_update=True)
    if enrollment is None:
        raise EnrollmentNotFoundError("No such enrollment.")
    if enrollment.completed_at is not None:
        raise ConflictError(
            "This challenge was already used; start a new enrollment.",
            code="challenge_already_used",
        )
    if enrollment.expires_at <= now:
        raise ConflictError(
            "This challenge has expired; start a new enrollment.", code="challenge_expired"
        )
    crypto.verify_signature(
        public_key=enrollment.public_key, message=enrollment.challenge, signature=signature
    )
    await _ensure_key_unused(session, enrollment.public_key)
    agent = Agent(
        owner_id=enrollment.owner_id,
        organization_id=enrollment.organization_id,
        name=enrollment.name,
        description=enrollment.description,
        public_key=enrollment.public_key,
        capabilities=enrollment.capabilities,
        endpoint_url=enrollment.endpoint_url,
        agent_metadata=enrollment.enrollment_metadata,
        created_at=now,
        updated_at=now,
    )
    session.add(agent)
    await session.flush()
    enrollment.completed_at = now
    enrollment.agent_id = agent.id
    key = await _issue_api_key(session, agent_id=agent.id, now=now, ttl=key_ttl)
    return EnrolledAgent(agent=agent, key=key)


# ---- agents ----


async def _org_role(session: AsyncSession, *, org_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    return await session.scalar(
        select(OrgMembership.role).where(
            OrgMembership.organization_id == org_id, OrgMembership.user_id == user_id
        )
    )


async def can_view_private(session: AsyncSession, *, agent: Agent, viewer: Principal) -> bool:
    """Owner, the agent itself, admins and members of the agent's organization see everything."""
    if viewer.is_admin or (viewer.agent is not None and viewer.agent.id == agent.id):
        return True
    if viewer.user is None:
        return False
    if agent.owner_id == viewer.user.id:
        return True
    return (
        agent.organization_id is not None
        and (await _org_role(session, org_id=agent.organization_id, user_id=viewer.user.id))
        is not None
    )


async def get_visible_agent(
    session: AsyncSession, *, agent_id: uuid.UUID, viewer: Principal
) -> tuple[Agent, bool]:
    """Return the agent and whether the viewer may see its private fields.

    Private agents are 404 to everyone without that right.
    """
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise AgentNotFoundError("No such agent.")
    private = await can_view_private(session, agent=agent, viewer=viewer)
    if not agent.is_public and not private:
        raise AgentNotFoundError("No such agent.")
    return agent, private


def capability_condition(session: AsyncSession) -> TextClause:
    """``agents.capabilities`` contains the bind parameter ``:cap``, in this dialect."""
    if dialect_name(session) == "postgresql":
        return text("agents.capabilities @> jsonb_build_array(CAST(:cap AS text))")
    return text("EXISTS (SELECT 1 FROM json_each(agents.capabilities) WHERE value = :cap)")


async def get_owned_agent(session: AsyncSession, *, agent_id: uuid.UUID, owner: User) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None or agent.owner_id != owner.id:
        raise AgentNotFoundError("No such agent.")
    return agent


async def _page_of_agents(
    session: AsyncSession, condition: ColumnElement[bool], *, limit: int, offset: int
) -> tuple[Sequence[Agent], int]:
    total = await session.scalar(select(func.count()).select_from(Agent).where(condition)) or 0
    agents = await session.scalars(
        select(Agent)
        .where(condition)
        .order_by(Agent.created_at, Agent.id)
        .limit(limit)
        .offset(offset)
    )
    return agents.all(), total


async def list_owned_agents(
    session: AsyncSession, *, owner: User, limit: int, offset: int
) -> tuple[Sequence[Agent], int]:
    return await _page_of_agents(session, Agent.owner_id == owner.id, limit=limit, offset=offset)


async def update_agent(
    session: AsyncSession, *, agent: Agent, changes: AgentUpdate, now: datetime
) -> Agent:
    if agent.status == AgentStatus.BANNED.value:
        raise HubError(
            "This agent is banned; an admin must lift the ban before it can change.",
            status=403,
            code="agent_banned",
        )
    fields = changes.model_dump(exclude_unset=True)
    simple = {
        "name",
        "description",
        "capabilities",
        "endpoint_url",
        "is_public",
        "max_calls_per_hour",
        "requires_approval",
        "category",
    }
    for name in simple & fields.keys():
        setattr(agent, name, fields[name])
    if "status" in fields:
        agent.status = AgentStatus(fields["status"]).value
    if "metadata" in fields:
        agent.agent_metadata = fields["metadata"] or {}
    if "pricing" in fields:
        pricing = changes.pricing
        agent.base_price_units = None if pricing is None else credits_to_units(pricing.base_price)
        if pricing is not None:
            agent.price_currency = pricing.currency
    agent.updated_at = now
    await session.flush()
    return agent


# ---- organizations ----


async def require_org_role(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    roles: frozenset[str] | None = None,
) -> str:
    """Return the user's role in the org; non-members get 404, members lacking ``roles`` 403."""
    role = await _org_role(session, org_id=org_id, user_id=user_id)
    if role is None:
        raise OrganizationNotFoundError("No such organization.")
    if roles is not None and role not in roles:
        raise HubError(
            f"This needs one of the organization roles: {', '.join(sorted(roles))}.",
            status=403,
            code="org_role_required",
        )
    return role


async def create_organization(
    session: AsyncSession, *, creator: User, name: str, slug: str
) -> Organization:
    if await session.scalar(select(Organization.id).where(Organization.slug == slug)) is not None:
        raise ConflictError("An organization with this slug already exists.", code="slug_taken")
    org = Organization(name=name, slug=slug, created_by_id=creator.id)
    session.add(org)
    await session.flush()
    session.add(OrgMembership(organization_id=org.id, user_id=creator.id, role=OrgRole.OWNER.value))
    await session.flush()
    return org


async def list_my_organizations(
    session: AsyncSession, *, user: User
) -> Sequence[tuple[Organization, str]]:
    rows = await session.execute(
        select(Organization, OrgMembership.role)
        .join(OrgMembership, OrgMembership.organization_id == Organization.id)
        .where(OrgMembership.user_id == user.id)
        .order_by(Organization.created_at, Organization.id)
    )
    return [(org, role) for org, role in rows.all()]


async def get_organization(
    session: AsyncSession, *, org_id: uuid.UUID, user: User
) -> tuple[Organization, str]:
    role = await require_org_role(session, org_id=org_id, user_id=user.id)
    org = await session.get(Organization, org_id)
    if org is None:
        raise OrganizationNotFoundError("No such organization.")
    return org, role


async def list_members(
    session: AsyncSession, *, org_id: uuid.UUID, user: User
) -> Sequence[tuple[OrgMembership, str]]:
    await require_org_role(session, org_id=org_id, user_id=user.id)
    rows = await session.execute(
        select(OrgMembership, User.email)
        .join(User, User.id == OrgMembership.user_id)
        .where(OrgMembership.organization_id == org_id)
        .order_by(OrgMembership.created_at, User.email)
    )
    return [(membership, email) for membership, email in rows.all()]


async def add_member(
    session: AsyncSession, *, org_id: uuid.UUID, actor: User, email: str, role: OrgRole
) -> tuple[OrgMembership, str]:
    """Add a user by email. Admins may add members and admins; only owners may add owners."""
    actor_role = await require_org_role(
        session, org_id=org_id, user_id=actor.id, roles=ORG_MANAGER_ROLES
    )
    if role is OrgRole.OWNER and actor_role != OrgRole.OWNER.value:
        raise HubError("Only owners may add owners.", status=403, code="org_role_required")
    user = await session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None or not user.is_active:
        raise HubError("No active user has this email.", status=404, code="user_not_found")
    if await _org_role(session, org_id=org_id, user_id=user.id) is not None:
        raise ConflictError("This user is already a member.", code="already_member")
    membership = OrgMembership(organization_id=org_id, user_id=user.id, role=role.value)
    session.add(membership)
    await session.flush()
    return membership, user.email


async def remove_member(
    session: AsyncSession, *, org_id: uuid.UUID, actor: User, user_id: uuid.UUID
) -> None:
    """Owners and admins remove others; anyone may leave. Owners are removed only by owners,
    and an organization never loses its last owner."""
    actor_role = await require_org_role(session, org_id=org_id, user_id=actor.id)
    membership = await session.get(OrgMembership, (org_id, user_id), with_for_update=True)
    if membership is None:
        raise HubError("This user is not a member.", status=404, code="member_not_found")
    leaving_self = user_id == actor.id
    if not leaving_self and actor_role not in ORG_MANAGER_ROLES:
        raise HubError(
            "Only owners and admins may remove members.", status=403, code="org_role_required"
        )
    if membership.role == OrgRole.OWNER.value:
        if not leaving_self and actor_role != OrgRole.OWNER.value:
            raise HubError("Only owners may remove owners.", status=403, code="org_role_required")
        owners = await session.scalar(
            select(func.count())
            .select_from(OrgMembership)
            .where(
                OrgMembership.organization_id == org_id, OrgMembership.role == OrgRole.OWNER.value
            )
        )
        if (owners or 0) <= 1:
            raise ConflictError("An organization must keep at least one owner.", code="last_owner")
    await session.delete(membership)
    await session.flush()


async def assign_agent(
    session: AsyncSession, *, org_id: uuid.UUID, actor: User, agent_id: uuid.UUID
) -> Agent:
    """Move an agent into an org: the actor must own the agent and manage the org."""
    await require_org_role(session, org_id=org_id, user_id=actor.id, roles=ORG_MANAGER_ROLES)
    agent = await get_owned_agent(session, agent_id=agent_id, owner=actor)
    agent.organization_id = org_id
    await session.flush()
    return agent


async def unassign_agent(
    session: AsyncSession, *, org_id: uuid.UUID, actor: User, agent_id: uuid.UUID
) -> Agent:
    """Take an agent out of an org: its owner, or a manager of the org, may do it."""
    role = await require_org_role(session, org_id=org_id, user_id=actor.id)
    agent = await session.get(Agent, agent_id)
    if agent is None or agent.organization_id != org_id:
        raise AgentNotFoundError("No such agent in this organization.")
    if agent.owner_id != actor.id and role not in ORG_MANAGER_ROLES:
        raise HubError(
            "Only the agent's owner or an org admin may do this.",
            status=403,
            code="org_role_required",
        )
    agent.organization_id = None
    await session.flush()
    return agent


async def list_org_agents(
    session: AsyncSession, *, org_id: uuid.UUID, user: User, limit: int, offset: int
) -> tuple[Sequence[Agent], int]:
    await require_org_role(session, org_id=org_id, user_id=user.id)
    return await _page_of_agents(
        session, Agent.organization_id == org_id, limit=limit, offset=offset
    )
