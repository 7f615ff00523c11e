"""A stock a2a-sdk agent (written only against a2a-sdk, nothing from the hub), served by
uvicorn on a free loopback port, with behaviours the gateway tests need."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
)
from starlette.applications import Starlette

from tests.events.conftest import eventually


@dataclass
class Behaviour:
    """What the agent does with a message; tests change it between calls."""

    steps: int = 1
    delay: float = 0.0
    fail_after: int | None = None  # raise after this many streamed steps (a dropped stream)
    seen: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


class EchoExecutor(AgentExecutor):
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        self.behaviour.seen.append(text)
        assert context.message is not None
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        for step in range(self.behaviour.steps):
            if self.behaviour.fail_after is not None and step >= self.behaviour.fail_after:
                raise RuntimeError("the agent crashed half way")
            if self.behaviour.delay:
                await asyncio.sleep(self.behaviour.delay)
            await updater.add_artifact([new_text_part(f"{text.upper()} #{step + 1}")])
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None
        assert context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def agent_card(url: str, *, version: str = "1.0") -> AgentCard:
    return AgentCard(
        name="Stock Echo",
        description="Shouts back whatever it is told.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version=version)
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(
                id="shout",
                name="Shout",
                description="Upper-cases text.",
                tags=["Text Transform", "echo"],
            )
        ],
    )


@dataclass
class RunningAgent:
    base_url: str
    rpc_url: str
    behaviour: Behaviour


@contextlib.asynccontextmanager
async def stock_agent(behaviour: Behaviour | None = None) -> AsyncIterator[RunningAgent]:
    behaviour = behaviour or Behaviour()
    card_holder: dict[str, AgentCard] = {}

    async def current_card(card: AgentCard) -> AgentCard:
        return card_holder["card"]

    placeholder = agent_card("http://127.0.0.1:1/rpc")
    handler = DefaultRequestHandler(
        agent_executor=EchoExecutor(behaviour),
        task_store=InMemoryTaskStore(),
        agent_card=placeholder,
    )
    app = Starlette(
        routes=[
            *create_agent_card_routes(placeholder, card_modifier=current_card),
            *create_jsonrpc_routes(handler, "/rpc", enable_v0_3_compat=True),
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
        base = f"http://127.0.0.1:{port}"
        card_holder["card"] = agent_card(f"{base}/rpc")
        yield RunningAgent(base_url=base, rpc_url=f"{base}/rpc", behaviour=behaviour)
    finally:
        server.should_exit = True
        await task
