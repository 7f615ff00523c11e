"""The A2A side of one hub process: outbound clients, the call log, card refreshes and the
periodic health check."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

import structlog
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.a2a import service
from hermes_hub.a2a.calls import CallRecorder
from hermes_hub.a2a.cards import FetchedCard, fetch_card
from hermes_hub.a2a.gateway import GatewayContextBuilder, HubRequestHandler
from hermes_hub.a2a.models import AgentCardRecord
from hermes_hub.a2a.upstream import UpstreamPool
from hermes_hub.config import Settings
from hermes_hub.db.session import Database
from hermes_hub.db.transaction import in_transaction
from hermes_hub.discovery import service as discovery_service
from hermes_hub.discovery.service import Discovery
from hermes_hub.errors import HubError
from hermes_hub.identity.errors import AgentNotFoundError
from hermes_hub.identity.models import Agent
from hermes_hub.kit.safe_http import OutboundPolicy, guarded_client
from hermes_hub.kit.time import utcnow
from hermes_hub.trust.nightly import CallTrustRefresher

logger = structlog.get_logger(__name__)


class A2AHub:
    def __init__(self, database: Database, discovery: Discovery, settings: Settings) -> None:
        self.settings = settings
        self._database = database
        self._discovery = discovery
        card_timeout = settings.a2a_card_timeout_seconds
        self.card_policy = OutboundPolicy(
            allow_private=settings.allow_private_endpoints,
            connect_timeout=min(5.0, card_timeout),
            read_timeout=card_timeout,
            total_timeout=card_timeout,
            max_response_bytes=settings.a2a_card_max_bytes,
        )
        self.call_policy = OutboundPolicy(allow_private=settings.allow_private_endpoints)
        self.pool = UpstreamPool(self.call_policy, call_timeout=settings.a2a_call_timeout_seconds)
        # Every logged call counts toward its agent's trust, recomputed in the background.
        self.call_trust = CallTrustRefresher(database, settings)
        self.recorder = CallRecorder(database, on_written=self.call_trust.note)
        self.plans = service.PlanCache(settings.a2a_acl_cache_seconds)
        self.dispatcher = JsonRpcDispatcher(
            request_handler=HubRequestHandler(self.pool, self.recorder),
            context_builder=GatewayContextBuilder(),
            enable_v0_3_compat=True,
        )
        self._health_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # ---- cards ----

    async def refresh_card(self, agent_id: uuid.UUID) -> AgentCardRecord:
        """Fetch the agent's card now and store it; a failure counts as a failed check and
        raises the fetch's problem (422, 502 or 504)."""
        async with self._database.read_sessions() as session:
            agent = await session.get(Agent, agent_id)
            if agent is None:
                raise AgentNotFoundError("No such agent.")
            endpoint = agent.endpoint_url
        if endpoint is None:
            raise HubError(
                "This agent has no endpoint_url; set one to publish an A2A card.",
                status=409,
                code="no_endpoint",
            )
        try:
            async with guarded_client(self.card_policy) as client:
                fetched = await fetch_card(client, endpoint, policy=self.card_policy)
        except HubError as exc:
            await self._count_failure(agent_id, exc.detail)
            raise
        return await self._store(agent_id, fetched)

    async def _store(self, agent_id: uuid.UUID, fetched: FetchedCard) -> AgentCardRecord:
        async def store(session: AsyncSession) -> AgentCardRecord:
            agent = await session.get(Agent, agent_id)
            if agent is None:
                raise AgentNotFoundError("No such agent.")
            record, changed = await service.store_card(
                session, agent=agent, fetched=fetched, now=utcnow()
            )
            if changed:
                await discovery_service.index_agent(session, self._discovery, agent)
            return record

        record = await in_transaction(self._database, store)
        self.pool.forget(agent_id)
        self.plans.forget(agent_id)
        return record

    async def _count_failure(self, agent_id: uuid.UUID, error: str) -> None:
        async def count(session: AsyncSession) -> None:
            agent = await session.get(Agent, agent_id)
            if agent is not None:
                await service.record_card_failure(
                    session,
                    agent=agent,
                    error=error,
                    failures_before_unavailable=self.settings.a2a_failures_before_unavailable,
                    now=utcnow(),
                )

        await in_transaction(self._database, count)

    def refresh_soon(self, agent_id: uuid.UUID) -> None:
        """Fetch the card in the background (after enrollment or an endpoint change)."""
        task = asyncio.create_task(self._refresh_quietly(agent_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh_quietly(self, agent_id: uuid.UUID) -> None:
        try:
            await self.refresh_card(agent_id)
        except HubError as exc:
            logger.info("a2a_card_not_fetched", agent_id=str(agent_id), error=exc.detail)
        except Exception:  # a background fetch must never take anything down
            logger.exception("a2a_card_refresh_failed", agent_id=str(agent_id))

    async def settle_background(self) -> None:
        """Wait for background card fetches (in tests, and at shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def check_all(self) -> dict[str, int]:
        """One health-check pass: re-fetch the cards nobody checked in the last half
        interval (other workers run the same loop), a few at a time."""
        interval = self.settings.a2a_health_interval_seconds
        async with self._database.read_sessions() as session:
            targets = await service.agents_due_for_check(
                session, checked_before=utcnow() - timedelta(seconds=interval / 2)
            )
        results = {"ok": 0, "failed": 0}
        limit = asyncio.Semaphore(8)

        async def check(agent_id: uuid.UUID) -> None:
            async with limit:
                try:
                    await self.refresh_card(agent_id)
                    results["ok"] += 1
                except HubError:
                    results["failed"] += 1

        await asyncio.gather(*(check(agent_id) for agent_id in targets))
        return results

    # ---- lifecycle ----

    def start(self) -> None:
        if self.settings.a2a_health_interval_seconds > 0 and self._health_task is None:
            self._health_task = asyncio.create_task(self._health_loop())

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.a2a_health_interval_seconds)
            try:
                results = await self.check_all()
                logger.info("a2a_health_check", **results)
            except Exception:  # a failed pass must not end the loop; the next one retries
                logger.exception("a2a_health_check_failed")

    async def stop(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        for task in list(self._background):
            task.cancel()
        await self.settle_background()
        await self.recorder.drain()
        await self.call_trust.drain()
        await self.pool.aclose()
