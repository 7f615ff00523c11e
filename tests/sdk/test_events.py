"""HermesClient.events(): the real hub behind a link the test can cut, and a scripted fake hub
for the orderings a real one only produces under load."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as serve_websocket

from hermes_hub.events.log import agent_recipient, user_recipient
from hermes_hub.sdk import (
    AuthenticationError,
    HermesClient,
    HubUnavailable,
    PermissionDenied,
    SyncHermesClient,
)
from tests.events.conftest import emit, eventually, serve
from tests.sdk.conftest import enroll, sign_up

FAST_RETRY = {"reconnect_delay": 0.01, "max_reconnect_delay": 0.1}


class CuttableLink:
    """A TCP relay in front of the hub: ``cut()`` drops every connection the way a lost
    network does (no close frame), and refuses new ones until ``restore()``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.refusing = False
        self.port = 0
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []

    async def relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.upstream_port
        )
        self._pairs.append((writer, upstream_writer))
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer), return_exceptions=True
        )

    def cut(self) -> None:
        self.refusing = True
        for client_side, hub_side in self._pairs:
            client_side.transport.abort()
            hub_side.transport.abort()
        self._pairs.clear()

    def restore(self) -> None:
        self.refusing = False


async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            target.write(chunk)
            await target.drain()
    finally:
        target.close()


@contextlib.asynccontextmanager
async def cuttable_link(upstream_port: int) -> AsyncIterator[CuttableLink]:
    link = CuttableLink(upstream_port)
    server = await asyncio.start_server(link.relay, "127.0.0.1", 0)
    link.port = server.sockets[0].getsockname()[1]
    try:
        yield link
    finally:
        link.cut()
        server.close()
        await server.wait_closed()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# ---- against the hub ----


async def test_a_dropped_link_loses_and_repeats_nothing(app, connect):
    agent = await enroll(connect, await sign_up(connect))
    recipient = agent_recipient(uuid.UUID(agent.id))
    database = app.state.database
    received: list[dict[str, Any]] = []

    async with serve(app) as ws_url, cuttable_link(port_of(ws_url)) as link:
        hub = HermesClient(f"http://127.0.0.1:{link.port}", api_key=agent.credential)
        async with hub, hub.events(**FAST_RETRY) as stream:

            async def collect() -> None:
                async for event in stream:
                    received.append(event)

            reader = asyncio.create_task(collect())
            await eventually(lambda: stream.resume_point is not None)
            before = [record for n in range(3) for record in await emit(database, [recipient], n=n)]
            await eventually(lambda: len(received) == 3)

            link.cut()
            missed = [
                record for n in range(3, 6) for record in await emit(database, [recipient], n=n)
            ]
            link.restore()
            # The hub has not settled the first three yet (that takes a heartbeat), so it
            # replays them after the reconnect; the stream must drop them.
            await eventually(lambda: len(received) == 6)
            [live] = await emit(database, [recipient], n="live")
            await eventually(lambda: len(received) == 7)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    assert [event["id"] for event in received] == [r.id for r in [*before, *missed, live]]
    assert received[-1]["data"] == {"n": "live"}
    assert "resume_after" not in received[0]
    assert stream.connections >= 2


async def test_a_user_stream_and_a_later_resume(app, connect):
    user = await sign_up(connect)
    recipient = user_recipient(uuid.UUID(user.id))
    database = app.state.database
    async with serve(app) as ws_url:
        hub = HermesClient(ws_url.replace("ws://", "http://"), token=user.credential)
        async with hub:
            async with hub.events(**FAST_RETRY) as stream:
                first = asyncio.create_task(anext(stream))
                await eventually(lambda: stream.resume_point is not None)
                [record] = await emit(database, [recipient], kind="first")
                assert (await first)["id"] == record.id
                resume_from = stream.resume_point
            [later] = await emit(database, [recipient], kind="while away")
            # A new stream from the saved resume point replays what came after it.
            async with hub.events(since=resume_from, **FAST_RETRY) as resumed:
                replayed = [await anext(resumed), await anext(resumed)]
    assert [event["id"] for event in replayed] == [record.id, later.id]


async def test_a_refused_credential_ends_the_stream_with_its_error(app):
    async with serve(app) as ws_url:
        hub = HermesClient(ws_url.replace("ws://", "http://"), api_key="hhk_unknown")
        async with hub:
            stream = hub.events(**FAST_RETRY)
            with pytest.raises(AuthenticationError) as caught:
                await anext(stream)
            with pytest.raises(StopAsyncIteration):
                await anext(stream)
    assert caught.value.code == "invalid_api_key"
    assert stream.connections == 1


async def test_an_unreachable_hub_gives_up_after_max_reconnects():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    async with HermesClient(f"http://127.0.0.1:{closed_port}", api_key="hhk_x") as hub:
        stream = hub.events(max_reconnects=2, **FAST_RETRY)
        with pytest.raises(HubUnavailable) as caught:
            await anext(stream)
    assert caught.value.status == 0


# ---- against a scripted hub ----


def hello(last_event_id: int) -> dict[str, Any]:
    return {"type": "hello", "recipient": "agent:x", "last_event_id": last_event_id}


def event(event_id: int, resume_after: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "test.event",
        "data": {"n": event_id},
        "created_at": "2026-01-01T00:00:00Z",
        "resume_after": resume_after,
    }


@contextlib.asynccontextmanager
async def scripted_hub(
    script: list[tuple[list[dict[str, Any]], int | None]],
) -> AsyncIterator[tuple[str, list[str]]]:
    """Connection n gets ``script[n]``'s messages, then a close with its code (or, for
    ``None``, stays open until the client leaves). Yields the base URL and request paths."""
    paths: list[str] = []

    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        messages, close_code = script[len(paths)]
        paths.append(connection.request.path)
        for message in messages:
            await connection.send(json.dumps(message))
        if close_code is None:
            await connection.wait_closed()
        else:
            await connection.close(close_code, "scripted")

    async with serve_websocket(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}", paths


async def test_late_events_are_kept_and_replays_dropped():
    script: list[tuple[list[dict[str, Any]], int | None]] = [
        ([hello(5), event(6, 5), event(8, 5)], 1011),
        # 7 committed late: it arrives after 8. 6 and 8 are replayed and must be dropped.
        (
            [
                hello(5),
                event(6, 5),
                event(7, 5),
                event(8, 5),
                {"type": "ping", "resume_after": 8},
                event(9, 8),
            ],
            1001,
        ),
        ([hello(8), event(9, 8), event(10, 8)], None),
    ]
    async with (
        scripted_hub(script) as (url, paths),
        HermesClient(url, api_key="hhk_x") as hub,
        hub.events(since=5, **FAST_RETRY) as stream,
    ):
        ids = [(await anext(stream))["id"] for _ in range(5)]
        assert stream.resume_point == 8
    assert ids == [6, 8, 7, 9, 10]
    assert paths == [
        "/api/v1/ws/agent?last_event_id=5",
        "/api/v1/ws/agent?last_event_id=5",
        "/api/v1/ws/agent?last_event_id=8",
    ]


async def test_a_rate_limit_is_retried_and_a_refusal_raised():
    def refusal(status: int, code: str) -> dict[str, Any]:
        return {"type": "error", "code": code, "status": status, "detail": code}

    script: list[tuple[list[dict[str, Any]], int | None]] = [
        ([refusal(429, "rate_limited")], 4429),
        ([refusal(403, "agent_required")], 4403),
    ]
    async with scripted_hub(script) as (url, paths), HermesClient(url, api_key="hhk_x") as hub:
        stream = hub.events(**FAST_RETRY)
        with pytest.raises(PermissionDenied) as caught:
            await anext(stream)
    assert caught.value.code == "agent_required"
    assert len(paths) == 2


async def test_the_blocking_facade_iterates_events():
    script: list[tuple[list[dict[str, Any]], int | None]] = [
        ([hello(0), event(1, 0), event(2, 0)], None),
    ]

    def read_two(url: str) -> list[int]:
        with SyncHermesClient(url, api_key="hhk_x") as hub:
            events = hub.events()
            ids = [next(events)["id"], next(events)["id"]]
            events.close()
            return ids

    async with scripted_hub(script) as (url, _):
        assert await asyncio.to_thread(read_two, url) == [1, 2]
