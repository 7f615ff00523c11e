"""ACL endpoints: rules on an agent, access requests, and org-level allows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Request, Response, status
from pydantic import Field, model_validator

from hermes_hub.db.session import DbSession, after_commit
from hermes_hub.identity import permissions
from hermes_hub.identity.deps import CurrentUser
from hermes_hub.identity.models import (
    AccessRequest,
    AgentPermission,
    OrganizationPermission,
    PermissionEffect,
    PermissionSubject,
)
from hermes_hub.kit.schemas import InputModel, OutputModel
from hermes_hub.kit.time import utcnow

agent_permissions_router = APIRouter(prefix="/api/v1/agents", tags=["permissions"])
org_permissions_router = APIRouter(prefix="/api/v1/orgs", tags=["permissions"])

CallsPerHour = Annotated[int, Field(ge=1, le=1_000_000)]


class RuleIn(InputModel):
    """Name exactly one subject: an agent, a user, or an organization."""

    agent_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None
    max_calls_per_hour: CallsPerHour | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> RuleIn:
        named = [v for v in (self.agent_id, self.user_id, self.organization_id) if v is not None]
        if len(named) != 1:
            raise ValueError("name exactly one of agent_id, user_id, organization_id")
        return self

    @property
    def subject(self) -> permissions.Subject:
        if self.agent_id is not None:
            return permissions.Subject(PermissionSubject.AGENT, self.agent_id)
        if self.user_id is not None:
            return permissions.Subject(PermissionSubject.USER, self.user_id)
        assert self.organization_id is not None  # noqa: S101 - checked by _one_subject
        return permissions.Subject(PermissionSubject.ORGANIZATION, self.organization_id)


class DenyIn(RuleIn):
    @model_validator(mode="after")
    def _no_limit_on_deny(self) -> DenyIn:
        if self.max_calls_per_hour is not None:
            raise ValueError("a deny rule takes no max_calls_per_hour")
        return self


class DecisionIn(InputModel):
    max_calls_per_hour: CallsPerHour | None = None


class RuleOut(OutputModel):
    id: uuid.UUID
    agent_id: uuid.UUID
    subject_type: PermissionSubject
    subject_id: uuid.UUID
    effect: PermissionEffect
    max_calls_per_hour: int | None
    created_at: datetime
    updated_at: datetime


class AccessRequestOut(OutputModel):
    id: uuid.UUID
    agent_id: uuid.UUID
    subject_type: PermissionSubject
    subject_id: uuid.UUID
    status: Literal["pending", "approved", "denied"]
    attempts: int
    created_at: datetime
    last_attempt_at: datetime
    decided_at: datetime | None


class AgentPermissionsOut(OutputModel):
    agent_id: uuid.UUID
    is_public: bool
    requires_approval: bool
    max_calls_per_hour: int | None
    rules: list[RuleOut]
    requests: list[AccessRequestOut]


class OrgRuleOut(OutputModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    subject_type: PermissionSubject
    subject_id: uuid.UUID
    effect: Literal["allow"] = "allow"
    max_calls_per_hour: int | None
    created_at: datetime


def _forget_plans(request: Request, session: DbSession, agent_id: uuid.UUID | None) -> None:
    """Calls already allowed are re-checked at once on this worker (others within the
    gateway's short ACL cache time)."""
    plans = request.app.state.a2a.plans
    after_commit(session, lambda: plans.forget(agent_id))


def _rule_out(rule: AgentPermission) -> RuleOut:
    return RuleOut.model_validate(rule)


def _request_out(request: AccessRequest) -> AccessRequestOut:
    return AccessRequestOut.model_validate(request)


def _org_rule_out(rule: OrganizationPermission) -> OrgRuleOut:
    return OrgRuleOut.model_validate(rule)


@agent_permissions_router.get(
    "/{agent_id}/permissions",
    response_model=AgentPermissionsOut,
    operation_id="list_agent_permissions",
    description="The agent's call settings, its ACL rules and its access requests (newest "
    "last). For the owner, and for owners and admins of the agent's organization.",
)
async def list_agent_permissions(
    agent_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    request_status: Annotated[
        Literal["pending", "approved", "denied"] | None, Query(alias="request_status")
    ] = None,
) -> AgentPermissionsOut:
    agent = await permissions.managed_agent(session, agent_id=agent_id, user=user)
    rules = await permissions.list_agent_rules(session, agent)
    requests = await permissions.list_access_requests(session, agent, status=request_status)
    return AgentPermissionsOut(
        agent_id=agent.id,
        is_public=agent.is_public,
        requires_approval=agent.requires_approval,
        max_calls_per_hour=agent.max_calls_per_hour,
        rules=[_rule_out(rule) for rule in rules],
        requests=[_request_out(request) for request in requests],
    )


async def _set_rule(
    request: Request,
    session: DbSession,
    *,
    agent_id: uuid.UUID,
    body: RuleIn,
    effect: PermissionEffect,
    user: CurrentUser,
) -> RuleOut:
    agent = await permissions.managed_agent(session, agent_id=agent_id, user=user)
    rule = await permissions.set_agent_rule(
        session,
        agent=agent,
        subject=body.subject,
        effect=effect,
        max_calls_per_hour=body.max_calls_per_hour,
        by=user,
        now=utcnow(),
    )
    _forget_plans(request, session, agent.id)
    return _rule_out(rule)


@agent_permissions_router.post(
    "/{agent_id}/permissions/allow",
    response_model=RuleOut,
    operation_id="allow_agent_caller",
    description="Allow an agent, a user (and their agents) or an organization's members and "
    "agents to call this agent, optionally with their own max_calls_per_hour. Replaces the "
    "subject's previous rule and approves its open access request.",
)
async def allow_caller(
    agent_id: uuid.UUID, body: RuleIn, user: CurrentUser, session: DbSession, request: Request
) -> RuleOut:
    return await _set_rule(
        request, session, agent_id=agent_id, body=body, effect=PermissionEffect.ALLOW, user=user
    )


@agent_permissions_router.post(
    "/{agent_id}/permissions/deny",
    response_model=RuleOut,
    operation_id="deny_agent_caller",
    description="Refuse calls from this subject, whatever else allows them (the owner's own "
    "calls excepted). Replaces the subject's previous rule and denies its open request.",
)
async def deny_caller(
    agent_id: uuid.UUID, body: DenyIn, user: CurrentUser, session: DbSession, request: Request
) -> RuleOut:
    return await _set_rule(
        request, session, agent_id=agent_id, body=body, effect=PermissionEffect.DENY, user=user
    )


@agent_permissions_router.delete(
    "/{agent_id}/permissions/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="delete_agent_rule",
)
async def delete_agent_rule(
    agent_id: uuid.UUID,
    rule_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    request: Request,
) -> Response:
    agent = await permissions.managed_agent(session, agent_id=agent_id, user=user)
    await permissions.delete_agent_rule(session, agent=agent, rule_id=rule_id)
    _forget_plans(request, session, agent.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _decide(
    request: Request,
    session: DbSession,
    *,
    agent_id: uuid.UUID,
    request_id: uuid.UUID,
    approve: bool,
    body: DecisionIn | None,
    user: CurrentUser,
) -> AccessRequestOut:
    agent = await permissions.managed_agent(session, agent_id=agent_id, user=user)
    decided = await permissions.decide_access_request(
        session,
        agent=agent,
        request_id=request_id,
        approve=approve,
        max_calls_per_hour=body.max_calls_per_hour if body else None,
        by=user,
        now=utcnow(),
    )
    _forget_plans(request, session, agent.id)
    return _request_out(decided)


@agent_permissions_router.post(
    "/{agent_id}/permissions/requests/{request_id}/approve",
    response_model=AccessRequestOut,
    operation_id="approve_access_request",
    description="Approve a pending request: the requester gets an allow rule.",
)
async def approve_request(
    agent_id: uuid.UUID,
    request_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    request: Request,
    body: Annotated[DecisionIn | None, Body()] = None,
) -> AccessRequestOut:
    return await _decide(
        request,
        session,
        agent_id=agent_id,
        request_id=request_id,
        approve=True,
        body=body,
        user=user,
    )


@agent_permissions_router.post(
    "/{agent_id}/permissions/requests/{request_id}/deny",
    response_model=AccessRequestOut,
    operation_id="deny_access_request",
    description="Deny a pending request: the requester gets a deny rule.",
)
async def deny_request(
    agent_id: uuid.UUID,
    request_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    request: Request,
) -> AccessRequestOut:
    return await _decide(
        request,
        session,
        agent_id=agent_id,
        request_id=request_id,
        approve=False,
        body=None,
        user=user,
    )


@org_permissions_router.post(
    "/{org_id}/permissions/allow",
    response_model=OrgRuleOut,
    operation_id="allow_organization_caller",
    description="Allow an agent, a user or another organization to call every agent of this "
    "organization (org owners and admins). An agent-level deny still wins.",
)
async def allow_org_caller(
    org_id: uuid.UUID, body: RuleIn, user: CurrentUser, session: DbSession, request: Request
) -> OrgRuleOut:
    rule = await permissions.set_organization_allow(
        session,
        organization_id=org_id,
        subject=body.subject,
        max_calls_per_hour=body.max_calls_per_hour,
        by=user,
        now=utcnow(),
    )
    _forget_plans(request, session, None)
    return _org_rule_out(rule)


@org_permissions_router.get(
    "/{org_id}/permissions",
    response_model=list[OrgRuleOut],
    operation_id="list_organization_permissions",
)
async def list_org_rules(
    org_id: uuid.UUID, user: CurrentUser, session: DbSession
) -> list[OrgRuleOut]:
    rules = await permissions.list_organization_rules(session, organization_id=org_id, user=user)
    return [_org_rule_out(rule) for rule in rules]


@org_permissions_router.delete(
    "/{org_id}/permissions/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="delete_organization_rule",
)
async def delete_org_rule(
    org_id: uuid.UUID,
    rule_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    request: Request,
) -> Response:
    await permissions.delete_organization_rule(
        session, organization_id=org_id, rule_id=rule_id, user=user
    )
    _forget_plans(request, session, None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


routers = (agent_permissions_router, org_permissions_router)
