"""The ``hermes`` command."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import sys
from pathlib import Path

import typer
import uvicorn
from alembic.util import CommandError as AlembicCommandError
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from hermes_hub import __version__
from hermes_hub.cli import (
    admin,
    agents,
    contracts,
    db,
    demo,
    discovery,
    init,
    keys,
    ledger,
    session,
    trust,
    wallet,
)
from hermes_hub.cli.common import database_url, load_settings
from hermes_hub.cli.output import CliError, JsonOption, emit, error_console
from hermes_hub.config import (
    Settings,
    UnsafeSettingsError,
    check_production_safety,
    resolve_secret_key,
)
from hermes_hub.db import migrate
from hermes_hub.db.session import create_engine
from hermes_hub.identity.models import User, UserRole
from hermes_hub.ops import backup as backups

app = typer.Typer(
    name="hermes",
    help="Hermes Hub: run the hub, manage its database, keys and admins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(admin.app, name="admin")
app.add_typer(keys.app, name="keys")
app.add_typer(agents.app, name="agents")
# `hermes agent search ...` reads naturally; both names work.
app.add_typer(agents.app, name="agent")
app.add_typer(ledger.app, name="ledger")
app.add_typer(wallet.app, name="wallet")
app.add_typer(trust.app, name="trust")
app.add_typer(discovery.app, name="discovery")
app.add_typer(contracts.app, name="contract")
app.add_typer(contracts.app, name="contracts")
app.add_typer(demo.app, name="demo")
app.command("login")(session.login)
app.command("token")(session.token)
app.command("init")(init.init_project)


def _describe_database(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@app.command("version")
def version(as_json: bool = JsonOption) -> None:
    """Print the hub's version."""
    emit({"version": __version__}, as_json=as_json, human=f"hermes-hub {__version__}")


async def _preflight(settings: Settings) -> bool:
    """Check the database (and Redis) before serving; return whether an admin exists."""
    engine = create_engine(settings)
    try:
        revision = await migrate.current_revision(engine)
        head = migrate.head_revision()
        if revision != head:
            raise CliError(
                f"database schema is at {revision or 'nothing'}, this version needs {head}: "
                "run 'hermes db upgrade'"
            )
        async with engine.connect() as connection:
            has_admin = (
                await connection.execute(
                    select(User.id).where(User.role == UserRole.ADMIN.value).limit(1)
                )
            ).first() is not None
    finally:
        await engine.dispose()
    if settings.redis_url:
        import redis.asyncio as redis

        client = redis.Redis.from_url(settings.redis_url)
        try:
            await client.ping()
        except (redis.RedisError, OSError) as exc:
            raise CliError(f"Redis unreachable at {settings.redis_url}: {exc}") from exc
        finally:
            await client.aclose()
    return has_admin


@app.command("serve")
def serve(
    host: str | None = typer.Option(None, "--host", help="Bind address [HERMES_HOST, 127.0.0.1]."),
    port: int | None = typer.Option(None, "--port", help="Port [HERMES_PORT or PORT, 8080]."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, max=64, help="Worker processes [1]."
    ),
) -> None:
    """Start the hub's HTTP server."""
    # Workers rebuild settings from the environment, so command-line choices go there too.
    for name, value in (("HERMES_HOST", host), ("HERMES_PORT", port), ("HERMES_WORKERS", workers)):
        if value is not None:
            os.environ[name] = str(value)
    settings = load_settings()
    check_production_safety(settings)
    has_admin = asyncio.run(_preflight(settings))
    resolve_secret_key(settings)
    if settings.workers > 1:
        metrics_dir = settings.data_dir.resolve() / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    url = f"http://{settings.host}:{settings.port}"
    database = _describe_database(database_url(settings))
    error_console.print(f"Hermes Hub {__version__} on {url}  (database: {database})")
    error_console.print(f"API docs: {url}/docs   health: {url}/healthz")
    if not has_admin:
        error_console.print(
            f"No admin yet. Create one with:  {_this_command()} admin create "
            "--email you@example.com  (prompts for the password)"
        )
    uvicorn.run(
        "hermes_hub.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        access_log=False,
        server_header=False,
    )


@app.command("backup")
def backup(path: Path = typer.Argument(..., help="File to write the backup to.")) -> None:
    """Back up the database (SQLite online backup, or pg_dump for PostgreSQL)."""
    backups.backup(database_url(load_settings()), path)
    emit({}, as_json=False, human=f"backup written to {path}")


@app.command("restore")
def restore(
    path: Path = typer.Argument(..., help="A backup made by 'hermes backup'."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Replace the database's contents with a backup. Stop the hub first."""
    url = database_url(load_settings())
    if not yes and not typer.confirm(
        f"Replace everything in {_describe_database(url)} with {path}?"
    ):
        raise CliError("restore cancelled")
    backups.restore(url, path)
    emit(
        {},
        as_json=False,
        human=f"restored {path}; run 'hermes db upgrade' if it predates this version",
    )


def main() -> None:
    """Entry point: user mistakes and unreachable services print one line and exit 1."""
    try:
        app(prog_name="hermes")
    except (CliError, UnsafeSettingsError, backups.BackupError, AlembicCommandError) as exc:
        _fail(str(exc))
    except (DBAPIError, PoolTimeoutError, OSError) as exc:
        _fail(f"database unreachable ({_first_line(exc)}); check HERMES_DATABASE_URL")


def _this_command() -> str:
    """How the user ran this program, e.g. ``.venv/bin/hermes``, for copy-paste hints."""
    invoked = Path(sys.argv[0])
    if invoked.name == "hermes" and invoked.exists():
        return shlex.quote(os.path.relpath(invoked))
    return "hermes"


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


def _fail(message: str) -> None:
    error_console.print(f"error: {message}", style="red")
    sys.exit(1)
