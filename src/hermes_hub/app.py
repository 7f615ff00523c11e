"""Application factory: ``create_app()`` wires settings, database, rate limits and routes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from hermes_hub import __version__
from hermes_hub.a2a.hub import A2AHub
from hermes_hub.a2a.router import routers as a2a_routers
from hermes_hub.config import Settings, check_production_safety, resolve_secret_key
from hermes_hub.db.session import Database, create_engine
from hermes_hub.discovery.router import routers as discovery_routers
from hermes_hub.discovery.service import Discovery, reindex
from hermes_hub.errors import install_error_handlers
from hermes_hub.events.broker import EventBroker
from hermes_hub.events.log import BROKER_INFO_KEY
from hermes_hub.events.presence import Presence
from hermes_hub.events.router import router as events_router
from hermes_hub.identity.cache import PrincipalCache
from hermes_hub.identity.permissions_router import routers as permission_routers
from hermes_hub.identity.router import routers as identity_routers
from hermes_hub.identity.usage import KeyUsageRecorder
from hermes_hub.kit.logging import configure_logging
from hermes_hub.kit.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from hermes_hub.kit.ratelimit import RateLimiter
from hermes_hub.ledger.payments import build_providers
from hermes_hub.ledger.router import routers as ledger_routers
from hermes_hub.mesh.router import routers as mesh_routers
from hermes_hub.mesh.scheduler import MeshScheduler
from hermes_hub.ops.metrics import RequestObserver
from hermes_hub.ops.router import router as ops_router
from hermes_hub.runtime import Runtime
from hermes_hub.trust.leaderboard import LeaderboardCache
from hermes_hub.trust.nightly import TrustNightly
from hermes_hub.trust.router import routers as trust_routers
from hermes_hub.trust.service import CHANGE_LISTENER_INFO_KEY

logger = structlog.get_logger(__name__)


def _operation_id(route: APIRoute) -> str:
    # Every route names its operation_id explicitly; this only covers a route that forgot.
    return route.name


async def _backfill(database: Database, discovery: Discovery) -> None:
    try:
        written = await reindex(database, discovery)
    except Exception:  # a failed backfill must not take the hub down; it retries next start
        logger.exception("discovery_backfill_failed")
        return
    if written:
        logger.info("discovery_backfill_done", agents=written)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    check_production_safety(settings)
    configure_logging(level=settings.log_level, fmt=settings.log_format)

    redis_client = (
        # A blocking pool: past its size, requests wait briefly for a connection instead of
        # failing at once (the default pool raises on the 101st concurrent request).
        # from_pool hands the pool to the client, so closing the client closes the pool.
        redis.Redis.from_pool(
            redis.BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=settings.redis_pool_size, timeout=5
            )
        )
        if settings.redis_url
        else None
    )
    worker_id = uuid.uuid4().hex
    # The channel carries the key prefix, so hubs sharing a Redis server do not cross-talk.
    prefix = settings.rate_limit_key_prefix
    event_broker = EventBroker(redis_client, channel=f"{prefix}:events", worker_id=worker_id)
    presence = Presence(
        redis_client,
        key_prefix=prefix,
        worker_id=worker_id,
        ttl_seconds=3 * settings.ws_heartbeat_seconds,
    )
    # Every session carries the broker, so events.log.publish pushes after each commit.
    # The leaderboard cache empties itself after every commit that changed trust.
    leaderboard_cache = LeaderboardCache(redis_client, key=f"{prefix}:trust:generation")
    database = Database.from_engine(
        create_engine(settings),
        session_info={
            BROKER_INFO_KEY: event_broker,
            CHANGE_LISTENER_INFO_KEY: leaderboard_cache.invalidate,
        },
    )

    discovery = Discovery(database, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await event_broker.start()
        await discovery.start()
        # Agents indexed under another model (or none, or before discovery existed) are
        # re-indexed in the background; the catalogue works meanwhile.
        backfill = asyncio.create_task(_backfill(database, discovery))
        app.state.mesh_scheduler.start()
        app.state.trust_nightly.start()
        app.state.a2a.start()
        try:
            yield
        finally:
            backfill.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await backfill
            await app.state.mesh_scheduler.stop()
            await app.state.trust_nightly.stop()
            await app.state.a2a.stop()
            await app.state.key_usage.drain()
            # After everything that may still publish events.
            await event_broker.stop()
            await database.dispose()
            if redis_client is not None:
                await redis_client.aclose()

    app = FastAPI(
        title="Hermes Hub",
        version=__version__,
        description=(
            "A hub where AI agents enroll, find and call each other, compete for work and get paid."
        ),
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    secret_key = resolve_secret_key(settings)
    app.state.runtime = Runtime(settings=settings, secret_key=secret_key)
    app.state.payment_providers = build_providers(settings, secret_key)
    app.state.database = database
    app.state.redis = redis_client
    app.state.rate_limiter = RateLimiter(settings, redis_client=redis_client)
    app.state.request_observer = RequestObserver(database.engine)
    app.state.key_usage = KeyUsageRecorder(database)
    app.state.mesh_scheduler = MeshScheduler(database, settings)
    app.state.trust_nightly = TrustNightly(database, settings)
    app.state.principal_cache = PrincipalCache(settings.auth_cache_seconds)
    app.state.event_broker = event_broker
    app.state.presence = presence
    app.state.leaderboard_cache = leaderboard_cache
    app.state.discovery = discovery
    app.state.a2a = A2AHub(database, discovery, settings)

    install_error_handlers(app)
    app.include_router(ops_router)
    app.include_router(events_router)
    # The A2A gateway first: a forwarded call should not pay for matching every API route.
    for router in (
        *a2a_routers,
        *identity_routers,
        *permission_routers,
        *ledger_routers,
        *mesh_routers,
        *trust_routers,
        *discovery_routers,
    ):
        app.include_router(router)

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Idempotency-Key"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContextMiddleware, observe=app.state.request_observer)
    return app
