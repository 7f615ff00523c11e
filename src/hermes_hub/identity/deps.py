"""Authentication dependencies: every request names its principal with a bearer token."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from hermes_hub.db.session import Database, after_commit
from hermes_hub.errors import AuthenticationError, HubError
from hermes_hub.identity import service, tokens
from hermes_hub.identity.cache import PrincipalCache, token_digest
from hermes_hub.identity.models import Agent, User
from hermes_hub.identity.principal import Principal
from hermes_hub.kit.ratelimit import Policies, RateLimiter
from hermes_hub.kit.time import utcnow
from hermes_hub.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="A user access token (JWT) or an agent API key.")


def rate_limiter(connection: HTTPConnection) -> RateLimiter:
    limiter: RateLimiter = connection.app.state.rate_limiter
    return limiter


def client_ip(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"


async def _resolve(
    session: AsyncSession, runtime: Runtime, token: str, now: datetime
) -> tuple[Principal, datetime]:
    """Look the token up; return the principal and until when that answer holds."""
    if tokens.looks_like_api_key(token):
        found = await service.authenticate_api_key(session, token=token, now=now)
        if found is None:
            raise AuthenticationError(
                "The API key is unknown, revoked or expired.", code="invalid_api_key"
            )
        agent, key = found
        return Principal(agent=agent, api_key=key), key.expires_at
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
        raise AuthenticationError("The access token is invalid or expired.", code="invalid_token")
    return Principal(user=user), claims.expires_at


async def _lookup(connection: HTTPConnection, token: str, now: datetime) -> Principal:
    cache: PrincipalCache = connection.app.state.principal_cache
    digest = token_digest(token)
    principal = cache.get(digest, now=now)
    if principal is not None:
        return principal

    async def lookup() -> tuple[Principal, datetime]:
        # A short session of its own, closed before the handler runs: a cache hit then
        # needs no connection at all, and no request ever holds two.
        database: Database = connection.app.state.database
        runtime: Runtime = connection.app.state.runtime
        async with database.read_sessions() as session:
            return await _resolve(session, runtime, token, now)

    try:
        return await cache.resolve(digest, lookup)
    except AuthenticationError:
        # Guessing tokens costs a database lookup each; count failures per address.
        limiter = rate_limiter(connection)
        await limiter.hit(limiter.policies.login, "auth-failure", client_ip(connection))
        raise


async def resolve_token(connection: HTTPConnection, token: str) -> Principal:
    """Who ``token`` names, through the per-process cache; no request is counted.

    For checking that a long-lived connection's credentials still hold. Raises
    ``AuthenticationError`` (401) for an unknown, revoked or expired token, and counts that
    failure against the client's address (``RateLimitedError``, 429, past the login limit).
    """
    return await _lookup(connection, token, utcnow())


async def authenticate_token(connection: HTTPConnection, token: str) -> Principal:
    """Authenticate one HTTP request or WebSocket connection with a bearer token.

    The same path for both: ``resolve_token``, then the API key's use is recorded and the
    request counts against the principal's default rate limit (``RateLimitedError``, 429).
    """
    now = utcnow()
    principal = await _lookup(connection, token, now)
    if principal.api_key is not None:
        connection.app.state.key_usage.record(principal.api_key, now)
    limiter = rate_limiter(connection)
    await limiter.hit(limiter.policies.default, "principal", principal.rate_limit_key)
    structlog.contextvars.bind_contextvars(principal=principal.rate_limit_key)
    return principal


async def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError(
            "Send 'Authorization: Bearer <token>' with a user token or agent API key."
        )
    return await authenticate_token(request, credentials.credentials)


def forget_cached_principals(
    request: Request,
    session: AsyncSession,
    *,
    agent_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
) -> None:
    """After this request commits, stop serving cached credentials of this agent or user."""
    cache: PrincipalCache = request.app.state.principal_cache
    after_commit(session, lambda: cache.forget(agent_id=agent_id, user_id=user_id))


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


async def _optional_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """The principal if credentials were sent (bad ones still fail with 401); otherwise
    None, counted per client IP under the anonymous rate limit."""
    if credentials is not None:
        return await _principal(request, credentials)
    limiter = rate_limiter(request)
    await limiter.hit(limiter.policies.anonymous, "anonymous", client_ip(request))
    return None


# For endpoints public by design (the catalogue): anonymous visitors see public data only.
OptionalPrincipal = Annotated[Principal | None, Depends(_optional_principal)]


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
        limiter = rate_limiter(request)
        await limiter.hit(choose(limiter.policies), scope, client_ip(request))

    return _check
