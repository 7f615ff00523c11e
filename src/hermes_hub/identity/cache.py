"""A short-lived, per-process cache of resolved bearer tokens.

Resolving a token costs a database round trip on every request; agents call the hub in
tight loops, so a hit rate near 100% is normal. Entries live ``HERMES_AUTH_CACHE_SECONDS``
(never past the API key's expiry) and are dropped in this process as soon as a change to
the agent, its keys or the user commits. Another worker process notices such a change
only when its entry expires: a revoked key or a deactivated user can keep working there
for up to that many seconds. Set it to 0 to resolve every request from the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from hermes_hub.identity.principal import Principal

_MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    fresh_until: float  # time.monotonic()
    valid_until: datetime


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class PrincipalCache:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._entries: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Future[tuple[Principal, datetime]]] = {}

    async def resolve(
        self, digest: str, lookup: Callable[[], Awaitable[tuple[Principal, datetime]]]
    ) -> Principal:
        """Run ``lookup`` once for concurrent misses of the same token and cache its answer.

        When an entry expires under load, every in-flight request of that client misses at
        once; without this they would all query the database together.
        """
        while (pending := self._inflight.get(digest)) is not None:
            try:
                principal, _ = await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request itself was cancelled
                continue  # the request doing the lookup went away; try again
            return principal
        future: asyncio.Future[tuple[Principal, datetime]] = (
            asyncio.get_running_loop().create_future()
        )
        self._inflight[digest] = future
        try:
            principal, valid_until = await lookup()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            # Waiters re-raise it; retrieve it here so an unwaited future logs nothing.
            future.exception()
            raise
        else:
            future.set_result((principal, valid_until))
            self.put(digest, principal, valid_until=valid_until)
            return principal
        finally:
            del self._inflight[digest]

    def get(self, digest: str, *, now: datetime) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.fresh_until <= time.monotonic() or entry.valid_until <= now:
            self._entries.pop(digest, None)
            return None
        return entry.principal

    def put(self, digest: str, principal: Principal, *, valid_until: datetime) -> None:
        """Keep ``principal`` for the TTL, and never past ``valid_until`` (token/key expiry)."""
        if self.ttl_seconds <= 0:
            return
        if len(self._entries) >= _MAX_ENTRIES:
            # Crude but bounded: start over rather than track recency on the hot path.
            self._entries.clear()
        self._entries[digest] = _Entry(principal, time.monotonic() + self.ttl_seconds, valid_until)

    def forget(
        self, *, agent_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None
    ) -> None:
        """Drop every entry for this agent or user (a linear scan: changes are rare)."""

        def matches(principal: Principal) -> bool:
            return (
                agent_id is not None
                and principal.agent is not None
                and principal.agent.id == agent_id
            ) or (
                user_id is not None and principal.user is not None and principal.user.id == user_id
            )

        for digest in [d for d, e in self._entries.items() if matches(e.principal)]:
            self._entries.pop(digest, None)
