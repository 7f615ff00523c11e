"""What the demos print: chapters, timed lines and tables, on a rich console.

Values that come from the hub go through ``escape`` (or ``Text``), so a name or an intent
with brackets in it is printed as written, never read as markup.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from hermes_hub.cli.output import cells, table

PIPED_WIDTH = 120


def money(amount: Any) -> str:
    """Credits with two decimals, however the hub spelled them."""
    return f"{Decimal(str(amount)).quantize(Decimal('0.01'))}"


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def trust_text(value: float) -> str:
    return f"{value:.3f}"


class Narrator:
    """Prints the story as it happens, each line stamped with the seconds since the start."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        if not self.console.is_terminal:
            # Piped to a file or a pager: wide enough that no table cuts its cells short.
            self.console.width = PIPED_WIDTH
        self._started = time.monotonic()
        self._chapter = 0

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def chapter(self, title: str) -> None:
        self._chapter += 1
        self.console.print()
        self.console.rule(Text(f"{self._chapter}. {title}", style="bold"), align="left")

    def say(self, markup: str) -> None:
        """A line of the story; ``markup`` is the demo's own text, with hub values escaped."""
        stamp = f"[dim]{self.elapsed():6.1f}s[/dim]  "
        self.console.print(stamp + markup)

    def note(self, markup: str) -> None:
        """An aside, not stamped."""
        self.console.print(f"[dim]{markup}[/dim]")

    def table(self, title: str, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
        """A table as the CLI draws them (column names ending in ``>`` are right-aligned
        numbers), every cell plain text."""
        result = table(title, *columns)
        result.title_style = "bold"
        for row in rows:
            result.add_row(*cells(*row))
        self.console.print(result)


__all__ = ["Narrator", "escape", "money", "percent", "trust_text"]
