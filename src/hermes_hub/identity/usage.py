"""Recording when an API key was last used, off the request path.

Writing ``last_used_at`` inside each request would make every authenticated read a write,
and doing it on a second connection while the request holds its first can exhaust the
pool under load (each request waiting for a connection that only another waiting request
could free). So the write happens in a background task with its own short transaction,
at most once per ``LAST_USED_RESOLUTION`` per key in each process.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import structlog

from hermes_hub.db.session import Database
from hermes_hub.identity import service
from hermes_hub.identity.models import AgentApiKey

LAST_USED_RESOLUTION = timedelta(minutes=1)
_MAX_TRACKED_KEYS = 10_000

logger = structlog.get_logger(__name__)


class KeyUsageRecorder:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._recorded: dict[uuid.UUID, datetime] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def record(self, key: AgentApiKey, now: datetime) -> None:
        last = self._recorded.get(key.id) or key.last_used_at
        if last is not None and now - last < LAST_USED_RESOLUTION:
            return
        if len(self._recorded) >= _MAX_TRACKED_KEYS:
            self._recorded = {
                key_id: seen
                for key_id, seen in self._recorded.items()
                if now - seen < LAST_USED_RESOLUTION
            }
        self._recorded[key.id] = now
        task = asyncio.create_task(self._write(key.id, now))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, key_id: uuid.UUID, now: datetime) -> None:
        try:
            async with self._database.writer() as session:
                await service.touch_api_key(session, key_id=key_id, now=now)
                await session.commit()
        except Exception as exc:  # a lost usage timestamp must never fail anything else
            self._recorded.pop(key_id, None)
            logger.warning("api_key_usage_not_recorded", key_id=str(key_id), error=repr(exc))

    async def drain(self) -> None:
        """Wait for pending writes (at shutdown, and in tests)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
