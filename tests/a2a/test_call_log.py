"""The call log keeps going when the database refuses some rows or goes away for a while,
and records what a caller sent that never reached an agent."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from hermes_hub.a2a import calls as calls_module
from hermes_hub.a2a.calls import CallRecord, CallRecorder
from hermes_hub.a2a.gateway import GatewayCall
from hermes_hub.a2a.router import _StreamEnd
from hermes_hub.a2a.upstream import Upstream
from hermes_hub.identity.acl import Caller
from hermes_hub.kit.time import utcnow
from tests.a2a.helpers import calls_of, enroll_at
from tests.a2a.stock_agent import stock_agent
from tests.factories import register


def a_call(target: str | uuid.UUID, **fields: Any) -> CallRecord:
    values: dict[str, Any] = {
        "target_agent_id": uuid.UUID(str(target)),
        "caller_agent_id": None,
        "caller_user_id": None,
        "caller_owner_id": None,
        "channel": "a2a",
        "method": "SendMessage",
        "started_at": utcnow(),
        "latency_ms": 1.0,
        "outcome": "ok",
    }
    values.update(fields)
    return CallRecord(**values)


async def an_agent(client: httpx.AsyncClient, owner) -> str:
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
    return agent.id


# ---- rows the database refuses ----


async def test_a_row_for_a_deleted_agent_is_dropped_and_the_rest_written(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    agent_id = await an_agent(client, owner)
    recorder: CallRecorder = app.state.a2a.recorder
    recorder.record(a_call(agent_id, method="SendMessage"))
    recorder.record(a_call(uuid.uuid4()))  # its target is gone: a foreign key violation
    recorder.record(a_call(agent_id, method="GetTask"))
    assert {c["method"] for c in await calls_of(client, app, owner, agent_id)} == {
        "SendMessage",
        "GetTask",
    }
    # Nothing is left queued to block later batches.
    recorder.record(a_call(agent_id, method="CancelTask"))
    assert len(await calls_of(client, app, owner, agent_id)) == 3


async def test_a_duplicate_row_is_dropped_once_written(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    agent_id = await an_agent(client, owner)
    recorder: CallRecorder = app.state.a2a.recorder
    first = a_call(agent_id)
    recorder.record(first)
    await recorder.drain()
    recorder.record(first)
    recorder.record(a_call(agent_id, method="GetTask"))
    rows = await calls_of(client, app, owner, agent_id)
    assert sorted(c["method"] for c in rows) == ["GetTask", "SendMessage"]


async def test_a_task_owner_for_a_deleted_agent_is_dropped(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    agent_id = await an_agent(client, owner)
    recorder: CallRecorder = app.state.a2a.recorder
    recorder.remember_task(uuid.uuid4(), "t-gone", "user:x")
    recorder.remember_task(uuid.UUID(agent_id), "t-kept", "user:y")
    recorder.record(a_call(agent_id))
    assert len(await calls_of(client, app, owner, agent_id)) == 1
    fresh = CallRecorder(app.state.database)  # reads the table, not this worker's memory
    assert await fresh.task_owner(uuid.UUID(agent_id), "t-kept") == "user:y"


# ---- a database that is away for a while ----


class _Outage:
    """Makes ``_write`` fail as if the connection dropped, until ``over`` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.over = False
        self.attempts = 0
        real = calls_module._write

        async def write(*args: Any) -> None:
            self.attempts += 1
            if not self.over:
                raise OperationalError("INSERT", {}, ConnectionResetError("connection lost"))
            await real(*args)

        monkeypatch.setattr(calls_module, "_write", write)


async def test_rows_wait_out_a_transient_failure(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await register(client)
    agent_id = await an_agent(client, owner)
    recorder: CallRecorder = app.state.a2a.recorder
    await recorder.drain()
    outage = _Outage(monkeypatch)
    recorder.record(a_call(agent_id))
    await recorder.flush()
    await recorder.flush()
    assert outage.attempts >= 2
    outage.over = True
    recorder.record(a_call(agent_id, method="GetTask"))
    assert sorted(c["method"] for c in await calls_of(client, app, owner, agent_id)) == [
        "GetTask",
        "SendMessage",
    ]


async def test_the_queue_is_bounded_while_the_database_is_away(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await register(client)
    agent_id = await an_agent(client, owner)
    recorder: CallRecorder = app.state.a2a.recorder
    await recorder.drain()
    monkeypatch.setattr(calls_module, "MAX_QUEUED", 3)
    outage = _Outage(monkeypatch)
    for index in range(2):
        recorder.record(a_call(agent_id, method=f"first-{index}"))
    await recorder.flush()
    for index in range(4):
        recorder.record(a_call(agent_id, method=f"later-{index}"))
    await recorder.flush()
    outage.over = True
    methods = sorted(c["method"] for c in await calls_of(client, app, owner, agent_id))
    # The oldest rows are kept; what came in over the bound was dropped.
    assert methods == ["first-0", "first-1", "later-0"]


# ---- requests that never reached the agent ----


async def test_invalid_requests_are_logged_as_the_callers_fault(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    owner = await register(client)
    caller = await register(client)
    headers = {**caller.headers, "A2A-Version": "1.0"}
    async with stock_agent() as upstream:
        agent = await enroll_at(client, owner, upstream.base_url)
        url = f"/a2a/agents/{agent.id}"
        sent = [
            await client.post(url, content=b"{not json", headers=headers),
            await client.post(
                url, json={"jsonrpc": "2.0", "id": 1, "method": "NoSuchMethod"}, headers=headers
            ),
            await client.post(
                url,
                json={"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {"x": 1}},
                headers=headers,
            ),
            await client.post(
                url,
                json={"jsonrpc": "2.0", "id": 3, "method": "ListTasks", "params": {}},
                headers=headers,
            ),
        ]
        assert upstream.behaviour.seen == []
    for response in sent:
        assert response.status_code == 200, response.text
        assert "error" in response.json(), response.text
    rows = await calls_of(client, app, owner, agent.id)
    assert sorted(row["method"] for row in rows) == sorted(
        ["unknown", "NoSuchMethod", "SendMessage", "ListTasks"]
    )
    assert {row["outcome"] for row in rows} == {"invalid_request"}, [
        (row["method"], row["outcome"], row["error"]) for row in rows
    ]
    assert all(row["error"] for row in rows if row["method"] != "unknown")


class _Recorded:
    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    def record(self, call: CallRecord) -> None:
        self.calls.append(call)


@pytest.mark.parametrize(("outcome", "logged_as"), [(None, "canceled"), ("dropped", "dropped")])
async def test_a_stream_the_caller_leaves_is_not_held_against_the_agent(
    outcome: str | None, logged_as: str
) -> None:
    call = GatewayCall(
        caller=Caller(user_id=uuid.uuid4()),
        caller_key="user:x",
        upstream=Upstream(uuid.uuid4(), "http://agent.example/", "1.0", True),
        channel="a2a",
        call_timeout=1.0,
        started_at=utcnow(),
        method="SendStreamingMessage",
        handled=True,
        outcome=outcome,
    )
    recorded = _Recorded()
    hub = type("Hub", (), {"recorder": recorded})()
    await _StreamEnd(call, hub)()  # type: ignore[arg-type]
    assert [row.outcome for row in recorded.calls] == [logged_as]
