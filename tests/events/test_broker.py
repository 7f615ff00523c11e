"""The broker without a database: local fan-out, overflow, the channel format, and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis

from hermes_hub.events.broker import EventBroker, Subscription, decode, encode
from hermes_hub.events.log import EventRecord
from tests.conftest import REDIS_URL, REQUIRE_SERVICES
from tests.events.conftest import eventually

NOW = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def record(
    event_id: int, recipient: str = "agent:a", type_: str = "t", data: dict | None = None
) -> EventRecord:
    return EventRecord(
        id=event_id, recipient=recipient, type=type_, data=data or {}, created_at=NOW
    )


def local_broker(**kwargs) -> EventBroker:
    return EventBroker(None, channel="unused", worker_id="w1", **kwargs)


async def test_each_record_goes_to_every_subscription_of_its_recipient():
    broker = local_broker()
    async with (
        broker.subscribe("agent:a") as first,
        broker.subscribe("agent:a") as second,
        broker.subscribe("user:b") as other,
    ):
        assert broker.subscription_count == 3
        for_a, for_b = record(1, "agent:a"), record(2, "user:b")
        broker.deliver([for_a, for_b, record(3, "agent:nobody")])
        assert first.drain() == [for_a]
        assert second.drain() == [for_a]
        assert other.drain() == [for_b]
    assert broker.subscription_count == 0
    broker.deliver([record(4)])  # nobody listening: nothing to do, nothing raised


async def test_one_record_reaches_1000_subscriptions_and_1000_recipients_fast():
    broker = local_broker()
    async with contextlib.AsyncExitStack() as stack:
        shared = [
            await stack.enter_async_context(broker.subscribe("user:all")) for _ in range(1000)
        ]
        own = [await stack.enter_async_context(broker.subscribe(f"agent:{n}")) for n in range(1000)]
        broadcast = record(1, "user:all")
        fan_out = [record(n + 2, f"agent:{n}") for n in range(1000)]

        started = time.perf_counter()
        broker.deliver([broadcast])
        broker.deliver(fan_out)
        elapsed = time.perf_counter() - started

        assert all(subscription.drain() == [broadcast] for subscription in shared)
        assert [subscription.drain() for subscription in own] == [[r] for r in fan_out]
    # About a millisecond in practice; the bound only catches accidental per-subscriber work.
    assert elapsed < 0.5


async def test_a_full_queue_marks_the_subscription_lagging_until_taken():
    subscription = Subscription("agent:a", maxsize=2)
    for event_id in (1, 2, 3, 4):
        subscription.offer(record(event_id))
    assert subscription.lagging
    await subscription.wait(60)  # returns at once: the socket must re-read the log
    assert subscription.take_lag()
    assert subscription.queue.empty()
    assert not subscription.lagging
    assert not subscription.take_lag()
    subscription.offer(record(5))
    assert subscription.drain() == [record(5)]


async def test_wait_returns_on_a_record_or_after_the_time_given():
    subscription = Subscription("agent:a")
    started = time.monotonic()
    await subscription.wait(0.05)
    assert time.monotonic() - started >= 0.04
    asyncio.get_running_loop().call_soon(subscription.offer, record(1))
    async with asyncio.timeout(5):
        await subscription.wait(60)
    assert subscription.drain() == [record(1)]


def test_channel_message_groups_the_rows_of_one_publish():
    shared = {"contract_id": "c-1", "amount": 5}
    rows = [record(7, "agent:a", "bid", shared), record(8, "user:b", "bid", shared)]
    other = record(9, "agent:a", "award", {"contract_id": "c-1"})
    message = json.loads(encode("w1", [*rows, other]))
    assert message == {
        "origin": "w1",
        "events": [
            {
                "type": "bid",
                "data": shared,
                "created_at": NOW.isoformat(),
                "to": [["agent:a", 7], ["user:b", 8]],
            },
            {
                "type": "award",
                "data": {"contract_id": "c-1"},
                "created_at": NOW.isoformat(),
                "to": [["agent:a", 9]],
            },
        ],
    }
    assert decode(message) == [*rows, other]


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"origin": "w2"}',
        b'{"origin": "w2", "events": [{"type": "t", "data": [], "created_at": "x", "to": []}]}',
        b'{"origin": "w2", "events": [{"type": "t", "data": {}, "created_at": "bad", "to": []}]}',
        b'{"origin": "w2", "events": [{"type": "t", "data": {}, "created_at": "2030-01-01",'
        b' "to": [["agent:a"]]}]}',
    ],
)
async def test_malformed_channel_messages_are_dropped(payload):
    broker = local_broker()
    async with broker.subscribe("agent:a") as subscription:
        broker._receive(payload)
        assert subscription.drain() == []


async def test_messages_from_other_workers_are_delivered_and_own_ones_ignored():
    broker = local_broker()
    async with broker.subscribe("agent:a") as subscription:
        broker._receive(encode("w1", [record(1)]))
        broker._receive(encode("w2", [record(2)]))
        assert subscription.drain() == [record(2)]


@pytest.fixture
async def live_redis_url() -> str:
    if not REDIS_URL:
        if REQUIRE_SERVICES:
            pytest.fail("HERMES_TEST_REQUIRE_SERVICES=1 but HERMES_TEST_REDIS_URL is not set")
        pytest.skip("HERMES_TEST_REDIS_URL not set")
    return REDIS_URL


@contextlib.asynccontextmanager
async def running_broker(
    url: str, channel: str, worker_id: str, **client_options
) -> AsyncIterator[EventBroker]:
    client = redis.Redis.from_url(url, **client_options)
    broker = EventBroker(client, channel=channel, worker_id=worker_id)
    try:
        await broker.start()
        assert broker.listening.is_set()
        yield broker
    finally:
        await broker.stop()
        await client.aclose()


async def test_records_cross_workers_through_redis_once(live_redis_url):
    channel = f"test-{uuid.uuid4().hex}:events"
    async with (
        running_broker(live_redis_url, channel, "w1") as first,
        running_broker(live_redis_url, channel, "w2") as second,
        first.subscribe("agent:a") as here,
        second.subscribe("agent:a") as there,
    ):
        first.deliver([record(1)])
        assert here.drain() == [record(1)]  # local delivery needs no Redis
        await eventually(lambda: not there.queue.empty())
        assert there.drain() == [record(1)]

        second.deliver([record(2)])
        await eventually(lambda: not here.queue.empty())
        # Redis delivers in publish order: an echo of record 1 would have come first.
        assert here.drain() == [record(2)]


async def test_a_dropped_redis_subscription_reconnects_and_resyncs_sockets(live_redis_url):
    channel = f"test-{uuid.uuid4().hex}:events"
    name = f"hermes-test-{uuid.uuid4().hex}"
    admin = redis.Redis.from_url(live_redis_url)
    try:
        async with (
            running_broker(live_redis_url, channel, "w1", client_name=name) as broker,
            running_broker(live_redis_url, channel, "w2") as other,
            broker.subscribe("agent:a") as subscription,
        ):
            [pubsub_client] = [
                c for c in await admin.client_list(_type="pubsub") if c["name"] == name
            ]
            await admin.client_kill_filter(_id=pubsub_client["id"])
            # Back on the channel, it tells its sockets to re-read what they may have missed.
            await eventually(lambda: subscription.lagging)
            assert broker.listening.is_set()
            assert subscription.take_lag()
            other.deliver([record(3)])
            await eventually(lambda: not subscription.queue.empty())
            assert subscription.drain() == [record(3)]
    finally:
        await admin.aclose()


async def test_an_unreachable_redis_never_breaks_delivery():
    # Nothing listens on port 1: every Redis call fails at once.
    client = redis.Redis.from_url("redis://127.0.0.1:1/0")
    broker = EventBroker(client, channel="c", worker_id="w1")
    try:
        await broker.start()
        assert not broker.listening.is_set()
        async with broker.subscribe("agent:a") as subscription:
            broker.deliver([record(1)])
            assert subscription.drain() == [record(1)]
            await eventually(lambda: not broker._outbox)  # attempted, failed, logged
    finally:
        await broker.stop()
        await client.aclose()
