"""Event tests: the app served by a real uvicorn on a free port, and a websockets client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from hermes_hub.db.session import Database, run_after_commit
from hermes_hub.events.log import EventRecord, publish

WAIT_SECONDS = 10


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` (whose lifespan the caller runs) on a free port; yield its ws:// URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started or task.done())
        if task.done():
            task.result()
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def ws_base(app: FastAPI) -> AsyncIterator[str]:
    async with serve(app) as url:
        yield url


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], *, seconds: float = WAIT_SECONDS
) -> None:
    """Wait until ``predicate`` holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        outcome = predicate()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {seconds} s")
        await asyncio.sleep(0.01)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def open_socket(
    url: str, credential: str | None = None, **query: Any
) -> AsyncIterator[ClientConnection]:
    """A socket sending ``credential`` as a bearer header; ``query`` goes in the URL."""
    params = "&".join(f"{key}={value}" for key, value in query.items())
    target = f"{url}?{params}" if params else url
    headers = bearer(credential) if credential else None
    async with connect(target, additional_headers=headers, open_timeout=WAIT_SECONDS) as socket:
        yield socket


async def receive(socket: ClientConnection, *, seconds: float = WAIT_SECONDS) -> dict[str, Any]:
    async with asyncio.timeout(seconds):
        message: dict[str, Any] = json.loads(await socket.recv())
    return message


async def receive_event(
    socket: ClientConnection, *, seconds: float = WAIT_SECONDS
) -> dict[str, Any]:
    """The next event, skipping pings."""
    while True:
        message = await receive(socket, seconds=seconds)
        if message.get("type") != "ping":
            assert "id" in message, message
            # Checked here and dropped, so tests can compare events with EventRecords.
            assert isinstance(message.pop("resume_after"), int), message
            return message


async def emit(
    database: Database, recipients: Iterable[str], type_: str = "test.event", **data: Any
) -> list[EventRecord]:
    """Publish in a committed transaction, the way services do."""
    async with database.writer() as session:
        records = await publish(session, recipients, type_, data)
        await session.commit()
        run_after_commit(session)
    return records
