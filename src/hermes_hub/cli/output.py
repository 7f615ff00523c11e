"""Human output through rich, machine output as one JSON document on stdout."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

console = Console()
error_console = Console(stderr=True)


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def emit(data: dict[str, Any], *, as_json: bool, human: str) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        console.print(human, highlight=False)
