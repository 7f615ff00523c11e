"""``hermes agent``: enroll, list, inspect, call and find agents, through the hub's API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from hermes_hub.cli.common import (
    ApiKeyOption,
    HubOption,
    TokenOption,
    call,
    parse_credits,
    parse_json_object,
)
from hermes_hub.cli.output import (
    CliError,
    JsonOption,
    cells,
    credits_text,
    emit,
    emit_json,
    moment,
    print_tables,
    table,
)
from hermes_hub.cli.session import Acting, connect
from hermes_hub.sdk import HermesClient, load_private_key
from hermes_hub.sdk.keys import KeyFileError

app = typer.Typer(help="Agents, through the hub's HTTP API.", no_args_is_help=True)


@app.command("enroll")
def enroll(
    name: str = typer.Option(..., "--name", help="Display name of the agent."),
    key: Path = typer.Option(..., "--key", "-k", help="The agent's private key file (PEM)."),
    token: str | None = TokenOption,
    hub: str | None = HubOption,
    description: str = typer.Option("", "--description"),
    capability: list[str] = typer.Option(
        [], "--capability", "-c", help="Repeat for each capability."
    ),
    endpoint_url: str | None = typer.Option(None, "--endpoint-url"),
    price: str | None = typer.Option(
        None, "--price", metavar="CREDITS", help="Base price per task; omit to quote."
    ),
    organization_id: str | None = typer.Option(None, "--org"),
    as_json: bool = JsonOption,
) -> None:
    """Enroll an agent: send its public key, sign the challenge, print the API key (shown once)."""
    base_price = parse_credits(price, option="--price") if price is not None else None
    try:
        private_key = load_private_key(key)
    except KeyFileError as exc:
        raise CliError(str(exc)) from exc
    target = connect(hub, token=token, acting=Acting.USER)
    result = call(
        target,
        lambda client: client.enroll_agent(
            private_key,
            name,
            description=description,
            capabilities=capability,
            endpoint_url=endpoint_url,
            price=base_price,
            organization_id=organization_id,
        ),
        activity="Enrolling the agent",
    )
    emit(
        result,
        as_json=as_json,
        human=(
            f"agent {result['agent_id']} enrolled\n"
            f"API key (shown once, store it now): {result['api_key']}"
        ),
    )


def _price(agent: dict[str, Any]) -> str:
    pricing = agent.get("pricing")
    return f"{credits_text(pricing['base_price'])} {pricing['currency']}" if pricing else "quote"


@app.command("list")
def list_agents(
    token: str | None = TokenOption,
    api_key: str | None = ApiKeyOption,
    hub: str | None = HubOption,
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=200),
    offset: int = typer.Option(0, "--offset", min=0),
    as_json: bool = JsonOption,
) -> None:
    """Your agents (with an agent's API key: that agent)."""
    target = connect(hub, token=token, api_key=api_key)

    async def fetch(client: HermesClient) -> dict[str, Any]:
        if target.api_key is not None:
            # An agent owns no agents; what it may list is itself, in the same page shape.
            return {"items": [await client.me()], "limit": limit, "offset": 0, "total": 1}
        return await client.list_my_agents(limit=limit, offset=offset)

    page = call(target, fetch, activity="Listing agents")
    if as_json:
        emit_json(page)
        return
    agents = page["items"]
    shown = table(
        f"{len(agents)} of {page['total']} agents", "id=", "name", "status", "capabilities",
        "price>", "endpoint",
    )  # fmt: skip
    for agent in agents:
        shown.add_row(
            *cells(
                agent["id"],
                agent["name"],
                agent["status"],
                ", ".join(agent["capabilities"]),
                _price(agent),
                agent.get("endpoint_url") or "-",
            )
        )
    print_tables(shown)


def _details(title: str, rows: list[tuple[str, object]]) -> Table:
    details = table(title, "field", "value")
    for field, value in rows:
        details.add_row(*cells(field, value))
    return details


@app.command("info")
def info(
    agent_id: str = typer.Argument(..., help="The agent's id."),
    token: str | None = TokenOption,
    api_key: str | None = ApiKeyOption,
    hub: str | None = HubOption,
    as_json: bool = JsonOption,
) -> None:
    """One agent's profile (all of it for its owner)."""
    target = connect(hub, token=token, api_key=api_key)
    agent = call(target, lambda client: client.get_agent(agent_id), activity="Fetching the agent")
    if as_json:
        emit_json(agent)
        return
    rows: list[tuple[str, object]] = [
        ("id", agent["id"]),
        ("status", agent["status"]),
        ("description", agent["description"] or "-"),
        ("capabilities", ", ".join(agent["capabilities"]) or "-"),
        ("price", _price(agent)),
        ("endpoint", agent.get("endpoint_url") or "- (hire it with a contract)"),
        ("public", "yes" if agent["is_public"] else "no"),
        ("organization", agent.get("organization_id") or "-"),
        ("created", moment(agent["created_at"])),
    ]
    # The owner and the agent itself see the private fields too.
    if "owner_id" in agent:
        rows += [
            ("owner", agent["owner_id"]),
            ("requires approval", "yes" if agent["requires_approval"] else "no"),
            ("calls per hour", agent.get("max_calls_per_hour") or "unlimited"),
            ("public key", agent["public_key"]),
        ]
    print_tables(_details(agent["name"], rows))


def _texts(value: Any) -> list[str]:
    """The text parts anywhere in an A2A payload (a message, a status update, an artifact);
    data parts are left out, even when they hold a "text" entry of their own."""
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if not isinstance(value, dict):
        return []
    found: list[str] = []
    for key, inner in value.items():
        if key == "parts" and isinstance(inner, list):
            found += [
                part["text"]
                for part in inner
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            ]
        else:
            found += _texts(inner)
    return found


def _state(value: object) -> str:
    return str(value).removeprefix("TASK_STATE_").lower()


def _event_line(event: dict[str, Any]) -> str:
    """One line per streamed event: a task's state as it changes, the text it produces."""
    name, data = event["event"], event["data"]
    if not isinstance(data, dict):
        return f"{name}: {data}"
    status = data.get("status")
    if isinstance(status, dict):
        said = _texts(status.get("message"))
        return f"{name}: {_state(status.get('state'))}" + (f" - {' '.join(said)}" if said else "")
    if name == "done":
        return f"done: {_state(data.get('state'))}"
    if name == "result":
        output = data.get("output") or {}
        return f"result: {_state(data.get('state'))}\n{output.get('text') or ''}".rstrip()
    texts = [text for text in _texts(data) if text]
    summary = " ".join(texts) if texts else json.dumps(data, separators=(",", ":"))
    return f"{name}: {summary}"


@app.command("call")
def call_agent(
    agent_id: str = typer.Argument(..., help="The agent's id."),
    task: str = typer.Argument(..., help="What to do, in words."),
    context: str | None = typer.Option(
        None, "--context", help="A JSON object sent with the task (or @file.json)."
    ),
    stream: bool = typer.Option(False, "--stream", help="Print the agent's events as they come."),
    timeout: float | None = typer.Option(
        None, "--timeout", min=1, help="Seconds to wait for the answer (each event with --stream)."
    ),
    token: str | None = TokenOption,
    api_key: str | None = ApiKeyOption,
    hub: str | None = HubOption,
    as_json: bool = JsonOption,
) -> None:
    """Call an agent through the hub and print its answer (--json: the result; with --stream,
    one JSON event per line)."""
    extra = parse_json_object(context, option="--context") if context is not None else None
    target = connect(hub, token=token, api_key=api_key)

    if stream:

        async def follow(client: HermesClient) -> None:
            events = client.execute_agent_stream(agent_id, task, extra, read_timeout=timeout)
            async for event in events:
                if as_json:
                    emit_json(event)
                else:
                    typer.echo(_event_line(event))

        call(target, follow)
        return

    result = call(
        target,
        lambda client: client.execute_agent(agent_id, task, extra, read_timeout=timeout),
        activity="Waiting for the agent",
    )
    if as_json:
        emit_json(result)
        return
    output = result.get("output") or {}
    lines = [f"{result.get('state', 'unknown')} ({result.get('kind', 'answer')})"]
    if output.get("text"):
        lines.append(output["text"])
    lines += [json.dumps(item, indent=2) for item in output.get("data") or []]
    typer.echo("\n".join(lines))


@app.command("search")
def search(
    query: str = typer.Argument(..., help="What you need, in your own words."),
    token: str | None = TokenOption,
    api_key: str | None = ApiKeyOption,
    hub: str | None = HubOption,
    max_price: float | None = typer.Option(None, "--max-price", min=0),
    min_reputation: float | None = typer.Option(None, "--min-reputation", min=0, max=1),
    organization_id: str | None = typer.Option(None, "--org"),
    available_now: bool = typer.Option(False, "--online", help="Only agents online now."),
    limit: int = typer.Option(10, "--limit", "-n", min=1, max=50),
    as_json: bool = JsonOption,
) -> None:
    """Find agents from a sentence: semantic and keyword search, ranked with trust (without
    any credential, among public agents only)."""
    target = connect(hub, token=token, api_key=api_key)
    result = call(
        target,
        lambda client: client.discover_agents(
            query,
            max_price=max_price,
            min_reputation=min_reputation,
            organization_id=organization_id,
            available_now=available_now,
            limit=limit,
        ),
        activity="Searching",
    )
    if as_json:
        emit_json(result)
        return
    results = result["results"]
    mode = result["mode"] if result["semantic_search"] else "lexical only"
    found = table(
        f"{len(results)} agents for {query!r} ({mode})",
        "#>", "agent=", "relevance>", "trust>", "price>", "online", "why it matched",
    )  # fmt: skip
    for rank, agent in enumerate(results, start=1):
        found.add_row(
            *cells(
                rank,
                f"{agent['name']}\n{agent['id']}",
                f"{agent['relevance']:.2f}",
                f"{agent['trust_score']:.2f} {agent['grade']}",
                _price(agent),
                "yes" if agent["online"] else "",
                agent["why"],
            )
        )
    print_tables(found)
