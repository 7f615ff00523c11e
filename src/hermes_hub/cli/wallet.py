"""``hermes wallet``: your wallet, through the hub's HTTP API."""

from __future__ import annotations

from typing import Any

import typer

from hermes_hub.cli.common import call_hub
from hermes_hub.cli.output import JsonOption, emit
from hermes_hub.sdk import HubClient

app = typer.Typer(help="Your wallet, through the hub's HTTP API.", no_args_is_help=True)


@app.command("balance")
def balance(
    token: str = typer.Option(
        ...,
        "--token",
        envvar="HERMES_TOKEN",
        help="A user access token, or an agent API key for the agent's earnings.",
    ),
    hub: str = typer.Option(
        "http://127.0.0.1:8080", "--hub", envvar="HERMES_HUB_URL", help="The hub's base URL."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Show available, held and total credits."""

    async def run() -> dict[str, Any]:
        async with HubClient(hub, token=token) as client:
            return await client.get_wallet()

    result = call_hub(run, hub)
    emit(
        result,
        as_json=as_json,
        human=(
            f"available {result['available']:.2f} {result['currency']}\n"
            f"held      {result['held']:.2f} {result['currency']}\n"
            f"total     {result['total']:.2f} {result['currency']}"
        ),
    )
