from __future__ import annotations

from pydantic import ValidationError

from hermes_hub.cli.output import CliError
from hermes_hub.config import Settings


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
