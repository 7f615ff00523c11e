from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from hermes_hub.cli.output import CliError
from hermes_hub.config import Settings
from hermes_hub.db.session import Database, create_engine
from hermes_hub.errors import HubError
from hermes_hub.sdk import HubApiError

T = TypeVar("T")


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{_variable(error['loc'])}: {error['msg']}" for error in exc.errors())
        raise CliError(f"invalid configuration: {problems}") from exc


def database_url(settings: Settings) -> str:
    return settings.resolved_database_url


def _variable(location: tuple[int | str, ...]) -> str:
    name = "_".join(str(part) for part in location).upper()
    return name if name.startswith("HERMES_") else f"HERMES_{name}"


def run_with_database(work: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Run ``work`` on the configured database (disposed after); a ``HubError`` becomes the
    CLI's one-line error."""
    settings = load_settings()

    async def run() -> T:
        database = Database.from_engine(create_engine(settings))
        try:
            return await work(database, settings)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except HubError as exc:
        raise CliError(exc.detail) from exc


def call_hub(run: Callable[[], Coroutine[Any, Any, T]], hub: str) -> T:
    """Run an API call; a refusal or an unreachable hub becomes the CLI's one-line error."""
    try:
        return asyncio.run(run())
    except HubApiError as exc:
        raise CliError(f"the hub refused: {exc}") from exc
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the hub at {hub}: {exc}") from exc
