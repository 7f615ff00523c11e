"""HTTP routes for users, agents, API keys, organizations and user administration."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response, status

from hermes_hub.db.session import DbSession, ReadSession, after_commit
from hermes_hub.discovery import service as discovery
from hermes_hub.identity import service, tokens
from hermes_hub.identity.deps import (
    AdminUser,
    CurrentAgent,
    CurrentPrincipal,
    CurrentUser,
    forget_cached_principals,
    limit_by_ip,
    rate_limiter,
    require_admin,
)
from hermes_hub.identity.models import Organization, OrgMembership, OrgRole
from hermes_hub.identity.schemas import (
    AgentPrivate,
    AgentPublic,
    AgentUpdate,
    ApiKeyOut,
    EnrollmentChallenge,
    EnrollmentResponse,
    EnrollmentResult,
    EnrollRequest,
    IssuedApiKey,
    LoginRequest,
    MemberAdd,
    MemberOut,
    NewApiKeyRequest,
    OrgCreate,
    OrgOut,
    RegisterRequest,
    TokenResponse,
    UserAdminUpdate,
    UserOut,
    agent_private,
    agent_public,
)
from hermes_hub.kit.pagination import Page, PageParams, page_params
from hermes_hub.kit.safe_http import check_endpoint_url
from hermes_hub.kit.time import utcnow
from hermes_hub.runtime import RuntimeDep
from hermes_hub.trust import review as trust_review

Paging = Annotated[PageParams, Depends(page_params)]

auth_router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
users_router = APIRouter(prefix="/api/v1/users", tags=["users"])
agents_router = APIRouter(prefix="/api/v1/agents", tags=["agents"])
orgs_router = APIRouter(prefix="/api/v1/orgs", tags=["organizations"])
# Router-level guard: any route added here is admin-only even if its handler forgets to ask.
admin_router = APIRouter(
    prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)]
)


# ---- auth ----


@auth_router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    operation_id="register_user",
    dependencies=[Depends(limit_by_ip(lambda p: p.register, "register"))],
)
async def register_user(body: RegisterRequest, session: DbSession) -> UserOut:
    user = await service.register_user(session, email=body.email, password=body.password)
    return UserOut.model_validate(user)


@auth_router.post(
    "/login",
    response_model=TokenResponse,
    operation_id="login",
    dependencies=[Depends(limit_by_ip(lambda p: p.login, "login"))],
)
async def login(
    body: LoginRequest, request: Request, session: ReadSession, runtime: RuntimeDep
) -> TokenResponse:
    # Also limit per account, so guessing one password from many addresses is throttled too.
    limiter = rate_limiter(request)
    await limiter.hit(limiter.policies.login, "login-account", service.normalize_email(body.email))
    user = await service.authenticate_user(session, email=body.email, password=body.password)
    ttl = runtime.settings.access_token_ttl_seconds
    token = tokens.issue_access_token(
        user_id=user.id,
        role=user.role,
        secret=runtime.secret_key,
        issuer=runtime.settings.public_url,
        audience=runtime.settings.jwt_audience,
        now=utcnow(),
        ttl=timedelta(seconds=ttl),
    )
    return TokenResponse(access_token=token, expires_in=ttl)


# ---- users ----


@users_router.get("/me", response_model=UserOut, operation_id="get_current_user")
async def get_current_user(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


# ---- agents ----


@agents_router.post(
    "/enroll",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollmentChallenge,
    operation_id="start_agent_enrollment",
    dependencies=[Depends(limit_by_ip(lambda p: p.enroll, "enroll"))],
)
async def start_agent_enrollment(
    body: EnrollRequest, owner: CurrentUser, session: DbSession, runtime: RuntimeDep
) -> EnrollmentChallenge:
    if body.endpoint_url is not None:
        check_endpoint_url(
            body.endpoint_url, allow_private=runtime.settings.allow_private_endpoints
        )
    enrollment = await service.start_enrollment(
        session,
        owner=owner,
        request=body,
        now=utcnow(),
        ttl=timedelta(seconds=runtime.settings.enrollment_challenge_ttl_seconds),
    )
    return EnrollmentChallenge(
        enrollment_id=enrollment.id,
        challenge=enrollment.challenge,
        expires_at=enrollment.expires_at,
    )


@agents_router.post(
    "/enroll/{enrollment_id}/respond",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollmentResult,
    operation_id="complete_agent_enrollment",
    dependencies=[Depends(limit_by_ip(lambda p: p.enroll, "enroll-respond"))],
    description=(
        "Public by design: possession of the enrolled private key is the proof. "
        "The agent signs the challenge's UTF-8 bytes with Ed25519 and sends the base64 signature."
    ),
)
async def complete_agent_enrollment(
    enrollment_id: uuid.UUID,
    body: EnrollmentResponse,
    session: DbSession,
    runtime: RuntimeDep,
    request: Request,
) -> EnrollmentResult:
    enrolled = await service.complete_enrollment(
        session,
        enrollment_id=enrollment_id,
        signature=body.signature,
        now=utcnow(),
        key_ttl=timedelta(days=runtime.settings.api_key_ttl_days),
    )
    # Its first trust score (the prior, or probation if it re-enrolls a banned agent).
    await trust_review.check_banned_identity(
        session, agent=enrolled.agent, settings=runtime.settings, now=utcnow()
    )
    await discovery.index_agent(session, request.app.state.discovery, enrolled.agent)
    if enrolled.agent.endpoint_url:
        # The A2A card is fetched after the commit, off the request: its endpoint may be slow.
        agent_id = enrolled.agent.id
        after_commit(session, lambda: request.app.state.a2a.refresh_soon(agent_id))
    return EnrollmentResult(
        agent_id=enrolled.agent.id,
        api_key=enrolled.key.token,
        key=ApiKeyOut.model_validate(enrolled.key.record),
    )


@agents_router.get("", response_model=Page[AgentPrivate], operation_id="list_my_agents")
async def list_my_agents(
    owner: CurrentUser, session: DbSession, paging: Paging
) -> Page[AgentPrivate]:
    agents, total = await service.list_owned_agents(
        session, owner=owner, limit=paging.limit, offset=paging.offset
    )
    return Page(
        items=[agent_private(a) for a in agents],
        limit=paging.limit,
        offset=paging.offset,
        total=total,
    )


@agents_router.get("/me", response_model=AgentPrivate, operation_id="get_current_agent")
async def get_current_agent(agent: CurrentAgent) -> AgentPrivate:
    return agent_private(agent)


@agents_router.get(
    "/{agent_id}",
    response_model=AgentPrivate | AgentPublic,
    operation_id="get_agent",
    description=(
        "Public fields for anyone authenticated; all fields for the owner, the agent itself, "
        "members of its organization and admins."
    ),
)
async def get_agent(
    agent_id: uuid.UUID, viewer: CurrentPrincipal, session: DbSession
) -> AgentPrivate | AgentPublic:
    agent, private = await service.get_visible_agent(session, agent_id=agent_id, viewer=viewer)
    return agent_private(agent) if private else agent_public(agent)


@agents_router.patch("/{agent_id}", response_model=AgentPrivate, operation_id="update_agent")
async def update_agent(
    agent_id: uuid.UUID,
    body: AgentUpdate,
    owner: CurrentUser,
    session: DbSession,
    request: Request,
    runtime: RuntimeDep,
) -> AgentPrivate:
    agent = await service.get_owned_agent(session, agent_id=agent_id, owner=owner)
    if body.endpoint_url is not None:
        check_endpoint_url(
            body.endpoint_url, allow_private=runtime.settings.allow_private_endpoints
        )
    endpoint_changed = (
        "endpoint_url" in body.model_fields_set and body.endpoint_url != agent.endpoint_url
    )
    forget_cached_principals(request, session, agent_id=agent.id)
    # Name, status, visibility and capabilities all show on the leaderboard.
    after_commit(session, request.app.state.leaderboard_cache.invalidate)
    renamed = body.name is not None and body.name != agent.name
    updated = await service.update_agent(session, agent=agent, changes=body, now=utcnow())
    if renamed:  # a banned agent's name taken by renaming is whitewashing too
        await trust_review.check_banned_identity(
            session, agent=updated, settings=runtime.settings, now=utcnow()
        )
    # Re-embeds only if the searchable text changed.
    await discovery.index_agent(session, request.app.state.discovery, updated)
    a2a = request.app.state.a2a
    after_commit(session, lambda: a2a.plans.forget(agent_id))
    if endpoint_changed and updated.endpoint_url:
        after_commit(session, lambda: a2a.refresh_soon(agent_id))
    return agent_private(updated)


@agents_router.get(
    "/{agent_id}/keys", response_model=list[ApiKeyOut], operation_id="list_agent_keys"
)
async def list_agent_keys(
    agent_id: uuid.UUID, owner: CurrentUser, session: DbSession
) -> list[ApiKeyOut]:
    agent = await service.get_owned_agent(session, agent_id=agent_id, owner=owner)
    return [
        ApiKeyOut.model_validate(key) for key in await service.list_api_keys(session, agent=agent)
    ]


@agents_router.post(
    "/{agent_id}/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=IssuedApiKey,
    operation_id="create_agent_key",
    description=(
        "Issue a new API key. With revoke_existing=true this is a rotation: "
        "all other keys of the agent are revoked in the same transaction."
    ),
)
async def create_agent_key(
    agent_id: uuid.UUID,
    owner: CurrentUser,
    session: DbSession,
    runtime: RuntimeDep,
    request: Request,
    body: Annotated[NewApiKeyRequest | None, Body()] = None,
) -> IssuedApiKey:
    agent = await service.get_owned_agent(session, agent_id=agent_id, owner=owner)
    forget_cached_principals(request, session, agent_id=agent.id)
    issued = await service.create_api_key(
        session,
        agent=agent,
        now=utcnow(),
        ttl=timedelta(days=runtime.settings.api_key_ttl_days),
        revoke_existing=body.revoke_existing if body else False,
    )
    return IssuedApiKey(
        **ApiKeyOut.model_validate(issued.record).model_dump(), api_key=issued.token
    )


@agents_router.delete(
    "/{agent_id}/keys/{key_id}", response_model=ApiKeyOut, operation_id="revoke_agent_key"
)
async def revoke_agent_key(
    agent_id: uuid.UUID, key_id: uuid.UUID, owner: CurrentUser, session: DbSession, request: Request
) -> ApiKeyOut:
    agent = await service.get_owned_agent(session, agent_id=agent_id, owner=owner)
    forget_cached_principals(request, session, agent_id=agent.id)
    return ApiKeyOut.model_validate(
        await service.revoke_api_key(session, agent=agent, key_id=key_id, now=utcnow())
    )


# ---- organizations ----


def _org_out(org: Organization, role: str) -> OrgOut:
    return OrgOut(
        id=org.id, name=org.name, slug=org.slug, created_at=org.created_at, role=OrgRole(role)
    )


def _member_out(membership: OrgMembership, email: str) -> MemberOut:
    return MemberOut(
        user_id=membership.user_id,
        email=email,
        role=OrgRole(membership.role),
        created_at=membership.created_at,
    )


@orgs_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrgOut,
    operation_id="create_organization",
)
async def create_organization(body: OrgCreate, user: CurrentUser, session: DbSession) -> OrgOut:
    org = await service.create_organization(session, creator=user, name=body.name, slug=body.slug)
    return _org_out(org, OrgRole.OWNER.value)


@orgs_router.get("", response_model=list[OrgOut], operation_id="list_my_organizations")
async def list_my_organizations(user: CurrentUser, session: DbSession) -> list[OrgOut]:
    return [
        _org_out(org, role) for org, role in await service.list_my_organizations(session, user=user)
    ]


@orgs_router.get("/{org_id}", response_model=OrgOut, operation_id="get_organization")
async def get_organization(org_id: uuid.UUID, user: CurrentUser, session: DbSession) -> OrgOut:
    org, role = await service.get_organization(session, org_id=org_id, user=user)
    return _org_out(org, role)


@orgs_router.get(
    "/{org_id}/members", response_model=list[MemberOut], operation_id="list_organization_members"
)
async def list_organization_members(
    org_id: uuid.UUID, user: CurrentUser, session: DbSession
) -> list[MemberOut]:
    return [
        _member_out(m, email)
        for m, email in await service.list_members(session, org_id=org_id, user=user)
    ]


@orgs_router.post(
    "/{org_id}/members",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberOut,
    operation_id="add_organization_member",
)
async def add_organization_member(
    org_id: uuid.UUID, body: MemberAdd, user: CurrentUser, session: DbSession
) -> MemberOut:
    membership, email = await service.add_member(
        session, org_id=org_id, actor=user, email=body.email, role=body.role
    )
    return _member_out(membership, email)


@orgs_router.delete(
    "/{org_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    operation_id="remove_organization_member",
)
async def remove_organization_member(
    org_id: uuid.UUID, user_id: uuid.UUID, user: CurrentUser, session: DbSession
) -> Response:
    await service.remove_member(session, org_id=org_id, actor=user, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@orgs_router.get(
    "/{org_id}/agents", response_model=Page[AgentPrivate], operation_id="list_organization_agents"
)
async def list_organization_agents(
    org_id: uuid.UUID, user: CurrentUser, session: DbSession, paging: Paging
) -> Page[AgentPrivate]:
    agents, total = await service.list_org_agents(
        session, org_id=org_id, user=user, limit=paging.limit, offset=paging.offset
    )
    return Page(
        items=[agent_private(a) for a in agents],
        limit=paging.limit,
        offset=paging.offset,
        total=total,
    )


@orgs_router.put(
    "/{org_id}/agents/{agent_id}",
    response_model=AgentPrivate,
    operation_id="assign_agent_to_organization",
    description="The caller must own the agent and be an owner or admin of the organization.",
)
async def assign_agent_to_organization(
    org_id: uuid.UUID, agent_id: uuid.UUID, user: CurrentUser, session: DbSession, request: Request
) -> AgentPrivate:
    forget_cached_principals(request, session, agent_id=agent_id)
    return agent_private(
        await service.assign_agent(session, org_id=org_id, actor=user, agent_id=agent_id)
    )


@orgs_router.delete(
    "/{org_id}/agents/{agent_id}",
    response_model=AgentPrivate,
    operation_id="remove_agent_from_organization",
)
async def remove_agent_from_organization(
    org_id: uuid.UUID, agent_id: uuid.UUID, user: CurrentUser, session: DbSession, request: Request
) -> AgentPrivate:
    forget_cached_principals(request, session, agent_id=agent_id)
    return agent_private(
        await service.unassign_agent(session, org_id=org_id, actor=user, agent_id=agent_id)
    )


# ---- administration ----


@admin_router.get("/users", response_model=Page[UserOut], operation_id="admin_list_users")
async def admin_list_users(admin: AdminUser, session: DbSession, paging: Paging) -> Page[UserOut]:
    users, total = await service.list_users(session, limit=paging.limit, offset=paging.offset)
    return Page(
        items=[UserOut.model_validate(u) for u in users],
        limit=paging.limit,
        offset=paging.offset,
        total=total,
    )


@admin_router.patch("/users/{user_id}", response_model=UserOut, operation_id="admin_update_user")
async def admin_update_user(
    user_id: uuid.UUID,
    body: UserAdminUpdate,
    admin: AdminUser,
    session: DbSession,
    request: Request,
) -> UserOut:
    forget_cached_principals(request, session, user_id=user_id)
    user = await service.update_user(
        session, actor=admin, user_id=user_id, role=body.role, is_active=body.is_active
    )
    return UserOut.model_validate(user)


routers = (auth_router, users_router, agents_router, orgs_router, admin_router)
