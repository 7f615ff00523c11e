"""Bad cards, forbidden endpoints, and agents that fail while the hub forwards to them."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from a2a.types.a2a_pb2 import StreamResponse
from a2a.utils.errors import A2AError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from hermes_hub.events.models import Event
from hermes_hub.kit import safe_http
from hermes_hub.sdk.keys import public_key_b64
from tests.a2a.helpers import calls_of, enroll_at, hub_http, stock_client, user_message
from tests.a2a.scripted import card_json, json_response, scripted_agent, sse_then_drop
from tests.a2a.stock_agent import Behaviour, stock_agent
from tests.factories import assert_problem, enroll, register

EXECUTE = "/api/v1/agents/execute"


async def refresh(client: httpx.AsyncClient, owner, agent_id: str) -> httpx.Response:
    return await client.post(f"/api/v1/agents/{agent_id}/card/refresh", headers=owner.headers)


# ---- endpoints the hub refuses to call ----


@pytest.mark.parametrize("settings_overrides", [{"allow_private_endpoints": False}])
@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8080/agent",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://localhost:9000/",
        "http://10.1.2.3/",
        "http://0.0.0.0/",
    ],
)
async def test_private_endpoints_are_refused_at_enrollment_and_update(
    client: httpx.AsyncClient, endpoint: str
) -> None:
    owner = await register(client)
    response = await client.post(
        "/api/v1/agents/enroll",
        json={
            "name": "sneaky",
            "public_key": public_key_b64(Ed25519PrivateKey.generate()),
            "endpoint_url": endpoint,
        },
        headers=owner.headers,
    )
    assert_problem(response, 422, "endpoint_not_allowed")
    agent = await enroll(client, owner)
    response = await client.patch(
        f"/api/v1/agents/{agent.id}", json={"endpoint_url": endpoint}, headers=owner.headers
    )
    assert_problem(response, 422, "endpoint_not_allowed")


@pytest.mark.parametrize("settings_overrides", [{"allow_private_endpoints": False}])
async def test_a_name_that_resolves_to_a_private_address_is_refused_when_fetched(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name passes the check at enrollment (it is not resolved then); the fetch resolves it
    # and refuses the private answer, without saying what the address was.
    async def metadata_service(host: str, port: int) -> list[str]:
        return ["169.254.169.254"] if host == "rebind.example" else []

    monkeypatch.setattr(safe_http, "system_resolver", metadata_service)
    owner = await register(client)
    agent = await enroll(client, owner, endpoint_url="http://rebind.example/agent")
    response = await refresh(client, owner, agent.id)
    body = assert_problem(response, 422, "endpoint_not_allowed")
    assert "169.254" not in body["detail"]


# ---- bad cards ----


async def test_a_50_mb_card_is_cut_off(client: httpx.AsyncClient) -> None:
    owner = await register(client)

    async def huge(_: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            chunk = b" " * (1024 * 1024)
            for _ in range(50):
                yield chunk

        return StreamingResponse(body(), media_type="application/json")

    async with scripted_agent() as script:
        script.card = huge
        agent = await enroll(client, owner, endpoint_url=script.base_url)
        response = await refresh(client, owner, agent.id)
    body = assert_problem(response, 502, "invalid_agent_card")
    assert "larger than 262144 bytes" in body["detail"]


@pytest.mark.parametrize("settings_overrides", [{"a2a_card_timeout_seconds": 0.5}])
async def test_a_slow_loris_card_is_cut_off(client: httpx.AsyncClient) -> None:
    owner = await register(client)

    async def trickle(_: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for byte in json.dumps(card_json("http://127.0.0.1:1/rpc")).encode():
                await asyncio.sleep(0.1)
                yield bytes([byte])

        return StreamingResponse(body(), media_type="application/json")

    async with scripted_agent() as script:
        script.card = trickle
        agent = await enroll(client, owner, endpoint_url=script.base_url)
        response = await refresh(client, owner, agent.id)
    assert_problem(response, 504, "card_timeout")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"name": ', "JSON"),
        (b"[1, 2, 3]", "JSON object"),
        (b'{"description": "no name, no interface"}', "no name"),
        (
            json.dumps(
                {
                    "name": "x",
                    "supportedInterfaces": [{"url": "ftp://x/", "protocolBinding": "JSONRPC"}],
                }
            ).encode(),
            "no JSON-RPC interface",
        ),
        (b'{"name": "x", "skills": "not a list"}', "not a valid A2A Agent Card"),
    ],
)
async def test_invalid_cards_are_refused(
    client: httpx.AsyncClient, body: bytes, detail: str
) -> None:
    owner = await register(client)

    async def bad(_: Request) -> Response:
        return Response(body, media_type="application/json")

    async with scripted_agent() as script:
        script.card = bad
        agent = await enroll(client, owner, endpoint_url=script.base_url)
        response = await refresh(client, owner, agent.id)
    problem = assert_problem(response, 502, "invalid_agent_card")
    assert detail in problem["detail"]
    status = await client.get(f"/api/v1/agents/{agent.id}/card", headers=owner.headers)
    assert status.json()["card"] is None
    assert status.json()["consecutive_failures"] >= 1


async def test_a_card_at_the_legacy_path_is_found(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    async with scripted_agent() as script:

        async def missing(_: Request) -> Response:
            return Response(status_code=404)

        script.card = missing
        agent = await enroll(client, owner, endpoint_url=script.base_url)
        response = await refresh(client, owner, agent.id)
    # The scripted agent has no legacy route either: both paths were tried.
    problem = assert_problem(response, 502, "invalid_agent_card")
    assert "agent.json" in problem["detail"]


async def test_three_failed_checks_mark_the_agent_unavailable_and_tell_the_owner(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        skills = (await client.get(f"/api/v1/agents/{agent.id}", headers=owner.headers)).json()
        assert {"shout", "text-transform", "echo"} <= set(skills["capabilities"])
    for attempt in range(3):
        response = await refresh(client, owner, agent.id)
        assert_problem(response, 502, "card_unreachable")
        status = (await client.get(f"/api/v1/agents/{agent.id}/card", headers=owner.headers)).json()
        assert status["unavailable"] is (attempt == 2)
    async with app.state.database.read_sessions() as session:
        events = (
            await session.scalars(
                select(Event).where(
                    Event.recipient == f"user:{owner.id}", Event.type == "agent.unavailable"
                )
            )
        ).all()
    assert len(events) == 1
    assert events[0].data["agent_id"] == agent.id


async def test_the_health_check_pass_refreshes_due_cards(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
    # The agent went away; a pass that runs now (nothing is "recent" with a 0 s interval)
    # counts the failure.
    results = await app.state.a2a.check_all()
    assert results["failed"] >= 1
    status = (await client.get(f"/api/v1/agents/{agent.id}/card", headers=owner.headers)).json()
    assert status["consecutive_failures"] == 1
    assert status["card"] is not None  # the last good card is kept


# ---- calls that fail ----


async def test_an_unreachable_agent_answers_502_and_is_recorded(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    caller = await register(client)
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
    response = await client.post(
        EXECUTE, json={"agent_id": agent.id, "task": "anyone there?"}, headers=caller.headers
    )
    body = assert_problem(response, 502, "agent_unreachable")
    assert body["agent_id"] == agent.id
    async with hub_http(app, caller.token) as http:
        gateway = await http.post(
            f"/a2a/agents/{agent.id}",
            headers={"A2A-Version": "1.0"},
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "SendMessage",
                "params": {
                    "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
                },
            },
        )
    assert_problem(gateway, 502, "agent_unreachable")
    outcomes = [call["outcome"] for call in await calls_of(client, app, owner, agent.id)]
    assert outcomes == ["unreachable", "unreachable"]


async def test_a_paused_agent_answers_502(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        response = await client.patch(
            f"/api/v1/agents/{agent.id}", json={"status": "paused"}, headers=owner.headers
        )
        assert response.status_code == 200
        response = await client.post(
            EXECUTE, json={"agent_id": agent.id, "task": "hi"}, headers=owner.headers
        )
    assert_problem(response, 502, "agent_paused")
    assert upstream.behaviour.seen == []


@pytest.mark.parametrize("settings_overrides", [{"a2a_call_timeout_seconds": 0.3}])
async def test_a_slow_agent_answers_504(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await register(client)
    async with stock_agent(Behaviour(delay=2)) as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        response = await client.post(
            EXECUTE, json={"agent_id": agent.id, "task": "take your time"}, headers=owner.headers
        )
    assert_problem(response, 504, "agent_timeout")
    assert [c["outcome"] for c in await calls_of(client, app, owner, agent.id)] == ["timeout"]


@pytest.mark.parametrize(
    "answer",
    [
        b"this is not json",
        b"[1, 2]",
        json.dumps({"jsonrpc": "2.0", "id": "x", "noresult": True}).encode(),
    ],
)
async def test_malformed_a2a_answers_502(
    client: httpx.AsyncClient, app: FastAPI, answer: bytes
) -> None:
    owner = await register(client)

    async def garbage(_: Request) -> Response:
        return Response(answer, media_type="application/json")

    async with scripted_agent() as script:
        script.rpc = garbage
        agent = await enroll_at(client, owner, script.base_url)
        response = await client.post(
            EXECUTE, json={"agent_id": agent.id, "task": "x"}, headers=owner.headers
        )
    assert_problem(response, 502, "agent_malformed_response")
    assert [c["outcome"] for c in await calls_of(client, app, owner, agent.id)] == ["malformed"]


async def test_a_stream_the_agent_drops_half_way_ends_with_an_error_event(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    first_event = {
        "jsonrpc": "2.0",
        "id": "1",
        "result": {
            "task": {"id": "t-1", "contextId": "c-1", "status": {"state": "TASK_STATE_WORKING"}}
        },
    }

    async def drop(_: Request) -> Response:
        return sse_then_drop([first_event])

    async with scripted_agent() as script:
        script.rpc = drop
        agent = await enroll_at(client, owner, script.base_url)
        async with hub_http(app, owner.token) as http:
            streaming = await stock_client(http, agent.id, streaming=True)
            received: list[StreamResponse] = []

            async def follow() -> None:
                async for event in streaming.send_message(user_message("go")):
                    received.append(event)

            with pytest.raises(A2AError) as failure:
                await follow()
        response = await client.post(
            EXECUTE,
            json={"agent_id": agent.id, "task": "go", "stream": True},
            headers=owner.headers,
        )
    assert [event.task.id for event in received] == ["t-1"]
    assert "agent" in str(failure.value).lower()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: task" in response.text
    assert "event: error" in response.text
    assert "agent_" in response.text
    outcomes = [c["outcome"] for c in await calls_of(client, app, owner, agent.id)]
    assert outcomes == ["dropped", "dropped"]


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (-32001, "agent_error"),  # task not found: the agent lost track of its own task
        (-32603, "agent_error"),  # internal error
        (-32602, "invalid_request"),  # invalid params: what the caller sent
        (-32004, "invalid_request"),  # unsupported operation: what the caller asked
    ],
)
async def test_an_a2a_error_from_the_agent_passes_through(
    client: httpx.AsyncClient, app: FastAPI, code: int, outcome: str
) -> None:
    owner = await register(client)

    async def not_found(request: Request) -> Response:
        body = await request.json()
        return json_response(
            {
                "jsonrpc": "2.0",
                "id": body["id"],
                "error": {"code": code, "message": "Refused"},
            }
        )

    async with scripted_agent() as script:
        script.rpc = not_found
        agent = await enroll_at(client, owner, script.base_url)
        async with hub_http(app, owner.token) as http:
            response = await http.post(
                f"/a2a/agents/{agent.id}",
                headers={"A2A-Version": "1.0"},
                json={
                    "jsonrpc": "2.0",
                    "id": 7,
                    "method": "SendMessage",
                    "params": {
                        "message": {
                            "messageId": "m",
                            "role": "ROLE_USER",
                            "parts": [{"text": "hi"}],
                        }
                    },
                },
            )
    assert response.status_code == 200, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["id"] == 7
    assert [c["outcome"] for c in await calls_of(client, app, owner, agent.id)] == [outcome]


async def test_bad_execute_requests(client: httpx.AsyncClient) -> None:
    owner = await register(client)
    no_endpoint = await enroll(client, owner)
    for body, status, code in [
        ({"task": "x"}, 422, "validation_error"),
        ({"agent_id": str(uuid.uuid4()), "task": ""}, 422, "validation_error"),
        ({"agent_id": "nope", "task": "x"}, 422, "validation_error"),
        ({"agent_id": str(uuid.uuid4()), "task": "x"}, 404, "agent_not_found"),
        ({"agent_id": no_endpoint.id, "task": "x"}, 409, "no_endpoint"),
        ({"agent_id": no_endpoint.id, "task": "x", "context": [1]}, 422, "validation_error"),
    ]:
        assert_problem(await client.post(EXECUTE, json=body, headers=owner.headers), status, code)
    assert_problem(
        await client.post(EXECUTE, json={"agent_id": no_endpoint.id, "task": "x"}),
        401,
        "not_authenticated",
    )
