"""Rate limiting on the ``limits`` library: in-process by default, Redis when configured."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis

from hermes_hub.config import Settings
from hermes_hub.errors import HubError


class RateLimitedError(HubError):
    status = 429
    code = "rate_limited"


@dataclass(frozen=True)
class Policies:
    default: RateLimitItem
    login: RateLimitItem
    register: RateLimitItem
    enroll: RateLimitItem
    anonymous: RateLimitItem


class RateLimiter:
    def __init__(self, settings: Settings, *, redis_client: Redis | None = None) -> None:
        self.enabled = settings.rate_limit_enabled
        self.policies = Policies(
            default=parse(settings.rate_limit_default),
            login=parse(settings.rate_limit_login),
            register=parse(settings.rate_limit_register),
            enroll=parse(settings.rate_limit_enroll),
            anonymous=parse(settings.rate_limit_anonymous),
        )
        self.storage: Storage
        if redis_client is not None:
            # Share the app's connection pool, so closing the app closes these connections too.
            self.storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=settings.rate_limit_key_prefix,
                # limits types its options as scalars, but hands them to redis-py as is.
                connection_pool=redis_client.connection_pool,  # type: ignore[arg-type]
            )
        else:
            self.storage = MemoryStorage()
        self._strategy = SlidingWindowCounterRateLimiter(self.storage)

    async def hit(self, item: RateLimitItem, scope: str, key: str) -> None:
        """Count one request for ``key``; raise ``RateLimitedError`` (429) once over the limit."""
        if not self.enabled:
            return
        if await self._strategy.hit(item, scope, key):
            return
        stats = await self._strategy.get_window_stats(item, scope, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimitedError(
            f"Too many requests ({item}); retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            extra={"retry_after": retry_after},
        )
