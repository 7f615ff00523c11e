from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from hermes_hub.cli.common import call_hub
from hermes_hub.cli.output import CliError, JsonOption, emit
from hermes_hub.sdk import HubClient, load_private_key
from hermes_hub.sdk.keys import KeyFileError

app = typer.Typer(help="Agents, through the hub's HTTP API.", no_args_is_help=True)


@app.command("enroll")
def enroll(
    name: str = typer.Option(..., "--name", help="Display name of the agent."),
    key: Path = typer.Option(..., "--key", "-k", help="The agent's private key file (PEM)."),
    token: str = typer.Option(
        ...,
        "--token",
        envvar="HERMES_TOKEN",
        help="Your user access token (from /api/v1/auth/login).",
    ),
    hub: str = typer.Option(
        "http://127.0.0.1:8080", "--hub", envvar="HERMES_HUB_URL", help="The hub's base URL."
    ),
    description: str = typer.Option("", "--description"),
    capability: list[str] = typer.Option(
        [], "--capability", "-c", help="Repeat for each capability."
    ),
    endpoint_url: str | None = typer.Option(None, "--endpoint-url"),
    organization_id: str | None = typer.Option(None, "--org"),
    as_json: bool = JsonOption,
) -> None:
    """Enroll an agent: send its public key, sign the challenge, print the API key (shown once)."""
    try:
        private_key = load_private_key(key)
    except KeyFileError as exc:
        raise CliError(str(exc)) from exc

    async def run() -> dict[str, Any]:
        async with HubClient(hub, token=token) as client:
            return await client.enroll_agent(
                private_key=private_key,
                name=name,
                description=description,
                capabilities=capability,
                endpoint_url=endpoint_url,
                organization_id=organization_id,
            )

    result = call_hub(run, hub)
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
    return f"{pricing['base_price']:g} {pricing['currency']}" if pricing else "quote"


@app.command("search")
def search(
    query: str = typer.Argument(..., help="What you need, in your own words."),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="HERMES_TOKEN",
        help="A user token or agent API key; without one only public agents are searched.",
    ),
    hub: str = typer.Option(
        "http://127.0.0.1:8080", "--hub", envvar="HERMES_HUB_URL", help="The hub's base URL."
    ),
    max_price: float | None = typer.Option(None, "--max-price", min=0),
    min_reputation: float | None = typer.Option(None, "--min-reputation", min=0, max=1),
    organization_id: str | None = typer.Option(None, "--org"),
    available_now: bool = typer.Option(False, "--online", help="Only agents online now."),
    limit: int = typer.Option(10, "--limit", "-n", min=1, max=50),
    as_json: bool = JsonOption,
) -> None:
    """Find agents from a sentence: semantic and keyword search, ranked with trust."""

    async def run() -> dict[str, Any]:
        async with HubClient(hub, token=token) as client:
            return await client.discover_agents(
                query,
                max_price=max_price,
                min_reputation=min_reputation,
                organization_id=organization_id,
                available_now=available_now,
                limit=limit,
            )

    result = call_hub(run, hub)
    if as_json:
        emit(result, as_json=True, human="")
        return
    results = result["results"]
    mode = result["mode"] if result["semantic_search"] else "lexical only"
    table = Table(title=f"{len(results)} agents for {query!r} ({mode})", title_justify="left")
    for column, justify in (
        ("#", "right"),
        ("agent", "left"),
        ("relevance", "right"),
        ("trust", "right"),
        ("price", "right"),
        ("online", "center"),
        ("why it matched", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for rank, agent in enumerate(results, start=1):
        table.add_row(
            str(rank),
            f"{agent['name']}\n[dim]{agent['id']}[/dim]",
            f"{agent['relevance']:.2f}",
            f"{agent['trust_score']:.2f} {agent['grade']}",
            _price(agent),
            "yes" if agent["online"] else "",
            agent["why"],
        )
    Console(soft_wrap=False).print(table)
