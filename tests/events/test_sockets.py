"""Event sockets end to end: a real uvicorn server, a real WebSocket client, both backends."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from hermes_hub.app import create_app
from hermes_hub.db.session import Database
from hermes_hub.events.log import agent_recipient, publish, user_recipient
from hermes_hub.kit.logging import RedactQueryTokens
from tests.events.conftest import (
    emit,
    eventually,
    open_socket,
    receive,
    receive_event,
    serve,
)
from tests.factories import assert_problem, enroll, register

AGENT_WS = "/api/v1/ws/agent"
USER_WS = "/api/v1/ws/user"


async def assert_refused(url: str, credential: str | None, code: int, reason: str, **query):
    async with open_socket(url, credential, **query) as socket:
        error = await receive(socket)
        assert error["type"] == "error"
        assert error["code"] == reason
        assert error["status"] == code - 4000
        with pytest.raises(ConnectionClosed):
            await receive(socket)
        assert socket.close_code == code
        assert socket.close_reason == reason


async def test_refuses_missing_bad_and_wrong_kind_of_credentials(client, ws_base):
    owner = await register(client)
    agent = await enroll(client, owner)

    await assert_refused(ws_base + AGENT_WS, None, 4401, "not_authenticated")
    await assert_refused(ws_base + USER_WS, "not-a-token", 4401, "invalid_token")
    await assert_refused(ws_base + AGENT_WS, "hhk_unknown", 4401, "invalid_api_key")
    await assert_refused(ws_base + USER_WS, None, 4401, "invalid_token", token="garbage")
    await assert_refused(ws_base + AGENT_WS, owner.token, 4403, "agent_required")
    await assert_refused(ws_base + USER_WS, agent.api_key, 4403, "user_required")
    await assert_refused(
        ws_base + AGENT_WS, agent.api_key, 4400, "invalid_last_event_id", last_event_id="-1"
    )


async def test_hello_then_live_events_for_agent_and_user(client, app, ws_base):
    owner = await register(client)
    agent = await enroll(client, owner)
    await emit(app.state.database, [agent_recipient(uuid.UUID(agent.id))], note="before")

    async with (
        open_socket(ws_base + AGENT_WS, agent.api_key) as agent_socket,
        # Browsers cannot set headers: the token may come in the query string.
        open_socket(ws_base + USER_WS, token=owner.token) as user_socket,
    ):
        agent_hello = await receive(agent_socket)
        user_hello = await receive(user_socket)
        # Without last_event_id a client gets only new events: "before" is not replayed.
        assert agent_hello["type"] == "hello"
        assert agent_hello["recipient"] == f"agent:{agent.id}"
        assert agent_hello["last_event_id"] > 0
        assert agent_hello["heartbeat_seconds"] == 15
        assert user_hello == {
            "type": "hello",
            "recipient": f"user:{owner.id}",
            "last_event_id": 0,
            "heartbeat_seconds": 15,
        }

        [for_agent, for_user] = await emit(
            app.state.database,
            [agent_recipient(uuid.UUID(agent.id)), user_recipient(uuid.UUID(owner.id))],
            "contract.awarded",
            contract_id="c-1",
        )
        agent_event = await receive_event(agent_socket)
        assert agent_event == for_agent.as_message()
        assert agent_event["type"] == "contract.awarded"
        assert agent_event["data"] == {"contract_id": "c-1"}
        assert (await receive_event(user_socket))["id"] == for_user.id


async def test_rolled_back_events_are_never_pushed(client, app, ws_base):
    owner = await register(client)
    recipient = user_recipient(uuid.UUID(owner.id))
    async with open_socket(ws_base + USER_WS, owner.token) as socket:
        await receive(socket)
        async with app.state.database.writer() as session:
            await publish(session, [recipient], "test.event", {"n": "rolled back"})
            await session.rollback()
        [kept] = await emit(app.state.database, [recipient], n="kept")
        assert (await receive_event(socket))["id"] == kept.id


async def test_resume_gets_every_missed_event_exactly_once_in_order(
    client, app, ws_base, monkeypatch
):
    # Small pages, so the replay crosses several of them.
    monkeypatch.setattr("hermes_hub.events.stream.REPLAY_PAGE", 3)
    owner = await register(client)
    other = await register(client)
    agent = await enroll(client, owner)
    mine = agent_recipient(uuid.UUID(agent.id))
    database = app.state.database

    async with open_socket(ws_base + AGENT_WS, agent.api_key) as socket:
        await receive(socket)
        seen = [await emit(database, [mine], n=n) for n in range(2)]
        received = [await receive_event(socket) for _ in range(2)]
        assert [m["id"] for m in received] == [r[0].id for r in seen]
    last_event_id = received[-1]["id"]

    missed = []
    for n in range(10):
        missed += await emit(database, [mine], n=n)
        await emit(database, [user_recipient(uuid.UUID(other.id))], n=n)

    async with open_socket(ws_base + AGENT_WS, agent.api_key, last_event_id=last_event_id) as s:
        hello = await receive(s)
        assert hello["last_event_id"] == last_event_id
        replayed = [await receive_event(s) for _ in missed]
        assert replayed == [record.as_message() for record in missed]
        # Live again after the replay, with nothing repeated in between.
        [live] = await emit(database, [mine], n="live")
        assert (await receive_event(s))["id"] == live.id


async def test_resume_point_past_the_newest_event_is_capped(client, app, ws_base):
    owner = await register(client)
    [record] = await emit(app.state.database, [user_recipient(uuid.UUID(owner.id))])
    async with open_socket(ws_base + USER_WS, owner.token, last_event_id=10**12) as socket:
        assert (await receive(socket))["last_event_id"] == record.id
        [live] = await emit(app.state.database, [user_recipient(uuid.UUID(owner.id))])
        assert (await receive_event(socket))["id"] == live.id


@pytest.mark.parametrize("settings_overrides", [{"ws_heartbeat_seconds": 0.1}])
async def test_heartbeat_pings_and_rereads_the_log(client, app, ws_base):
    owner = await register(client)
    recipient = user_recipient(uuid.UUID(owner.id))
    # A database without the broker: its commits are never pushed, as when another
    # worker's Redis message is lost. The heartbeat's re-read of the log finds them.
    unannounced = Database.from_engine(app.state.database.engine)
    async with open_socket(ws_base + USER_WS, owner.token) as socket:
        assert (await receive(socket))["heartbeat_seconds"] == 0.1
        ping = await receive(socket)
        assert ping["type"] == "ping"
        assert isinstance(ping["resume_after"], int)
        [record] = await emit(unannounced, [recipient], n="silent")
        assert await receive_event(socket) == record.as_message()


@pytest.mark.parametrize("settings_overrides", [{"ws_heartbeat_seconds": 0.1}])
async def test_revoked_key_closes_the_socket_at_the_next_heartbeat(client, ws_base):
    owner = await register(client)
    agent = await enroll(client, owner)
    async with open_socket(ws_base + AGENT_WS, agent.api_key) as socket:
        await receive(socket)
        response = await client.delete(
            f"/api/v1/agents/{agent.id}/keys/{agent.key_id}", headers=owner.headers
        )
        assert response.status_code == 200, response.text
        while (message := await receive(socket))["type"] == "ping":
            pass
        assert message["code"] == "invalid_api_key"
        with pytest.raises(ConnectionClosed):
            await receive(socket)
        assert socket.close_code == 4401


async def test_presence_is_online_while_a_socket_is_open(client, app, ws_base):
    owner = await register(client)
    agent = await enroll(client, owner)
    stranger = await register(client)
    url = f"/api/v1/agents/{agent.id}/presence"

    async def online() -> bool:
        response = await client.get(url, headers=stranger.headers)
        assert response.status_code == 200, response.text
        assert response.json()["agent_id"] == agent.id
        return bool(response.json()["online"])

    assert not await online()
    async with (
        open_socket(ws_base + AGENT_WS, agent.api_key) as first,
        open_socket(ws_base + AGENT_WS, agent.api_key) as second,
    ):
        await receive(first)
        await receive(second)
        assert await online()
        await first.close()
        await eventually(lambda: app.state.presence.local_count(uuid.UUID(agent.id)) == 1)
        assert await online()  # the second socket still holds it
    await eventually(lambda: not app.state.presence.local_count(uuid.UUID(agent.id)))
    assert not await online()

    assert_problem(
        await client.get(f"/api/v1/agents/{uuid.uuid4()}/presence", headers=owner.headers),
        404,
        "agent_not_found",
    )
    assert_problem(await client.get(url), 401, "not_authenticated")


async def test_one_event_reaches_200_sockets(client, app, ws_base):
    owner = await register(client)
    agents = [await enroll(client, owner) for _ in range(10)]
    sockets_per_agent = 20

    async def listen(api_key: str, ready: asyncio.Event, opened: list[int]) -> dict:
        async with open_socket(ws_base + AGENT_WS, api_key) as socket:
            await receive(socket)
            opened.append(1)
            if len(opened) == len(agents) * sockets_per_agent:
                ready.set()
            return await receive_event(socket)

    ready = asyncio.Event()
    opened: list[int] = []
    listeners = [
        asyncio.create_task(listen(agent.api_key, ready, opened))
        for agent in agents
        for _ in range(sockets_per_agent)
    ]
    async with asyncio.timeout(30):
        await ready.wait()
    assert app.state.event_broker.subscription_count == 200
    records = await emit(
        app.state.database,
        [agent_recipient(uuid.UUID(agent.id)) for agent in agents],
        "contract.open",
        contract_id="c-9",
    )
    expected = {
        agent.api_key: record.as_message() for agent, record in zip(agents, records, strict=True)
    }
    received = await asyncio.gather(*listeners)
    keys = [agent.api_key for agent in agents for _ in range(sockets_per_agent)]
    assert received == [expected[key] for key in keys]
    await eventually(lambda: app.state.event_broker.subscription_count == 0)


@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize("settings_overrides", [{"ws_heartbeat_seconds": 60}])
async def test_events_and_presence_cross_workers_through_redis(client, app, settings):
    """Two hub processes sharing the database and Redis: the socket is on A, the event
    is committed by B, and the heartbeat (60 s) is far away, so Redis must carry it."""
    other = create_app(settings)
    async with other.router.lifespan_context(other), serve(app) as ws_base:
        owner = await register(client)
        agent = await enroll(client, owner)
        agent_id = uuid.UUID(agent.id)
        assert not await other.state.presence.is_online(agent_id)

        async with open_socket(ws_base + AGENT_WS, agent.api_key) as socket:
            await receive(socket)
            assert await other.state.presence.is_online(agent_id)
            assert await other.state.presence.online([agent_id, uuid.uuid4()]) == {agent_id}
            [record] = await emit(other.state.database, [agent_recipient(agent_id)], n=1)
            async with asyncio.timeout(5):
                assert await receive_event(socket) == record.as_message()
        await eventually(lambda: not app.state.presence.local_count(agent_id))
        assert not await other.state.presence.is_online(agent_id)


def test_query_string_tokens_are_redacted_from_uvicorn_logs():
    line = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("203.0.113.7:4000", "/api/v1/ws/user?token=eyJ.secret.sig&last_event_id=4"),
        None,
    )
    assert RedactQueryTokens().filter(line)
    assert line.getMessage() == (
        '203.0.113.7:4000 - "WebSocket /api/v1/ws/user?token=[redacted]&last_event_id=4" [accepted]'
    )


async def test_an_unreachable_database_at_connect_closes_with_1011(client, ws_base, monkeypatch):
    owner = await register(client)

    async def unreachable(*_args):
        raise OSError("connection refused")

    monkeypatch.setattr("hermes_hub.events.router.authenticate_token", unreachable)
    async with open_socket(ws_base + USER_WS, owner.token) as socket:
        with pytest.raises(ConnectionClosed):
            await receive(socket)
        assert socket.close_code == 1011


async def test_resume_after_covers_an_event_that_committed_late(client, app, ws_base, backend):
    """Ids are taken at insert and commits land in any order: an event can commit after a
    later one was pushed. A client resuming from resume_after (deduplicating by id) gets it."""
    if backend != "postgres":
        pytest.skip("SQLite runs one write transaction at a time, so commits cannot cross")
    owner = await register(client)
    recipient = user_recipient(uuid.UUID(owner.id))
    database = app.state.database
    async with open_socket(ws_base + USER_WS, owner.token) as socket:
        await receive(socket)  # hello
        async with database.writer() as slow:
            [late] = await publish(slow, [recipient], "test.event", {"n": "late"})
            [early] = await emit(database, [recipient], n="early")
            assert late.id < early.id
            message = await receive(socket)
            while message["type"] == "ping":
                message = await receive(socket)
            assert message["id"] == early.id
            resume_after = message["resume_after"]
            assert resume_after < late.id
            await socket.close()
            await slow.commit()  # after the client left: nothing pushes it
    got: dict[int, dict] = {}
    async with open_socket(ws_base + USER_WS, owner.token, last_event_id=resume_after) as socket:
        await receive(socket)  # hello
        while late.id not in got:
            event = await receive_event(socket)
            got[event["id"]] = event
    assert got[late.id]["data"] == {"n": "late"}
