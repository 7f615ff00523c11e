"""``hermes demo a2a``: an agent written with the SDK is called through the hub by a stock
``a2a-sdk`` client (blocking and streaming), by the execute API, and refused to a caller
its owner has not allowed; the owner then reads the call log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers.proto_helpers import get_text_parts, new_text_message
from a2a.types.a2a_pb2 import Role, SendMessageRequest, StreamResponse, TaskState
from google.protobuf.json_format import MessageToDict

from hermes_hub.cli.demo.cast import Translator
from hermes_hub.cli.demo.narration import Narrator, escape
from hermes_hub.cli.demo.people import Person, sign_up
from hermes_hub.cli.demo.stage import running
from hermes_hub.cli.output import CliError
from hermes_hub.sdk import HermesError

TIMEOUT_SECONDS = 30.0
LOG_POLLS = 50


def _message(text: str) -> SendMessageRequest:
    return SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))


def _describe(event: StreamResponse) -> str:
    """One line for one A2A stream event."""
    kind = event.WhichOneof("payload")
    if kind == "task":
        return f"task {event.task.id[:8]}: {TaskState.Name(event.task.status.state)}"
    if kind == "status_update":
        return f"status: {TaskState.Name(event.status_update.status.state)}"
    if kind == "artifact_update":
        texts = get_text_parts(event.artifact_update.artifact.parts)
        return f"artifact: {' '.join(texts) or MessageToDict(event.artifact_update.artifact)}"
    if kind == "message":
        return f"message: {' '.join(get_text_parts(event.message.parts))}"
    return kind or "event"


def _answer(events: list[StreamResponse]) -> str:
    for event in reversed(events):
        kind = event.WhichOneof("payload")
        if kind == "task":
            for artifact in event.task.artifacts:
                texts = get_text_parts(artifact.parts)
                if texts:
                    return " ".join(texts)
        if kind == "artifact_update":
            return " ".join(get_text_parts(event.artifact_update.artifact.parts))
        if kind == "message":
            return " ".join(get_text_parts(event.message.parts))
    return "(no text in the answer)"


async def story(hub_url: str, folder: Path, narrator: Narrator, people: list[Person]) -> None:
    narrator.chapter("An SDK agent enrolls with its own A2A server")
    owner = await sign_up(hub_url, "Owner")
    you = await sign_up(hub_url, "You")
    stranger = await sign_up(hub_url, "Stranger")
    people.extend((owner, you, stranger))
    translator = Translator()
    async with running([translator], owner, hub_url, folder) as (handle,):
        hub_card_base = f"{hub_url}/a2a/agents/{handle.agent_id}"
        narrator.say(f"{escape(translator.name)} serves A2A at {escape(handle.url)}.")
        narrator.say(
            f"The hub serves its card at {escape(hub_card_base)}/.well-known/agent-card.json"
        )

        narrator.chapter("A stock a2a-sdk client resolves the hub's card")
        headers = {"Authorization": f"Bearer {you.token}"}
        async with httpx.AsyncClient(headers=headers, timeout=TIMEOUT_SECONDS) as http:
            card = await A2ACardResolver(http, hub_card_base).get_agent_card()
            narrator.table(
                "The card, as the client sees it",
                ("field", "value"),
                [
                    ("name", card.name),
                    ("skills", ", ".join(skill.id for skill in card.skills)),
                    (
                        "interfaces",
                        "; ".join(
                            f"{item.protocol_binding} {item.protocol_version} at {item.url}"
                            for item in card.supported_interfaces
                        ),
                    ),
                    ("auth", ", ".join(card.security_schemes) or "none"),
                    ("streaming", str(card.capabilities.streaming)),
                ],
            )
            narrator.note(
                "Every interface points at the hub: the caller never learns the agent's address."
            )
            elsewhere = [
                item.url for item in card.supported_interfaces if not item.url.startswith(hub_url)
            ]
            if elsewhere:
                raise CliError(
                    f"the hub's card sends callers to {elsewhere[0]}, not to {hub_url}: start "
                    "that hub with HERMES_PUBLIC_URL set to the address it is reached at"
                )

            narrator.chapter("You call it through the hub: blocking, then streaming")
            blocking = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)
            question = "Where is the station?"
            answer = _answer([event async for event in blocking.send_message(_message(question))])
            narrator.say(f'"{question}" -> [bold]{escape(answer)}[/bold]')
            streaming = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(card)
            narrator.say('Streaming "A coffee please":')
            async for event in streaming.send_message(_message("A coffee please")):
                narrator.say(f"  {escape(_describe(event))}")

        narrator.chapter("Callers that do not speak A2A use the execute API")
        executed = await you.client.execute_agent(handle.agent_id, "thank you")
        narrator.say(
            f'POST /api/v1/agents/execute "thank you" -> [bold]{escape(_output(executed))}[/bold] '
            f"(task {escape(str(executed.get('task_id')))}, {escape(str(executed.get('state')))})"
        )

        narrator.chapter("The owner decides who may call")
        await owner.client.update_agent(handle.agent_id, {"requires_approval": True})
        narrator.say(f"The owner sets {escape(translator.name)} to require approval.")
        try:
            await stranger.client.execute_agent(handle.agent_id, "hello")
            narrator.say("[red]A stranger's call went through: it should not have![/red]")
        except HermesError as refused:
            narrator.say(
                f"A stranger calls: [red]{refused.status} {escape(refused.code)}[/red]: "
                f"{escape(refused.detail)}"
            )
        pending = [
            request
            for request in (await owner.client.agent_permissions(handle.agent_id))["requests"]
            if request["status"] == "pending"
        ]
        for request in pending:
            await owner.client.decide_access_request(
                handle.agent_id, request["id"], approve=True, max_calls_per_hour=100
            )
            narrator.say(
                f"The owner approves the stranger's request ({request['attempts']} attempt), "
                "at most 100 calls an hour."
            )
        allowed = await stranger.client.execute_agent(handle.agent_id, "good morning")
        narrator.say(f"The stranger calls again: [bold]{escape(_output(allowed))}[/bold]")
        await owner.client.deny_caller(handle.agent_id, user_id=stranger.user_id)
        try:
            await stranger.client.execute_agent(handle.agent_id, "thanks")
        except HermesError as refused:
            narrator.say(
                f"The owner changes its mind and denies the stranger: [red]{refused.status} "
                f"{escape(refused.code)}[/red]"
            )

        narrator.chapter("The owner reads the call log")
        names = {you.user_id: "You", stranger.user_id: "Stranger"}
        calls = await _logged_calls(owner, handle.agent_id, expected=4)
        narrator.table(
            "Every call through the hub: who, how, how long, how it ended",
            ("when", "caller", "channel", "method", "latency ms>", "outcome"),
            [
                (
                    str(call["started_at"])[11:19],
                    _caller_name(call, names),
                    call["channel"],
                    call["method"],
                    f"{call['latency_ms']:.1f}",
                    call["outcome"],
                )
                for call in reversed(calls)
            ],
        )
        narrator.note(
            "Refused calls are not in the log: the ACL turned them away before any forwarding."
        )


def _caller_name(call: dict[str, object], names: dict[str, str]) -> str:
    user = call.get("caller_user_id")
    if isinstance(user, str):
        return names.get(user, user)
    agent = call.get("caller_agent_id")
    return f"agent {agent}" if agent else "-"


async def _logged_calls(owner: Person, agent_id: str, *, expected: int) -> list[dict[str, object]]:
    """The log is written in the background a moment after each call: wait for it."""
    for _ in range(LOG_POLLS):
        page = await owner.client.agent_calls(agent_id)
        items: list[dict[str, object]] = page["items"]
        if len(items) >= expected:
            return items
        await asyncio.sleep(0.1)
    return items


def _output(result: dict[str, Any]) -> str:
    """The text of an execute API answer."""
    output = result.get("output")
    if isinstance(output, dict) and isinstance(output.get("text"), str):
        return str(output["text"])
    return str(output)
