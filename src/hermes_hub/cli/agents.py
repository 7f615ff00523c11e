from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import typer

from hermes_hub.cli.output import CliError, JsonOption, emit
from hermes_hub.sdk import HubApiError, HubClient, load_private_key
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

    try:
        result = asyncio.run(run())
    except HubApiError as exc:
        raise CliError(f"the hub refused: {exc}") from exc
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the hub at {hub}: {exc}") from exc
    emit(
        result,
        as_json=as_json,
        human=(
            f"agent {result['agent_id']} enrolled\n"
            f"API key (shown once, store it now): {result['api_key']}"
        ),
    )
