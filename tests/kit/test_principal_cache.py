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
