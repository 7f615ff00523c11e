"""A misbehaving agent: a raw Starlette app whose card and JSON-RPC answers each test scripts
(bad JSON, huge or trickling cards, redirects, malformed A2A, streams that drop)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.events.conftest import eventually

Handler = Callable[[Request], Awaitable[Response]]


def card_json(rpc_url: str, *, streaming: bool = True) -> dict[str, Any]:
    """A valid A2A 1.0 card pointing at ``rpc_url``."""
    return {
        "name": "Scripted",
        "description": "Does what the test says.",
        "version": "1",
        "supportedInterfaces": [
            {"url": rpc_url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "capabilities": {"streaming": streaming},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "script", "name": "Script", "description": "s", "tags": ["scripted"]}],
    }


@dataclass
class Script:
    base_url: str = ""
    card: Handler | None = None
    rpc: Handler | None = None
    rpc_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rpc_url(self) -> str:
        return f"{self.base_url}/rpc"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def sse_then_drop(events: list[dict[str, Any]]) -> Response:
    """Send these JSON-RPC results as SSE events, then end the stream abruptly."""

    async def body() -> AsyncIterator[bytes]:
        for event in events:
            yield f"data: {json.dumps(event)}\n\n".encode()
            await asyncio.sleep(0.01)
        raise ConnectionResetError("the agent went away")

    return StreamingResponse(body(), media_type="text/event-stream")


@contextlib.asynccontextmanager
async def scripted_agent() -> AsyncIterator[Script]:
    script = Script()

    async def card(request: Request) -> Response:
        if script.card is not None:
            return await script.card(request)
        return json_response(card_json(script.rpc_url))

    async def rpc(request: Request) -> Response:
        body = await request.json()
        script.rpc_calls.append(body)
        if script.rpc is None:
            return json_response({"jsonrpc": "2.0", "id": body.get("id"), "result": {}})
        return await script.rpc(request)

    app = Starlette(
        routes=[
            Route("/.well-known/agent-card.json", card),
            Route("/rpc", rpc, methods=["POST"]),
        ]
    )
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
        script.base_url = f"http://127.0.0.1:{port}"
        yield script
    finally:
        server.should_exit = True
        await task
