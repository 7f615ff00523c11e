import uuid
from datetime import UTC, datetime, timedelta

from hermes_hub.identity.cache import PrincipalCache, token_digest
from hermes_hub.identity.models import Agent, User
from hermes_hub.identity.principal import Principal

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _user_principal() -> Principal:
    return Principal(user=User(id=uuid.uuid4(), email="a@b.c", password_hash="x", role="user"))


def test_hit_miss_and_forget():
    cache = PrincipalCache(ttl_seconds=60)
    principal = _user_principal()
    digest = token_digest("token")
    assert cache.get(digest, now=NOW) is None
    cache.put(digest, principal, valid_until=NOW + timedelta(hours=1))
    assert cache.get(digest, now=NOW) is principal
    cache.forget(agent_id=principal.user.id)  # an agent with that id: nothing to drop
    assert cache.get(digest, now=NOW) is principal
    cache.forget(user_id=principal.user.id)
    assert cache.get(digest, now=NOW) is None


def test_never_past_the_credential_expiry():
    cache = PrincipalCache(ttl_seconds=60)
    digest = token_digest("token")
    cache.put(digest, _user_principal(), valid_until=NOW + timedelta(seconds=1))
    assert cache.get(digest, now=NOW + timedelta(seconds=2)) is None


def test_zero_ttl_stores_nothing_and_agents_are_forgotten_by_id():
    assert PrincipalCache(ttl_seconds=0).get(token_digest("t"), now=NOW) is None
    disabled = PrincipalCache(ttl_seconds=0)
    disabled.put("d", _user_principal(), valid_until=NOW + timedelta(hours=1))
    assert disabled.get("d", now=NOW) is None
    cache = PrincipalCache(ttl_seconds=60)
    agent = Principal(agent=Agent(id=uuid.uuid4(), owner_id=uuid.uuid4(), name="a", public_key="k"))
    cache.put("a", agent, valid_until=NOW + timedelta(hours=1))
    cache.forget(agent_id=agent.agent.id)
    assert cache.get("a", now=NOW) is None


async def test_concurrent_misses_share_one_lookup():
    import asyncio

    cache = PrincipalCache(ttl_seconds=60)
    principal = _user_principal()
    calls = 0

    async def lookup():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return principal, NOW + timedelta(hours=1)

    results = await asyncio.gather(*(cache.resolve("d", lookup) for _ in range(20)))
    assert calls == 1
    assert all(result is principal for result in results)
    assert cache.get("d", now=NOW) is principal


async def test_a_failed_lookup_fails_every_waiter_and_caches_nothing():
    import asyncio

    import pytest

    cache = PrincipalCache(ttl_seconds=60)

    async def lookup():
        await asyncio.sleep(0.01)
        raise PermissionError("bad token")

    results = await asyncio.gather(
        *(cache.resolve("d", lookup) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(result, PermissionError) for result in results)
    assert cache.get("d", now=NOW) is None
    with pytest.raises(PermissionError):
        await cache.resolve("d", lookup)


async def test_waiters_take_over_when_the_first_lookup_is_cancelled():
    import asyncio

    cache = PrincipalCache(ttl_seconds=60)
    principal = _user_principal()
    started = asyncio.Event()

    async def slow():
        started.set()
        await asyncio.sleep(10)
        raise AssertionError("not reached")

    async def fast():
        return principal, NOW + timedelta(hours=1)

    leader = asyncio.create_task(cache.resolve("d", slow))
    await started.wait()
    waiter = asyncio.create_task(cache.resolve("d", fast))
    await asyncio.sleep(0)
    leader.cancel()
    assert await waiter is principal
    assert leader.cancelled()
