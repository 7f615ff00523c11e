"""``hermes discovery``: (re)build the search index on the database directly
(HERMES_DATABASE_URL), like ``hermes trust``."""

from __future__ import annotations

import time
from typing import Any

import typer

from hermes_hub.cli.common import run_with_database
from hermes_hub.cli.output import JsonOption, emit
from hermes_hub.config import Settings
from hermes_hub.db.session import Database
from hermes_hub.discovery.service import Discovery, reindex

app = typer.Typer(help="The discovery index: semantic and keyword search.", no_args_is_help=True)


@app.command("reindex")
def reindex_command(
    force: bool = typer.Option(
        False, "--force", help="Re-embed every agent, not only missing or stale documents."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Index every agent whose search document is missing, stale, or made with another model
    (the hub also does this in the background at start)."""

    async def work(database: Database, settings: Settings) -> dict[str, Any]:
        discovery = Discovery(database, settings)
        await discovery.start()
        started = time.perf_counter()
        written = await reindex(database, discovery, force=force)
        status = discovery.status()
        return {
            "agents_indexed": written,
            "semantic_search": status.mode.value != "off",
            "mode": status.mode.value,
            "reason": status.reason or None,
            "seconds": round(time.perf_counter() - started, 3),
        }

    result = run_with_database(work)
    mode = result["mode"] if result["semantic_search"] else f"lexical only: {result['reason']}"
    emit(
        result,
        as_json=as_json,
        human=f"indexed {result['agents_indexed']} agents in {result['seconds']} s ({mode})",
    )
