"""Presence: per-process socket counts, and per-worker members in Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from hermes_hub.events.errors import PresenceUnavailableError
from hermes_hub.events.presence import Presence
from tests.conftest import REDIS_URL, REQUIRE_SERVICES

TTL = 45.0


async def test_in_process_presence_counts_sockets():
    presence = Presence(None, key_prefix="p", worker_id="w1", ttl_seconds=TTL)
    agent, idle = uuid.uuid4(), uuid.uuid4()
    await presence.connected(agent)
    await presence.connected(agent)
    await presence.disconnected(agent)
    assert await presence.is_online(agent)
    assert await presence.online([agent, idle]) == {agent}
    await presence.disconnected(agent)
    assert not await presence.is_online(agent)
    async with presence.track(idle):
        assert await presence.is_online(idle)
    assert not await presence.is_online(idle)


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    if not REDIS_URL:
        if REQUIRE_SERVICES:
            pytest.fail("HERMES_TEST_REQUIRE_SERVICES=1 but HERMES_TEST_REDIS_URL is not set")
        pytest.skip("HERMES_TEST_REDIS_URL not set")
    connection = redis.Redis.from_url(REDIS_URL)
    yield connection
    await connection.aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_one_workers_disconnect_does_not_hide_anothers_socket(client):
    prefix = f"test-{uuid.uuid4().hex}"
    first = Presence(client, key_prefix=prefix, worker_id="w1", ttl_seconds=TTL)
    second = Presence(client, key_prefix=prefix, worker_id="w2", ttl_seconds=TTL)
    agent = uuid.uuid4()
    await first.connected(agent)
    await second.connected(agent)
    await first.disconnected(agent)
    assert await first.is_online(agent)  # seen through Redis: w2 still holds a socket
    await second.disconnected(agent)
    assert not await first.is_online(agent)
    assert not await second.is_online(agent)
    assert not await client.exists(first.key(agent))


async def test_a_dead_workers_member_expires_after_the_ttl(client):
    prefix = f"test-{uuid.uuid4().hex}"
    clock = Clock()
    dead = Presence(client, key_prefix=prefix, worker_id="w1", ttl_seconds=TTL, clock=clock)
    observer = Presence(client, key_prefix=prefix, worker_id="w2", ttl_seconds=TTL, clock=clock)
    agent = uuid.uuid4()
    await dead.connected(agent)  # and the worker dies without disconnecting
    clock.now += TTL - 1
    assert await observer.online([agent]) == {agent}
    clock.now += 2
    assert await observer.online([agent]) == set()
    # The key expires by itself too, one TTL after the last refresh.
    assert 0 < await client.pttl(dead.key(agent)) <= TTL * 1000


async def test_a_heartbeat_refresh_keeps_the_agent_online(client):
    prefix = f"test-{uuid.uuid4().hex}"
    clock = Clock()
    worker = Presence(client, key_prefix=prefix, worker_id="w1", ttl_seconds=TTL, clock=clock)
    observer = Presence(client, key_prefix=prefix, worker_id="w2", ttl_seconds=TTL, clock=clock)
    agent = uuid.uuid4()
    async with worker.track(agent):
        for _ in range(3):
            clock.now += TTL / 3
            await worker.refresh(agent)
        clock.now += TTL - 1
        assert await observer.is_online(agent)
    assert not await observer.is_online(agent)


async def test_an_unreachable_redis_fails_reads_but_not_sockets():
    client = redis.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        presence = Presence(client, key_prefix="p", worker_id="w1", ttl_seconds=TTL)
        agent = uuid.uuid4()
        async with presence.track(agent):
            assert await presence.is_online(agent)  # known here without asking Redis
        with pytest.raises(PresenceUnavailableError):
            await presence.is_online(agent)
    finally:
        await client.aclose()
