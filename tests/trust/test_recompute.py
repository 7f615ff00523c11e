"""Incremental and batch recomputation agree exactly.

Every settlement, failure, ruling and rating recomputes its agent in the same transaction;
``recompute_all`` (the nightly job, ``hermes trust recompute --all``, the admin endpoint)
recomputes from the outcomes alone. Run on the same UTC day, both must store the very same
numbers, to the last bit of every float.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, update

from hermes_hub.identity.models import Agent
from hermes_hub.kit.time import utcnow
from hermes_hub.trust.models import TrustBadge, TrustDaily, TrustScore
from hermes_hub.trust.service import recompute_all
from tests.conftest import TEST_SECRET
from tests.factories import TestAgent, TestUser, assert_problem, register
from tests.ledger.helpers import make_admin
from tests.mesh.helpers import CONTRACTS, bid, capable_agent, funded_user, post_contract
from tests.trust.helpers import finish_contract, trust_of

AGENTS = "/api/v1/agents"
RECOMPUTE = "/api/v1/admin/trust/recompute"
CLI_TRUST = Path(__file__).resolve().parents[2] / "src" / "hermes_hub" / "cli" / "trust.py"


# ---- a realistic mix of outcomes, through the API ----


@dataclass
class World:
    admin: TestUser
    agents: dict[str, TestAgent]

    def id(self, name: str) -> uuid.UUID:
        return uuid.UUID(self.agents[name].id)


async def rate(
    client: httpx.AsyncClient,
    requester: Any,
    agent: TestAgent,
    contract: dict[str, Any],
    stars: int,
) -> None:
    response = await client.post(
        f"{AGENTS}/{agent.id}/rate",
        json={"contract_id": contract["id"], "stars": stars},
        headers=requester.headers,
    )
    assert response.status_code == 201, response.text


async def edit(
    client: httpx.AsyncClient,
    requester: Any,
    agent: TestAgent,
    contract: dict[str, Any],
    stars: int,
) -> None:
    response = await client.put(
        f"{AGENTS}/{agent.id}/ratings/{contract['id']}",
        json={"stars": stars, "quality": stars},
        headers=requester.headers,
    )
    assert response.status_code == 200, response.text


async def resolve(
    client: httpx.AsyncClient, admin: TestUser, contract: dict[str, Any], **ruling: Any
) -> None:
    assert contract["status"] == "disputed"
    response = await client.post(
        f"{CONTRACTS}/{contract['id']}/dispute/resolve", json=ruling, headers=admin.headers
    )
    assert response.status_code == 200, response.text


async def fail(app: FastAPI, client: httpx.AsyncClient, requester: Any, agent: TestAgent) -> None:
    """Awarded with a 60-second delivery window and never delivered: the scheduler fails it."""
    contract = await post_contract(client, requester, bidding_seconds=600, deadline_seconds=60)
    placed = await bid(client, agent, contract["id"], eta_seconds=30)
    assert placed.status_code == 201, placed.text
    awarded = await client.post(f"{CONTRACTS}/{contract['id']}/award", headers=requester.headers)
    assert awarded.status_code == 200, awarded.text
    done = await app.state.mesh_scheduler.run_due(now=utcnow() + timedelta(seconds=120))
    assert done.get("failed") == 1, done


async def agent_requester(app: FastAPI, client: httpx.AsyncClient, admin: TestUser) -> TestAgent:
    owner = await funded_user(app, client, credits=100, admin=admin)
    robot = await capable_agent(client, owner, capabilities=["plan"])
    moved = await client.post(
        "/api/v1/wallet/transfers",
        json={"amount": 60, "destination": f"agent:{robot.id}"},
        headers=owner.headers,
    )
    assert moved.status_code in (200, 201), moved.text
    return robot


async def realistic_mix(app: FastAPI, client: httpx.AsyncClient) -> World:
    admin = await make_admin(app, client)
    alice, bob, carol = [await funded_user(app, client, credits=300, admin=admin) for _ in range(3)]
    robot = await agent_requester(app, client, admin)
    ann, ben, cat, dan = [await capable_agent(client) for _ in range(4)]
    fay_owner = await register(client)
    fay = await capable_agent(client, fay_owner)
    eve_owner = await register(client)
    eve = await capable_agent(client, eve_owner)

    # ann: a main customer over the requester cap, varied scores, ratings given at settlement
    # and afterwards, one edited, and an agent requester.
    for score, rating in [(1.0, 5), (0.9, 4), (0.8, None), (1.0, 5), (0.7, 2), (0.65, None)]:
        await finish_contract(client, alice, ann, score=score, rating=rating)
    by_bob = await finish_contract(client, bob, ann, score=0.95)
    await rate(client, bob, ann, by_bob, 3)
    await edit(client, bob, ann, by_bob, 4)
    by_robot = await finish_contract(client, robot, ann, score=1.0, rating=5)
    await edit(client, robot, ann, by_robot, 3)
    await finish_contract(client, carol, ann, score=0.6)  # barely a success

    # ben: a success, a missed deadline, a dispute split 50/50 (its rating is not kept).
    await finish_contract(client, alice, ben, score=0.85, rating=4)
    await fail(app, client, bob, ben)
    split = await finish_contract(client, carol, ben, score=0.4, rating=1)
    await resolve(client, admin, split, outcome="partial", percent=50)

    # cat: a refunded dispute, then a rated success and a dispute paid in full, rated after.
    await resolve(
        client, admin, await finish_contract(client, bob, cat, score=0.2), outcome="refund"
    )
    await finish_contract(client, carol, cat, score=0.75, rating=2)
    paid = await finish_contract(client, alice, cat, score=0.5)
    await resolve(client, admin, paid, outcome="pay_agent")
    await rate(client, alice, cat, paid, 5)

    # eve: one outcome inside an organization (no credit), one from outside.
    org = await client.post(
        "/api/v1/orgs", json={"name": "Eve & Co", "slug": "eve-co"}, headers=eve_owner.headers
    )
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    member = await client.post(
        f"/api/v1/orgs/{org_id}/members",
        json={"email": carol.email, "role": "member"},
        headers=eve_owner.headers,
    )
    assert member.status_code in (200, 201), member.text
    moved = await client.put(f"/api/v1/orgs/{org_id}/agents/{eve.id}", headers=eve_owner.headers)
    assert moved.status_code == 200, moved.text
    await finish_contract(client, carol, eve, score=1.0, rating=5)
    await finish_contract(client, bob, eve, score=0.9, rating=4)

    # fay: one outcome, then paused by its owner (pausing changes no score). dan: nothing.
    await finish_contract(client, alice, fay, score=1.0, rating=5)
    paused = await client.patch(
        f"{AGENTS}/{fay.id}", json={"status": "paused"}, headers=fay_owner.headers
    )
    assert paused.status_code == 200, paused.text
    return World(admin, {"ann": ann, "ben": ben, "cat": cat, "dan": dan, "eve": eve, "fay": fay})


# ---- reading what is stored ----

SCORE_FIELDS = [
    "trust",
    "raw",
    "grade",
    "level",
    "effective_outcomes",
    "counted_outcomes",
    "total_outcomes",
    "successes",
    "rating_count",
    "mean_rating",
    "earned_units",
    "on_probation",
    "breakdown",
]


async def stored(app: FastAPI) -> dict[str, Any]:
    async with app.state.database.read_sessions() as session:
        scores = (await session.scalars(select(TrustScore))).all()
        badges = (await session.execute(select(TrustBadge.agent_id, TrustBadge.badge))).all()
        daily = (await session.scalars(select(TrustDaily))).all()
    return {
        "scores": {s.agent_id: {f: getattr(s, f) for f in SCORE_FIELDS} for s in scores},
        "computed_at": {s.agent_id: s.computed_at for s in scores},
        "badges": sorted((str(agent_id), badge) for agent_id, badge in badges),
        "daily": {(d.agent_id, d.day): (d.trust, d.grade, d.counted_outcomes) for d in daily},
    }


def same_day_or_skip(computed: dict[uuid.UUID, datetime], now: datetime) -> None:
    days = {moment.date() for moment in computed.values()}
    if days != {now.date()}:  # the test ran across midnight UTC: ages moved by a day
        pytest.skip("the scenario crossed midnight UTC")


async def agent_count(app: FastAPI) -> int:
    async with app.state.database.read_sessions() as session:
        return len((await session.scalars(select(Agent.id))).all())


async def tamper(app: FastAPI, world: World) -> None:
    """Damage what the batch must rebuild: a wrong score, lost badges, a lost day."""
    async with app.state.database.write_sessions.begin() as session:
        await session.execute(
            update(TrustScore)
            .where(TrustScore.agent_id == world.id("ann"))
            .values(trust=0.123, raw=0.5, grade="F", level="novice", breakdown={})
        )
        await session.execute(delete(TrustBadge).where(TrustBadge.agent_id == world.id("ben")))
        await session.execute(delete(TrustDaily).where(TrustDaily.agent_id == world.id("cat")))


async def hermes(*args: str, database_url: str, data_dir: Path) -> tuple[int, str, str]:
    """Run the ``hermes`` command in a subprocess against the test's database."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "hermes_hub", *args),
        env=cli_environment(database_url, data_dir),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def cli_environment(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("HERMES_")}
    env.update(
        HERMES_DATABASE_URL=database_url,
        HERMES_DATA_DIR=str(data_dir),
        HERMES_SECRET_KEY=TEST_SECRET,
        HERMES_LOG_LEVEL="warning",
    )
    return env


# ---- tests ----


async def test_batch_recompute_stores_exactly_what_the_settlements_stored(app, client):
    world = await realistic_mix(app, client)
    incremental = await stored(app)
    scores = incremental["scores"]
    # The mix is not trivial: different scores, exclusions, failures, capped requesters.
    assert len({round(s["trust"], 12) for s in scores.values()}) >= 5
    assert scores[world.id("dan")]["trust"] == 0.5
    assert scores[world.id("dan")]["raw"] is None
    assert scores[world.id("ben")]["trust"] < 0.5
    assert scores[world.id("eve")]["total_outcomes"] == 2
    assert scores[world.id("eve")]["counted_outcomes"] == 1
    assert scores[world.id("ann")]["counted_outcomes"] == 9
    assert scores[world.id("ann")]["effective_outcomes"] < 9  # alice is capped
    assert scores[world.id("ann")]["rating_count"] == 6

    now = utcnow()
    same_day_or_skip(incremental["computed_at"], now)
    await tamper(app, world)
    done = await recompute_all(
        app.state.database, settings=app.state.runtime.settings, now=now, chunk_size=3
    )
    assert done == await agent_count(app)
    batch = await stored(app)
    assert set(batch["computed_at"].values()) == {now}
    for agent_id, values in incremental["scores"].items():
        assert batch["scores"][agent_id] == values, agent_id
    assert batch["scores"] == incremental["scores"]
    assert batch["badges"] == incremental["badges"]
    assert batch["daily"] == incremental["daily"]

    # The API shows the same numbers.
    viewer = await register(client)
    for name, agent in world.agents.items():
        score = await trust_of(client, agent, viewer)
        assert score["trust_score"] == incremental["scores"][world.id(name)]["trust"], name


@pytest.mark.skipif(not CLI_TRUST.exists(), reason="no `hermes trust` command yet")
async def test_the_cli_recompute_all_agrees(app, client, database_url, tmp_path):
    world = await realistic_mix(app, client)
    incremental = await stored(app)
    same_day_or_skip(incremental["computed_at"], utcnow())
    await tamper(app, world)
    assert (await stored(app))["scores"] != incremental["scores"]

    code, stdout, stderr = await hermes(
        "trust", "recompute", "--all", "--json", database_url=database_url, data_dir=tmp_path
    )
    assert code == 0, stderr
    assert json.loads(stdout)["agents_recomputed"] == await agent_count(app)
    batch = await stored(app)
    same_day_or_skip(batch["computed_at"], utcnow())
    assert batch["scores"] == incremental["scores"]
    assert batch["badges"] == incremental["badges"]
    assert batch["daily"] == incremental["daily"]


@pytest.mark.skipif(not CLI_TRUST.exists(), reason="no `hermes trust` command yet")
async def test_the_cli_recomputes_given_agents_and_ignores_unknown_ones(
    app, client, database_url, tmp_path
):
    agent = await capable_agent(client)
    async with app.state.database.write_sessions.begin() as session:
        await session.execute(delete(TrustScore).where(TrustScore.agent_id == uuid.UUID(agent.id)))
    code, stdout, stderr = await hermes(
        *("trust", "recompute", "--json", agent.id, str(uuid.uuid4())),
        database_url=database_url,
        data_dir=tmp_path,
    )
    assert code == 0, stderr
    assert json.loads(stdout)["agents_recomputed"] == 1
    score = await trust_of(client, agent, await register(client))
    assert (score["trust_score"], score["grade"]) == (0.5, "D")
    assert score["computed_at"] is not None


async def test_recomputing_an_agent_without_history_gives_the_prior(app, client):
    agent = await capable_agent(client)
    agent_id = uuid.UUID(agent.id)
    async with app.state.database.write_sessions.begin() as session:
        for table in (TrustScore, TrustBadge, TrustDaily):
            await session.execute(delete(table).where(table.agent_id == agent_id))
    viewer = await register(client)
    assert (await trust_of(client, agent, viewer))["computed_at"] is None

    now = utcnow()
    done = await recompute_all(
        app.state.database, settings=app.state.runtime.settings, now=now, agent_ids=[agent_id]
    )
    assert done == 1
    after = await stored(app)
    values = after["scores"][agent_id]
    assert (values["trust"], values["raw"], values["grade"], values["level"]) == (
        0.5,
        None,
        "D",
        "intermediate",
    )
    assert (values["counted_outcomes"], values["total_outcomes"], values["rating_count"]) == (
        0,
        0,
        0,
    )
    assert values["effective_outcomes"] == 0
    assert values["mean_rating"] is None
    assert values["breakdown"]["raw_score"] is None
    assert after["computed_at"][agent_id] == now
    assert after["badges"] == [(agent.id, "verified")]
    assert after["daily"] == {(agent_id, now.date()): (0.5, "D", 0)}
    score = await trust_of(client, agent, viewer)
    assert (score["trust_score"], score["computed_at"] is not None) == (0.5, True)


async def test_the_admin_endpoint_recomputes_and_ignores_unknown_ids(app, client):
    admin = await make_admin(app, client)
    requester = await funded_user(app, client, admin=admin)
    agent = await capable_agent(client)
    await finish_contract(client, requester, agent, rating=5)
    before = await stored(app)
    async with app.state.database.write_sessions.begin() as session:
        await session.execute(
            update(TrustScore)
            .where(TrustScore.agent_id == uuid.UUID(agent.id))
            .values(trust=0.99, grade="A+")
        )

    unknown = [str(uuid.uuid4()) for _ in range(3)]
    response = await client.post(
        RECOMPUTE, json={"agent_ids": [*unknown, agent.id, agent.id]}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"agents_recomputed": 1}
    assert (await stored(app))["scores"] == before["scores"]

    only_unknown = await client.post(RECOMPUTE, json={"agent_ids": unknown}, headers=admin.headers)
    assert only_unknown.status_code == 200, only_unknown.text
    assert only_unknown.json() == {"agents_recomputed": 0}
    nothing = await client.post(RECOMPUTE, json={"agent_ids": []}, headers=admin.headers)
    assert nothing.json() == {"agents_recomputed": 0}

    everyone = await agent_count(app)
    for body in ({}, {"agent_ids": None}, None):
        response = await client.post(RECOMPUTE, json=body, headers=admin.headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"agents_recomputed": everyone}
    assert (await stored(app))["scores"] == before["scores"]


@pytest.mark.parametrize(
    "body",
    [
        {"agent_ids": ["not-a-uuid"]},
        {"agent_ids": "all"},
        {"agent_ids": [1]},
        {"all": True},
    ],
)
async def test_the_admin_endpoint_refuses_bad_bodies(app, client, body):
    admin = await make_admin(app, client)
    response = await client.post(RECOMPUTE, json=body, headers=admin.headers)
    assert_problem(response, 422, "validation_error")


async def test_recompute_is_for_admins_only(app, client):
    user = await register(client)
    agent = await capable_agent(client, user)
    body = {"agent_ids": [agent.id]}
    assert_problem(
        await client.post(RECOMPUTE, json=body, headers=user.headers), 403, "admin_required"
    )
    assert_problem(
        await client.post(RECOMPUTE, json=body, headers=agent.headers), 403, "user_required"
    )
    assert_problem(await client.post(RECOMPUTE, json=body), 401, "not_authenticated")
