"""``hermes demo``: the hub's headline flows, told live against a real hub.

``hermes demo`` (or ``hermes demo paris``) is the seeds' user journey: agents bid for "Book
me a flight to Paris next week", the hub awards by your weights, and settlement moves the
money and the trust. ``hermes demo discovery`` finds agents by what they do, and
``hermes demo a2a`` calls an agent with a stock A2A client through the hub.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import typer

from hermes_hub.cli.common import hub_url
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


@dataclass(frozen=True)
class Where:
    """--hub and --keep, given before the demo's name or after it."""

    hub: str | None
    keep: Path | None

    def joined(self, ctx: typer.Context) -> Where:
        """These options, else those given before the demo's name."""
        earlier = ctx.obj if isinstance(ctx.obj, Where) else Where(None, None)
        return Where(self.hub or earlier.hub, self.keep or earlier.keep)


def _play(story_module: str, ctx: typer.Context, given: Where) -> None:
    # Each story loads what it needs (a2a-sdk's client, say) only when it runs, so the
    # other hermes commands start as fast as before.
    module = importlib.import_module(f"hermes_hub.cli.demo.{story_module}")
    where = given.joined(ctx)
    hub = hub_url(where.hub) if where.hub is not None else None
    stage(module.story, hub=hub, keep=where.keep)


@app.callback()
def demo(ctx: typer.Context, hub: str | None = HubChoice, keep: Path | None = KeepOption) -> None:
    """The Paris story unless a demo is named."""
    ctx.obj = Where(hub, keep)
    if ctx.invoked_subcommand is None:
        _play("paris", ctx, Where(None, None))


@app.command("paris")
def paris(ctx: typer.Context, hub: str | None = HubChoice, keep: Path | None = KeepOption) -> None:
    """Three agents bid for "Book me a flight to Paris next week": award, delivery,
    settlement, trust and balances."""
    _play("paris", ctx, Where(hub, keep))


@app.command("discovery")
def discovery(
    ctx: typer.Context, hub: str | None = HubChoice, keep: Path | None = KeepOption
) -> None:
    """A dozen agents enroll; find them by what you need, in your own words."""
    _play("discovery", ctx, Where(hub, keep))


@app.command("a2a")
def a2a(ctx: typer.Context, hub: str | None = HubChoice, keep: Path | None = KeepOption) -> None:
    """A stock a2a-sdk client calls an SDK agent through the hub; the owner's ACL and call
    log."""
    _play("a2a_calls", ctx, Where(hub, keep))
