"""Push committed events to this worker's sockets, and through Redis to every other worker's.

``deliver`` runs right after a commit (``events.log.publish`` registers it): it hands each
record to the local subscriptions of its recipient (one dict lookup per record, nothing
awaited) and, with Redis, queues one message for the channel so the other workers hand the
records to theirs. Redis pub/sub is fire-and-forget; a message lost while Redis is down or a
worker reconnects costs latency, not events: every socket re-reads the log on its heartbeat,
and all of a worker's sockets re-read it at once when its Redis subscription comes back.

Channel message (JSON), one per commit, records sharing type, data and time grouped::

    {"origin": "<worker id>", "events": [
        {"type": "...", "data": {...}, "created_at": "<ISO 8601>",
         "to": [["agent:<uuid>", 41], ["user:<uuid>", 42]]}]}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, cast

import redis.asyncio as redis
import structlog
from redis.exceptions import RedisError

from hermes_hub.events.log import EventRecord

QUEUE_SIZE = 10_000
OUTBOX_SIZE = 10_000
START_TIMEOUT_SECONDS = 2.0
RECONNECT_MIN_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0

logger = structlog.get_logger(__name__)


class Subscription:
    """One socket's inbox for one recipient.

    Records arrive on ``queue`` in delivery order. When it is full the subscription turns
    ``lagging`` and drops what follows: the socket must then call ``take_lag`` and re-read
    the log, which holds every dropped record (they were committed before delivery).
    """

    def __init__(self, recipient: str, maxsize: int = QUEUE_SIZE) -> None:
        self.recipient = recipient
        self.queue: asyncio.Queue[EventRecord] = asyncio.Queue(maxsize)
        self.lagging = False
        self._wakeup = asyncio.Event()

    def offer(self, record: EventRecord) -> None:
        if self.lagging:
            return
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            self.lagging = True
        self._wakeup.set()

    def mark_lagging(self) -> None:
        """Make the socket re-read the log (records may have been missed)."""
        self.lagging = True
        self._wakeup.set()

    async def wait(self, seconds: float) -> None:
        """Return once records are queued or the subscription lags, or after ``seconds``."""
        if self.lagging or not self.queue.empty() or seconds <= 0:
            return
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()

    def take_lag(self) -> bool:
        """If lagging: empty the queue, clear the flag and return True (then re-read the log).

        Records queued from here on are kept again, so a log read started after this call
        misses nothing: what it does not see yet arrives on the queue.
        """
        if not self.lagging:
            return False
        self.drain()
        self.lagging = False
        return True

    def drain(self) -> list[EventRecord]:
        records: list[EventRecord] = []
        while True:
            try:
                records.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                return records


def encode(origin: str, records: Sequence[EventRecord]) -> str:
    """The channel message for ``records``; one ``publish`` call's rows share one group."""
    groups: dict[tuple[str, int, datetime], dict[str, Any]] = {}
    for record in records:
        # Rows of one publish share the very same data dict; identity is a cheap grouping key.
        key = (record.type, id(record.data), record.created_at)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "type": record.type,
                "data": record.data,
                "created_at": record.created_at.isoformat(),
                "to": [],
            }
        group["to"].append([record.recipient, record.id])
    return json.dumps({"origin": origin, "events": list(groups.values())}, separators=(",", ":"))


def decode(message: dict[str, Any]) -> list[EventRecord]:
    """The records of a channel message; raises ValueError/KeyError/TypeError if malformed."""
    records: list[EventRecord] = []
    for group in message["events"]:
        event_type, data = str(group["type"]), group["data"]
        if not isinstance(data, dict):
            raise TypeError("event data must be an object")
        created_at = datetime.fromisoformat(group["created_at"])
        for recipient, event_id in group["to"]:
            records.append(
                EventRecord(
                    id=int(event_id),
                    recipient=str(recipient),
                    type=event_type,
                    data=data,
                    created_at=created_at,
                )
            )
    return records


class EventBroker:
    """Fan committed events out to live subscriptions, in this worker and (with Redis) all."""

    def __init__(
        self,
        redis_client: redis.Redis | None,
        *,
        channel: str,
        worker_id: str,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.channel = channel
        self.worker_id = worker_id
        self._redis = redis_client
        self._queue_size = queue_size
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._outbox: deque[str] = deque(maxlen=OUTBOX_SIZE)
        self._outbox_ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._first_attempt = asyncio.Event()
        # Set while the Redis subscription is live (for health checks and tests).
        self.listening = asyncio.Event()

    @property
    def subscription_count(self) -> int:
        return sum(len(subscriptions) for subscriptions in self._subscriptions.values())

    def deliver(self, records: Sequence[EventRecord]) -> None:
        """Hand committed records to live sockets here and, through Redis, everywhere else.

        Synchronous and never raises for Redis trouble: it runs after the commit.
        """
        if not records:
            return
        self._deliver_local(records)
        if self._redis is not None:
            if len(self._outbox) == self._outbox.maxlen:
                logger.warning("event_outbox_full", dropped=1)
            self._outbox.append(encode(self.worker_id, records))
            self._outbox_ready.set()

    def _deliver_local(self, records: Sequence[EventRecord]) -> None:
        subscriptions = self._subscriptions
        for record in records:
            targets = subscriptions.get(record.recipient)
            if targets:
                for subscription in targets:
                    subscription.offer(record)

    @asynccontextmanager
    async def subscribe(self, recipient: str) -> AsyncIterator[Subscription]:
        """Receive ``recipient``'s records delivered while the block runs."""
        subscription = Subscription(recipient, self._queue_size)
        self._subscriptions.setdefault(recipient, set()).add(subscription)
        try:
            yield subscription
        finally:
            targets = self._subscriptions.get(recipient)
            if targets is not None:
                targets.discard(subscription)
                if not targets:
                    del self._subscriptions[recipient]

    async def start(self) -> None:
        """Start publishing to and listening on the Redis channel (no-op without Redis).

        Waits briefly for the subscription, so events published just after startup reach
        this worker, but never fails: without Redis the listener keeps retrying.
        """
        if self._redis is None or self._tasks:
            return
        for work in (self._publish_loop(self._redis), self._listen_loop(self._redis)):
            task = asyncio.create_task(work)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                await self._first_attempt.wait()

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._first_attempt.clear()
        self.listening.clear()

    async def _publish_loop(self, client: redis.Redis) -> None:
        backoff = RECONNECT_MIN_SECONDS
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            batch = list(self._outbox)
            self._outbox.clear()
            if not batch:
                continue
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for payload in batch:
                        pipe.publish(self.channel, payload)
                    await pipe.execute()
                backoff = RECONNECT_MIN_SECONDS
            except (RedisError, OSError) as exc:
                # Other workers' sockets find these events in the log at their next heartbeat.
                logger.warning("event_publish_failed", error=repr(exc), dropped=len(batch))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    async def _listen_loop(self, client: redis.Redis) -> None:
        backoff = RECONNECT_MIN_SECONDS
        lost = False
        while True:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.listening.set()
                self._first_attempt.set()
                if lost:
                    # Messages published while we were away are gone; the log has the events.
                    logger.info("event_channel_resubscribed", channel=self.channel)
                    self._resync_all()
                    lost = False
                backoff = RECONNECT_MIN_SECONDS
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._receive(message["data"])
            except (RedisError, OSError) as exc:
                logger.warning("event_channel_lost", error=repr(exc), retry_in=backoff)
            finally:
                self.listening.clear()
                with contextlib.suppress(RedisError, OSError):
                    # Typed from redis-py 8 on, untyped before: Any suits both.
                    await cast(Any, pubsub).aclose()
            lost = True
            self._first_attempt.set()
            await asyncio.sleep(backoff * random.uniform(0.5, 1.5))  # noqa: S311
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    def _receive(self, payload: bytes | str) -> None:
        try:
            message = json.loads(payload)
            if message.get("origin") == self.worker_id:
                return
            records = decode(message)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("event_message_malformed", error=repr(exc))
            return
        self._deliver_local(records)

    def _resync_all(self) -> None:
        for targets in self._subscriptions.values():
            for subscription in targets:
                subscription.mark_lagging()
