"""``hermes demo``: the hub's headline flows, told live against a real hub.

``hermes demo`` (or ``hermes demo paris``) is the seeds' user journey: agents bid for "Book
me a flight to Paris next week", the hub awards by your weights, and settlement moves the
money and the trust. ``hermes demo discovery`` finds agents by what they do, and
``hermes demo a2a`` calls an agent with a stock A2A client through the hub.
"""

from __future__ import annotations

from pathlib import Path

import typer

from hermes_hub.cli.common import hub_url
from hermes_hub.cli.demo.a2a_calls import a2a_story
from hermes_hub.cli.demo.discovery import discovery_story
from hermes_hub.cli.demo.paris import paris_story
from hermes_hub.cli.demo.stage import stage

app = typer.Typer(
    help="Watch the hub at work: the Paris auction (default), discovery, or A2A calls.",
    invoke_without_command=True,
)

HubChoice = typer.Option(
    None,
    "--hub",
    metavar="URL",
    help="Run against this hub (on this machine, with HERMES_ALLOW_PRIVATE_ENDPOINTS=1) "
    "instead of a throwaway one.",
    show_default=False,
)
KeepOption = typer.Option(
    None,
    "--keep",
    metavar="DIR",
    help="Keep the demo's hub database, agent keys and logs in DIR (new or empty).",
    show_default=False,
)


def _hub(value: str | None) -> str | None:
    return hub_url(value) if value is not None else None


@app.callback()
def demo(ctx: typer.Context, hub: str | None = HubChoice, keep: Path | None = KeepOption) -> None:
    """The Paris story unless a demo is named."""
    if ctx.invoked_subcommand is None:
        stage(paris_story, hub=_hub(hub), keep=keep)


@app.command("paris")
def paris(hub: str | None = HubChoice, keep: Path | None = KeepOption) -> None:
    """Three agents bid for "Book me a flight to Paris next week": award, delivery,
    settlement, trust and balances."""
    stage(paris_story, hub=_hub(hub), keep=keep)


@app.command("discovery")
def discovery(hub: str | None = HubChoice, keep: Path | None = KeepOption) -> None:
    """A dozen agents enroll; find them by what you need, in your own words."""
    stage(discovery_story, hub=_hub(hub), keep=keep)


@app.command("a2a")
def a2a(hub: str | None = HubChoice, keep: Path | None = KeepOption) -> None:
    """A stock a2a-sdk client calls an SDK agent through the hub; the owner's ACL and call
    log."""
    stage(a2a_story, hub=_hub(hub), keep=keep)
