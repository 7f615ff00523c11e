"""Direct calls (the A2A gateway and the execute API) count toward the called agent's trust:
which logged calls count, how many are read, and when the score is recomputed."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select

from hermes_hub.a2a.models import AgentCall
from hermes_hub.kit.time import utcnow
from hermes_hub.trust import nightly, service
from hermes_hub.trust.formula import PRIOR
from hermes_hub.trust.models import TrustScore
from hermes_hub.trust.nightly import CallTrustRefresher
from tests.a2a.helpers import enroll_at
from tests.a2a.stock_agent import stock_agent
from tests.discovery.helpers import add_member, create_org
from tests.events.conftest import eventually
from tests.factories import TestAgent, TestUser, enroll, register
from tests.mesh.helpers import capable_agent, funded_user
from tests.trust.helpers import finish_contract, reputation_of, trust_of

EXECUTE = "/api/v1/agents/execute"


def uid(principal: TestUser | TestAgent) -> uuid.UUID:
    return uuid.UUID(principal.id)


def call_row(
    target: TestAgent,
    *,
    owner: TestUser | None,
    agent: TestAgent | None = None,
    outcome: str = "ok",
    started_at: datetime | None = None,
) -> dict[str, Any]:
    """A call log row as the recorder writes it: ``agent`` (owned by ``owner``) or the user
    ``owner`` calling ``target``."""
    return {
        "id": uuid.uuid4(),
        "target_agent_id": uid(target),
        "caller_agent_id": uid(agent) if agent is not None else None,
        "caller_user_id": uid(owner) if owner is not None and agent is None else None,
        "caller_owner_id": uid(owner) if owner is not None else None,
        "channel": "a2a",
        "method": "SendMessage",
        "started_at": started_at or utcnow(),
        "latency_ms": 3.0,
        "outcome": outcome,
        "error": None,
    }


async def log_calls(app: FastAPI, rows: list[dict[str, Any]]) -> None:
    async with app.state.database.writer() as session:
        await session.execute(insert(AgentCall), rows)
        await session.commit()


async def loaded(app: FastAPI, *agents: TestAgent) -> dict[uuid.UUID, list[Any]]:
    """The agents' counted outcomes, as the app's recompute reads them."""
    params = service.params_from(app.state.runtime.settings)
    async with app.state.database.read_sessions() as session:
        return dict(
            await service.counted_outcomes(
                session,
                [uid(agent) for agent in agents],
                direct_call_weight=params.direct_call_weight,
            )
        )


async def stored_trust(app: FastAPI, agent: TestAgent) -> float:
    async with app.state.database.read_sessions() as session:
        trust = await session.scalar(
            select(TrustScore.trust).where(TrustScore.agent_id == uid(agent))
        )
    assert trust is not None
    return float(trust)


async def recompute(app: FastAPI, *agents: TestAgent) -> None:
    await service.recompute_all(
        app.state.database,
        settings=app.state.runtime.settings,
        now=utcnow(),
        agent_ids=[uid(agent) for agent in agents],
    )


# ---- which calls count ----


async def test_only_unaffiliated_callers_and_the_agents_own_failures_count(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await register(client)
    target = await enroll(client, owner)
    sibling = await enroll(client, owner)
    stranger = await register(client)
    strangers_agent = await enroll(client, stranger)

    counted = [
        call_row(target, owner=stranger, outcome="ok"),
        *(
            call_row(target, owner=stranger, agent=strangers_agent, outcome=outcome)
            for outcome in sorted(service.CALL_FAILURES)
        ),
    ]
    not_counted = [
        call_row(target, owner=owner),  # its owner
        call_row(target, owner=owner, agent=sibling),  # its owner's other agent
        call_row(target, owner=owner, agent=target),  # itself
        call_row(target, owner=None),  # no one answers for it
        # Not the agent's doing: the caller gave up or sent nonsense; unknown outcomes.
        *(
            call_row(target, owner=stranger, outcome=outcome)
            for outcome in ("canceled", "invalid_request", "rejected", "something_new")
        ),
    ]
    await log_calls(app, counted + not_counted)

    outcomes = (await loaded(app, target))[uid(target)]

    assert sorted(o.key for o in outcomes) == sorted(f"call:{row['id']}" for row in counted)
    by_key = {o.key: o for o in outcomes}
    for row in counted:
        got = by_key[f"call:{row['id']}"]
        ok = row["outcome"] == "ok"
        assert (got.success, got.on_time, got.validation_score) == (ok, ok, float(ok))
        assert got.requester == stranger.id
        assert got.direct_call is True
        assert got.base_weight == pytest.approx(0.1)
        assert got.stars is None


async def test_calls_between_members_of_one_organization_do_not_count(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await register(client)
    org = await create_org(client, owner)
    colleague = await register(client)
    await add_member(client, owner, org, colleague)
    colleagues_agent = await enroll(client, colleague)
    org_agent = await enroll(client, owner, organization_id=org["id"])
    plain_agent = await enroll(client, owner)
    outsider = await register(client)

    await log_calls(
        app,
        [
            # The agent's organization has the caller as a member.
            call_row(org_agent, owner=colleague),
            # The two owners share an organization.
            call_row(plain_agent, owner=colleague),
            call_row(plain_agent, owner=colleague, agent=colleagues_agent),
            # Only this one counts.
            call_row(plain_agent, owner=outsider),
        ],
    )

    outcomes = await loaded(app, org_agent, plain_agent)
    assert uid(org_agent) not in outcomes
    assert [o.requester for o in outcomes[uid(plain_agent)]] == [outsider.id]


async def test_only_the_most_recent_counted_calls_are_read_per_agent(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await register(client)
    busy = await enroll(client, owner)
    quiet = await enroll(client, owner)
    caller = await register(client)
    start = utcnow() - timedelta(hours=1)
    limit = service.DIRECT_CALLS_PER_AGENT

    counted = [
        call_row(busy, owner=caller, started_at=start + timedelta(seconds=i))
        for i in range(limit + 50)
    ]
    # Newer than all of them, but calls that do not count must not push counted ones out.
    uncounted = [
        call_row(busy, owner=owner, started_at=start + timedelta(minutes=30, seconds=i))
        for i in range(limit)
    ] + [call_row(busy, owner=caller, outcome="canceled", started_at=start + timedelta(minutes=40))]
    few = [call_row(quiet, owner=caller, started_at=start) for _ in range(5)]
    await log_calls(app, counted + uncounted + few)

    outcomes = await loaded(app, busy, quiet)

    newest = {f"call:{row['id']}" for row in counted[-limit:]}
    assert {o.key for o in outcomes[uid(busy)]} == newest
    assert len(outcomes[uid(quiet)]) == 5
    async with app.state.database.read_sessions() as session:
        three = await service.counted_direct_calls(session, [uid(busy), uid(quiet)], limit=3)
    assert [row[0] for row in three[uid(busy)]] == [row["id"] for row in counted[::-1][:3]]
    assert len(three[uid(quiet)]) == 3


async def test_contracts_and_calls_are_loaded_together_and_counted_apart(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    requester = await funded_user(app, client)
    owner = await register(client)
    agent = await capable_agent(client, owner)
    contract = await finish_contract(client, requester, agent, score=1.0)
    await log_calls(app, [call_row(agent, owner=requester, outcome="ok") for _ in range(4)])

    outcomes = (await loaded(app, agent))[uid(agent)]
    keys = [o.key for o in outcomes]
    assert len(set(keys)) == 5
    assert [o.key for o in outcomes if not o.direct_call] == [contract["id"]]
    assert all(o.key.startswith("call:") for o in outcomes if o.direct_call)

    await recompute(app, agent)
    reputation = await reputation_of(client, agent, requester)
    assert reputation["stats"]["counted_outcomes"] == 1
    assert reputation["breakdown"]["counted_outcomes"] == 1
    assert reputation["breakdown"]["counted_direct_calls"] == 4
    assert reputation["breakdown"]["effective_outcomes"] == pytest.approx(1.4)


# ---- recomputation ----


async def test_a_recompute_reflects_direct_calls(app: FastAPI, client: httpx.AsyncClient) -> None:
    owner = await register(client)
    good = await enroll(client, owner)
    bad = await enroll(client, owner)
    callers = [await register(client) for _ in range(5)]
    await log_calls(
        app,
        [call_row(good, owner=caller) for caller in callers]
        + [call_row(bad, owner=caller, outcome="timeout") for caller in callers],
    )
    assert await stored_trust(app, good) == PRIOR

    await recompute(app, good, bad)

    good_trust = await stored_trust(app, good)
    bad_trust = await stored_trust(app, bad)
    # Five calls weigh half a contract: the score moves, a little.
    assert PRIOR < good_trust < PRIOR + 0.1
    assert PRIOR - 0.1 < bad_trust < PRIOR
    reputation = await reputation_of(client, good, callers[0])
    assert [b["badge"] for b in reputation["badges"]] == ["verified"]
    assert reputation["stats"]["counted_outcomes"] == 0


@pytest.mark.parametrize("settings_overrides", [{"trust_direct_call_weight": 0}])
async def test_a_weight_of_zero_turns_direct_calls_off(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await register(client)
    agent = await enroll(client, owner)
    await log_calls(app, [call_row(agent, owner=await register(client)) for _ in range(5)])

    assert await loaded(app, agent) == {}
    await recompute(app, agent)
    assert await stored_trust(app, agent) == PRIOR


async def test_a_call_through_the_hub_shows_in_trust_without_a_recompute_by_hand(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await register(client)
    caller = await enroll(client, await register(client))
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        for _ in range(3):
            response = await client.post(
                EXECUTE, json={"agent_id": agent.id, "task": "hi"}, headers=caller.headers
            )
            assert response.status_code == 200, response.text
        # The owner's own calls do not count.
        response = await client.post(
            EXECUTE, json={"agent_id": agent.id, "task": "me"}, headers=owner.headers
        )
        assert response.status_code == 200, response.text

    # The log is written in the background; its write starts the agent's recompute.
    await app.state.a2a.recorder.drain()

    async def moved() -> bool:
        return float((await trust_of(client, agent, owner))["trust_score"]) > PRIOR

    await eventually(moved)
    reputation = await reputation_of(client, agent, owner)
    assert reputation["breakdown"]["counted_direct_calls"] == 3
    assert reputation["breakdown"]["effective_outcomes"] == pytest.approx(0.3)


async def test_an_unreachable_agent_loses_trust_through_its_failed_calls(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await register(client)
    caller = await register(client)
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
    response = await client.post(
        EXECUTE, json={"agent_id": agent.id, "task": "anyone there?"}, headers=caller.headers
    )
    assert response.status_code == 502, response.text
    await app.state.a2a.recorder.drain()
    await app.state.a2a.call_trust.drain()

    assert await stored_trust(app, agent) < PRIOR


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_agent_is_recomputed_at_most_once_per_interval(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    owner = await register(client)
    agent = await enroll(client, owner)
    other = await enroll(client, owner)
    caller = await register(client)
    settings = app.state.runtime.settings
    interval = settings.trust_call_recompute_seconds
    assert interval == 60
    clock = FakeClock()
    refresher = CallTrustRefresher(app.state.database, settings, clock=clock)
    try:
        await log_calls(app, [call_row(agent, owner=caller)])
        refresher.note([uid(agent)])
        assert await refresher.flush() == [uid(agent)]
        first = await stored_trust(app, agent)
        assert first > PRIOR

        # More calls within the interval: the agent waits, a newly called one does not.
        await log_calls(app, [call_row(agent, owner=caller), call_row(other, owner=caller)])
        refresher.note([uid(agent), uid(other)])
        assert await refresher.flush() == [uid(other)]
        clock.now += interval - 1
        assert await refresher.flush() == []
        assert await stored_trust(app, agent) == first

        clock.now += 1
        assert await refresher.flush() == [uid(agent)]
        assert await stored_trust(app, agent) > first
        assert await refresher.flush() == []
    finally:
        await refresher.drain()


async def test_drain_recomputes_what_is_waiting(app: FastAPI, client: httpx.AsyncClient) -> None:
    owner = await register(client)
    agent = await enroll(client, owner)
    caller = await register(client)
    refresher = CallTrustRefresher(
        app.state.database, app.state.runtime.settings, clock=FakeClock()
    )
    refresher.note([uid(agent)])
    assert await refresher.flush() == [uid(agent)]
    await log_calls(app, [call_row(agent, owner=caller)])
    refresher.note([uid(agent)])

    await refresher.drain()

    assert await stored_trust(app, agent) > PRIOR


async def test_a_failed_recompute_is_logged_not_raised(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = await enroll(client, await register(client))

    async def broken(*_: Any, **__: Any) -> int:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(nightly.service, "recompute_all", broken)
    refresher = CallTrustRefresher(app.state.database, app.state.runtime.settings)
    refresher.note([uid(agent)])
    assert await refresher.flush() == [uid(agent)]
    await refresher.drain()


@pytest.mark.parametrize("settings_overrides", [{"trust_direct_call_weight": 0}])
async def test_with_direct_calls_off_nothing_is_queued(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    agent = await enroll(client, await register(client))
    refresher = CallTrustRefresher(app.state.database, app.state.runtime.settings)
    refresher.note([uid(agent)])
    assert await refresher.flush(force=True) == []
