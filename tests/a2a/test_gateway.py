"""A stock a2a-sdk client and a stock a2a-sdk agent interoperate through the hub."""

from __future__ import annotations

import httpx
import pytest
from a2a.types.a2a_pb2 import CancelTaskRequest, GetTaskRequest, TaskState
from a2a.utils.errors import TaskNotFoundError
from fastapi import FastAPI

from tests.a2a.helpers import (
    HUB,
    collect,
    enroll_at,
    hub_http,
    resolve_card,
    stock_client,
)
from tests.a2a.stock_agent import Behaviour, stock_agent
from tests.factories import assert_problem, enroll, register


async def test_a_stock_client_calls_a_stock_agent_through_the_hub(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    caller = await enroll(client, await register(client))
    async with stock_agent(Behaviour(steps=3)) as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        async with hub_http(app, caller.api_key) as http:
            card = await resolve_card(http, agent.id)
            assert card.name == "Stock Echo"
            assert {i.url for i in card.supported_interfaces} == {f"{HUB}/a2a/agents/{agent.id}"}
            assert {i.protocol_version for i in card.supported_interfaces} == {"1.0", "0.3"}
            assert "hermes_bearer" in card.security_schemes

            blocking = await stock_client(http, agent.id, streaming=False)
            [answer] = await collect(blocking, "hello hub")
            task = answer.task
            assert task.status.state == TaskState.TASK_STATE_COMPLETED
            assert [a.parts[0].text for a in task.artifacts] == [
                "HELLO HUB #1",
                "HELLO HUB #2",
                "HELLO HUB #3",
            ]

            streaming = await stock_client(http, agent.id, streaming=True)
            events = await collect(streaming, "stream me")
            kinds = [event.WhichOneof("payload") for event in events]
            assert kinds[0] == "task"
            assert kinds.count("artifact_update") == 3
            assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED

            fetched = await blocking.get_task(GetTaskRequest(id=task.id))
            assert fetched.id == task.id
            assert fetched.status.state == TaskState.TASK_STATE_COMPLETED
    assert upstream.behaviour.seen == ["hello hub", "stream me"]

    await app.state.a2a.recorder.drain()
    calls = await client.get(f"/api/v1/agents/{agent.id}/calls", headers=owner.headers)
    assert calls.status_code == 200, calls.text
    logged = calls.json()["items"]
    assert sorted(call["method"] for call in logged) == [
        "GetTask",
        "SendMessage",
        "SendStreamingMessage",
    ]
    assert {call["outcome"] for call in logged} == {"ok"}
    assert {call["caller_agent_id"] for call in logged} == {caller.id}
    assert all(call["latency_ms"] > 0 for call in logged)


async def test_a_callers_tasks_are_hidden_from_other_callers(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    first = await enroll(client, await register(client))
    second = await register(client)
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        async with hub_http(app, first.api_key) as http:
            mine = await stock_client(http, agent.id, streaming=False)
            [answer] = await collect(mine, "private task")
        async with hub_http(app, second.token) as http:
            theirs = await stock_client(http, agent.id, streaming=False)
            with pytest.raises(TaskNotFoundError):
                await theirs.get_task(GetTaskRequest(id=answer.task.id))
            with pytest.raises(TaskNotFoundError):
                await theirs.cancel_task(CancelTaskRequest(id=answer.task.id))


async def test_the_legacy_card_path_and_a_03_client_method(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    caller = await register(client)
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        async with hub_http(app, caller.token) as http:
            legacy = await http.get(f"/a2a/agents/{agent.id}/.well-known/agent.json")
            assert legacy.status_code == 200
            assert legacy.json()["url"] == f"{HUB}/a2a/agents/{agent.id}"
            # An A2A 0.3 client speaks "message/send" with "kind"-tagged parts.
            response = await http.post(
                f"/a2a/agents/{agent.id}",
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "message/send",
                    "params": {
                        "message": {
                            "kind": "message",
                            "messageId": "m-1",
                            "role": "user",
                            "parts": [{"kind": "text", "text": "old client"}],
                        }
                    },
                },
            )
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["kind"] == "task"
    assert result["status"]["state"] == "completed"
    assert result["artifacts"][0]["parts"][0]["text"] == "OLD CLIENT #1"


async def test_the_gateway_requires_a_caller(client: httpx.AsyncClient, app: FastAPI) -> None:
    owner = await register(client)
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        # The public card is public; calling is not.
        card = await client.get(f"/a2a/agents/{agent.id}/.well-known/agent-card.json")
        assert card.status_code == 200
        response = await client.post(
            f"/a2a/agents/{agent.id}",
            json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}},
        )
    assert_problem(response, 401, "not_authenticated")
    assert upstream.behaviour.seen == []
