"""Plain lines for values a script may capture, JSON with --json, rich only for stderr notes
and for the tables of human output."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Never wrap (a captured key or signature must stay on one line) and never read file names
# or messages as rich markup.
error_console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")

ID_WIDTH = 36
PIPED_WIDTH = 200


def emit(data: dict[str, Any], *, as_json: bool, human: str) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        typer.echo(human)


def emit_json(data: Any) -> None:
    """One JSON document on one line: what ``--json`` prints, whatever its shape."""
    typer.echo(json.dumps(data, default=str))


def print_tables(*tables: Table) -> None:
    """Human output. The console is made per call so it writes to the current stdout (tests
    swap it) and measures the current terminal; values in cells are ``Text``, never markup."""
    console = Console(soft_wrap=False, highlight=False)
    if not console.is_terminal:
        # Piped into a pager or a file, 80 columns would cut ids and names short.
        console.width = PIPED_WIDTH
    for table in tables:
        console.print(table)


def table(title: str, *columns: str) -> Table:
    """A left-titled table. A column name ending in ``>`` is right-aligned (numbers); one
    ending in ``=`` holds ids, never wrapped nor cut, since people copy them into the next
    command."""
    result = Table(title=Text(title), title_justify="left", caption_justify="left")
    for column in columns:
        if column.endswith(">"):
            result.add_column(column.removesuffix(">"), justify="right")
        elif column.endswith("="):
            result.add_column(column.removesuffix("="), no_wrap=True, min_width=ID_WIDTH)
        else:
            result.add_column(column)
    return result


def cells(*values: object) -> list[Text]:
    """Row cells as plain text: names and intents come from other users and must not be read
    as rich markup."""
    return [Text("" if value is None else str(value)) for value in values]


def moment(value: object) -> str:
    """An ISO timestamp from the hub, to the second: 2026-01-31 09:30:00 UTC."""
    if not isinstance(value, str):
        return "-" if value is None else str(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    zone = "UTC" if parsed.utcoffset() == timedelta(0) else parsed.strftime("%z")
    return f"{parsed:%Y-%m-%d %H:%M:%S} {zone}".rstrip()


def credits_text(amount: object) -> str:
    """Credits as the hub sent them (a JSON number or string), without a float's exponent or
    trailing zeros: 1000000, 12.5."""
    if amount is None:
        return "-"
    try:
        exact = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    return format(exact.normalize(), "f") if exact.is_finite() else str(amount)


@contextlib.contextmanager
def working(activity: str) -> Iterator[None]:
    """A spinner on stderr while a slow call runs, only on a terminal: stdout stays clean for
    scripts and logs get no animation frames."""
    if not error_console.is_terminal:
        yield
        return
    with error_console.status(Text(activity)):
        yield
