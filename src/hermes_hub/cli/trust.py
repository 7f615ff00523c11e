"""``hermes trust``: recompute scores and run the integrity scan. Works on the database
directly (HERMES_DATABASE_URL), like ``hermes ledger``."""

from __future__ import annotations

import time
import uuid
from typing import Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.cli.common import run_with_database
from hermes_hub.cli.output import CliError, JsonOption, emit
from hermes_hub.config import Settings
from hermes_hub.db.session import Database
from hermes_hub.db.transaction import in_transaction
from hermes_hub.kit.time import utcnow
from hermes_hub.trust import nightly, review, service

T = TypeVar("T")

app = typer.Typer(help="Trust scores: recompute them, scan for manipulation.", no_args_is_help=True)


def _agent_ids(values: list[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(value) for value in values]
    except ValueError as exc:
        raise CliError(f"not an agent id: {exc}") from exc


@app.command("recompute")
def recompute(
    agent_ids: list[str] = typer.Argument(None, help="Agents to recompute (ids)."),
    all_agents: bool = typer.Option(False, "--all", help="Recompute every agent."),
    as_json: bool = JsonOption,
) -> None:
    """Recompute trust from the outcomes, exactly as a settlement does: the given agents, or
    every agent with --all."""
    ids = _agent_ids(agent_ids or [])
    if all_agents == bool(ids):
        raise CliError("give agent ids or --all (not both)")

    async def work(database: Database, settings: Settings) -> dict[str, Any]:
        started = time.perf_counter()
        done = await service.recompute_all(
            database, settings=settings, now=utcnow(), agent_ids=None if all_agents else ids
        )
        return {"agents_recomputed": done, "seconds": round(time.perf_counter() - started, 3)}

    result = run_with_database(work)
    emit(
        result,
        as_json=as_json,
        human=f"recomputed {result['agents_recomputed']} agent(s) in {result['seconds']} s",
    )


@app.command("scan")
def scan(as_json: bool = JsonOption) -> None:
    """Run the integrity scan: flag rings, circular flows and new accounts with many agents,
    re-weigh outlier raters, recompute the agents affected."""

    async def work(database: Database, settings: Settings) -> dict[str, int]:
        async def unit(session: AsyncSession) -> dict[str, int]:
            return (await review.scan(session, settings=settings, now=utcnow())).as_dict()

        return await in_transaction(database, unit)

    result = run_with_database(work)
    emit(
        result,
        as_json=as_json,
        human=(
            f"{result['trades']} trades scanned: {result['findings']} finding(s), "
            f"{result['new_flags']} new flag(s), {result['contracts_held_back']} contract(s) "
            f"held back, {result['raters_down_weighted']} rater(s) down-weighted, "
            f"{result['agents_recomputed']} agent(s) recomputed"
        ),
    )


@app.command("nightly")
def run_nightly(
    force: bool = typer.Option(False, "--force", help="Run even if today's run happened."),
    as_json: bool = JsonOption,
) -> None:
    """Run the nightly job (scan, then recompute every agent) if it is due today."""

    async def work(database: Database, settings: Settings) -> dict[str, Any] | None:
        return await nightly.run_nightly(database, settings=settings, force=force)

    result = run_with_database(work)
    if result is None:
        emit({"ran": False}, as_json=as_json, human="not due: already ran today or before the hour")
        return
    emit({"ran": True, **result}, as_json=as_json, human=f"nightly trust job done: {result}")
