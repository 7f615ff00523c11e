from __future__ import annotations

import asyncio

import typer

from hermes_hub.cli.common import database_url, load_settings
from hermes_hub.cli.output import JsonOption, emit
from hermes_hub.db import migrate
from hermes_hub.db.session import create_engine

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: the latest)."""
    url = database_url(load_settings())
    migrate.upgrade(url, revision)
    emit({}, as_json=False, human=f"database upgraded to {revision}")


@app.command("downgrade")
def downgrade(
    revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base."),
) -> None:
    """Revert migrations down to REVISION."""
    url = database_url(load_settings())
    migrate.downgrade(url, revision)
    emit({}, as_json=False, human=f"database downgraded to {revision}")


@app.command("current")
def current(as_json: bool = JsonOption) -> None:
    """Show the database's revision and whether it is the latest."""
    settings = load_settings()

    async def read() -> str | None:
        engine = create_engine(settings)
        try:
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    revision = asyncio.run(read())
    head = migrate.head_revision()
    state = "current" if revision == head else "behind: run 'hermes db upgrade'"
    emit(
        {"revision": revision, "head": head, "is_current": revision == head},
        as_json=as_json,
        human=f"revision {revision or '(none)'} (head {head}) - {state}",
    )
