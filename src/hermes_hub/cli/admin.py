from __future__ import annotations

import asyncio

import typer

from hermes_hub.cli.common import load_settings
from hermes_hub.cli.output import CliError, JsonOption, emit
from hermes_hub.db.session import Database, create_engine
from hermes_hub.errors import HubError
from hermes_hub.identity import service
from hermes_hub.identity.models import UserRole

app = typer.Typer(help="Administration of the hub.", no_args_is_help=True)


@app.command("create")
def create(
    email: str = typer.Option(..., "--email", help="The admin's email address."),
    password: str = typer.Option(
        ...,
        "--password",
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        envvar="HERMES_ADMIN_PASSWORD",
        help="Omit to be prompted; or set HERMES_ADMIN_PASSWORD.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create an admin user (the first one, or another)."""
    settings = load_settings()

    async def run() -> dict[str, str]:
        database = Database.from_engine(create_engine(settings))
        try:
            async with database.writer() as session:
                user = await service.register_user(
                    session, email=email, password=password, role=UserRole.ADMIN
                )
                await session.commit()
                return {"id": str(user.id), "email": user.email, "role": user.role}
        finally:
            await database.dispose()

    try:
        created = asyncio.run(run())
    except HubError as exc:
        raise CliError(exc.detail) from exc
    emit(created, as_json=as_json, human=f"admin {created['email']} created (id {created['id']})")
