"""Authentication dependencies: every request names its principal with a bearer token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem

from hermes_hub.db.session import DbSession
from hermes_hub.errors import AuthenticationError, HubError
from hermes_hub.identity import service, tokens
from hermes_hub.identity.models import Agent, User
from hermes_hub.identity.principal import Principal
from hermes_hub.kit.ratelimit import Policies, RateLimiter
from hermes_hub.kit.time import utcnow
from hermes_hub.runtime import Runtime, get_runtime

_bearer = HTTPBearer(auto_error=False, description="A user access token (JWT) or an agent API key.")


def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _principal(
    request: Request,
    session: DbSession,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError(
            "Send 'Authorization: Bearer <token>' with a user token or agent API key."
        )
    token = credentials.credentials
    now = utcnow()
    if tokens.looks_like_api_key(token):
        found = await service.authenticate_api_key(session, token=token, now=now)
        if found is None:
            raise AuthenticationError(
                "The API key is unknown, revoked or expired.", code="invalid_api_key"
            )
        agent, key = found
        request.app.state.key_usage.record(key, now)
        principal = Principal(agent=agent, api_key=key)
    else:
        try:
            claims = tokens.decode_access_token(
                token,
                secret=runtime.secret_key,
                issuer=runtime.settings.public_url,
                audience=runtime.settings.jwt_audience,
            )
        except tokens.InvalidTokenError as exc:
            raise AuthenticationError(
                "The access token is invalid or expired.", code="invalid_token"
            ) from exc
        user = await service.get_active_user(session, claims.user_id)
        if user is None:
            raise AuthenticationError(
                "The access token is invalid or expired.", code="invalid_token"
            )
        principal = Principal(user=user)
    limiter = _limiter(request)
    await limiter.hit(limiter.policies.default, "principal", principal.rate_limit_key)
    structlog.contextvars.bind_contextvars(principal=principal.rate_limit_key)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


async def _user(principal: CurrentPrincipal) -> User:
    if principal.user is None:
        raise HubError(
            "This endpoint is for users; agents cannot call it.", status=403, code="user_required"
        )
    return principal.user


async def _agent(principal: CurrentPrincipal) -> Agent:
    if principal.agent is None:
        raise HubError(
            "This endpoint is for agents; authenticate with an agent API key.",
            status=403,
            code="agent_required",
        )
    return principal.agent


async def require_admin(user: Annotated[User, Depends(_user)]) -> User:
    if user.role != "admin":
        raise HubError("This endpoint needs the admin role.", status=403, code="admin_required")
    return user


CurrentUser = Annotated[User, Depends(_user)]
CurrentAgent = Annotated[Agent, Depends(_agent)]
AdminUser = Annotated[User, Depends(require_admin)]


def limit_by_ip(
    choose: Callable[[Policies], RateLimitItem], scope: str
) -> Callable[[Request], Awaitable[None]]:
    """A dependency counting anonymous requests per client IP under a named policy."""

    async def _check(request: Request) -> None:
        limiter = _limiter(request)
        await limiter.hit(choose(limiter.policies), scope, client_ip(request))

    return _check
