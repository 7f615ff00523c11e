"""Plain lines for values a script may capture, JSON with --json, rich only for stderr notes."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

# Never wrap (a captured key or signature must stay on one line) and never read file names
# or messages as rich markup.
error_console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def emit(data: dict[str, Any], *, as_json: bool, human: str) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        typer.echo(human)
