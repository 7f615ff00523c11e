"""Which agents are online: an agent with at least one open agent socket is.

Each worker counts its own sockets per agent. With Redis, each worker also keeps a member
(its worker id) in a sorted set per agent, ``<prefix>:presence:<agent_id>``, scored with
the time at which that member expires (now + TTL, the TTL being three heartbeats). Sockets
refresh their worker's member on every heartbeat; a worker removes its member when its last
socket for the agent closes. The agent is online while any member's score is in the future,
so one worker's disconnect never hides another worker's socket, and a worker that dies
without cleaning up stops counting within one TTL. The key itself expires one TTL after the
last refresh, so abandoned keys vanish. Scores use each worker's clock: skew between
workers shifts expiry by that much, which a TTL of tens of seconds absorbs.

Without Redis (the embedded, single-worker mode) presence is this process's count only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

import redis.asyncio as redis
import structlog
from redis.exceptions import RedisError

from hermes_hub.events.errors import PresenceUnavailableError

logger = structlog.get_logger(__name__)


class Presence:
    def __init__(
        self,
        redis_client: redis.Redis | None,
        *,
        key_prefix: str,
        worker_id: str,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis_client
        self._key_prefix = key_prefix
        self._worker_id = worker_id
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._clock = clock
        self._sockets: dict[uuid.UUID, int] = {}

    def key(self, agent_id: uuid.UUID) -> str:
        return f"{self._key_prefix}:presence:{agent_id}"

    @asynccontextmanager
    async def track(self, agent_id: uuid.UUID) -> AsyncIterator[None]:
        """Count the agent online for as long as the block (one socket) runs."""
        await self.connected(agent_id)
        try:
            yield
        finally:
            await self.disconnected(agent_id)

    async def connected(self, agent_id: uuid.UUID) -> None:
        self._sockets[agent_id] = self._sockets.get(agent_id, 0) + 1
        await self.refresh(agent_id)

    async def refresh(self, agent_id: uuid.UUID) -> None:
        """Push this worker's expiry for the agent one TTL ahead (on every heartbeat)."""
        if self._redis is None or not self._sockets.get(agent_id):
            return
        now_ms = self._now_ms()
        key = self.key(agent_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(key, {self._worker_id: now_ms + self._ttl_ms})
                # Members of workers that died without cleaning up.
                pipe.zremrangebyscore(key, "-inf", now_ms)
                # This refresh is the latest, so no member outlives the key.
                pipe.pexpire(key, self._ttl_ms)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # Presence is advisory: the socket keeps working; the next heartbeat retries.
            logger.warning("presence_refresh_failed", agent_id=str(agent_id), error=repr(exc))

    async def disconnected(self, agent_id: uuid.UUID) -> None:
        remaining = self._sockets.get(agent_id, 0) - 1
        if remaining > 0:
            self._sockets[agent_id] = remaining
            return
        self._sockets.pop(agent_id, None)
        if self._redis is None:
            return
        try:
            await self._redis.zrem(self.key(agent_id), self._worker_id)
        except (RedisError, OSError) as exc:
            logger.warning("presence_clear_failed", agent_id=str(agent_id), error=repr(exc))
            return
        # A socket for the agent may have opened here while the removal was in flight, its
        # refresh landing first: put the member back.
        await self.refresh(agent_id)

    def local_count(self, agent_id: uuid.UUID) -> int:
        return self._sockets.get(agent_id, 0)

    async def is_online(self, agent_id: uuid.UUID) -> bool:
        """Raises ``PresenceUnavailableError`` (503) if Redis is configured but unreachable."""
        return agent_id in await self.online([agent_id])

    async def online(self, agent_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``agent_ids`` that are online (one Redis round trip for all of them).

        Raises ``PresenceUnavailableError`` (503) if Redis is configured but unreachable.
        """
        wanted = list(dict.fromkeys(agent_ids))
        found = {agent_id for agent_id in wanted if self._sockets.get(agent_id)}
        elsewhere = [agent_id for agent_id in wanted if agent_id not in found]
        if self._redis is None or not elsewhere:
            return found
        now_ms = self._now_ms()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for agent_id in elsewhere:
                    pipe.zcount(self.key(agent_id), f"({now_ms}", "+inf")
                counts = await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("presence_read_failed", error=repr(exc))
            raise PresenceUnavailableError(
                "Presence is unavailable: the Redis server is unreachable. Retry shortly.",
                headers={"Retry-After": "5"},
            ) from exc
        found.update(agent_id for agent_id, count in zip(elsewhere, counts, strict=True) if count)
        return found

    def _now_ms(self) -> int:
        return round(self._clock() * 1000)
