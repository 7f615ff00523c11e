from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import httpx
import typer
from pydantic import ValidationError

from hermes_hub.cli.output import CliError, working
from hermes_hub.config import Settings
from hermes_hub.db.session import Database, create_engine
from hermes_hub.errors import HubError
from hermes_hub.sdk import AgentUnavailable, AuthenticationError, HermesClient, HermesError
from hermes_hub.sdk.errors import NO_RESPONSE_STATUS

T = TypeVar("T")

DEFAULT_HUB = "http://127.0.0.1:8080"

HubOption = typer.Option(
    None,
    "--hub",
    help=f"The hub's base URL (default: your login's hub, else HERMES_HUB, else {DEFAULT_HUB}).",
    show_default=False,
)
TokenOption = typer.Option(
    None,
    "--token",
    envvar="HERMES_TOKEN",
    help="A user access token (default: your stored 'hermes login').",
    show_default=False,
)
ApiKeyOption = typer.Option(
    None,
    "--api-key",
    envvar="HERMES_API_KEY",
    help="Act as an agent, with its API key.",
    show_default=False,
)


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


# ---- talking to a hub ----


@dataclass(frozen=True)
class Hub:
    """Where to send requests and as whom; ``unauthorized_hint`` (if any) ends the error line
    when the hub answers 401, saying how to get a credential it accepts."""

    url: str
    token: str | None = None
    api_key: str | None = None
    unauthorized_hint: str = ""

    def client(self) -> HermesClient:
        return HermesClient(self.url, token=self.token, api_key=self.api_key)


def hub_url(value: str) -> str:
    """A hub base URL as given, without the trailing slash; anything but http(s) is refused
    here, because httpx would otherwise read it as a relative path and fail obscurely."""
    url = value.strip().rstrip("/")
    parsed = httpx.URL(url) if url else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise CliError(f"not a hub URL (expected http://host:port or https://...): {value!r}")
    return url


def call(hub: Hub, work: Callable[[HermesClient], Awaitable[T]], *, activity: str = "") -> T:
    """Run ``work`` with a client for ``hub`` (closed after), behind a spinner named
    ``activity`` on a terminal; a refusal or an unreachable hub becomes the one-line error."""

    async def run() -> T:
        async with hub.client() as client:
            return await work(client)

    try:
        if activity:
            with working(activity):
                return asyncio.run(run())
        return asyncio.run(run())
    except HermesError as exc:
        raise CliError(describe_refusal(exc, hub)) from exc
    except httpx.HTTPError as exc:
        raise CliError(f"cannot talk to the hub at {hub.url}: {exc}") from exc


def describe_refusal(error: HermesError, hub: Hub) -> str:
    """One line for a failed call: who failed (the network, the hub, the agent) and why."""
    if error.status == NO_RESPONSE_STATUS:
        cause = error.__cause__
        reason = (str(cause) or type(cause).__name__) if cause is not None else error.detail
        line = f"cannot reach the hub at {hub.url}: {reason}"
    elif isinstance(error, AgentUnavailable):
        line = f"the agent is unavailable: {error}"
    elif error.status >= 500:
        line = f"the hub failed: {error}"
    else:
        line = f"the hub refused: {error}"
        if isinstance(error, AuthenticationError) and hub.unauthorized_hint:
            line = f"{line}; {hub.unauthorized_hint}"
    # Details are sentences from the hub; a stray newline must not break the one-line promise.
    return " ".join(line.split())


# ---- option values ----


def parse_credits(text: str, *, option: str) -> Decimal:
    """An amount of credits as typed; the hub checks the precision and the limits."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation as exc:
        raise CliError(f"{option} must be an amount of credits, e.g. 12.50 (got {text!r})") from exc
    if not amount.is_finite() or amount < 0:
        raise CliError(f"{option} must be a positive amount of credits (got {text!r})")
    return amount


def parse_json(text: str, *, option: str) -> Any:
    """JSON given inline, or ``@path`` to read it from a file."""
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{option}: cannot read {path}: {exc.strerror or exc}") from exc
        origin = str(path)
    else:
        origin = "the value"
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{option}: {origin} is not valid JSON: {exc}") from exc


def parse_json_object(text: str, *, option: str) -> dict[str, Any]:
    value = parse_json(text, option=option)
    if not isinstance(value, dict):
        raise CliError(f'{option} must be a JSON object, like \'{{"key": "value"}}\'')
    return value
