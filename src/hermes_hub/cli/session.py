"""``hermes login`` and ``hermes token``: a user's login kept on disk, and how every hub
command picks its hub and its credential.

The credential, first found wins: ``--token``, ``--api-key`` (acting as an agent),
``HERMES_TOKEN``, ``HERMES_API_KEY``, then the stored login, which is only ever sent to the hub
it came from. A flag typed on the command line beats an exported variable, so a shell with
``HERMES_TOKEN`` set can still act as an agent with ``--api-key``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import click
import typer
from click.core import ParameterSource

from hermes_hub.cli.common import DEFAULT_HUB, Hub, HubOption, call, hub_url
from hermes_hub.cli.output import CliError, JsonOption, emit, error_console

CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True)
class StoredLogin:
    hub: str
    email: str
    access_token: str


class Acting(StrEnum):
    """Who a command acts as: the hub decides what each may do, the CLI only which
    credential to send."""

    USER = "user"
    AGENT = "agent"
    ANYONE = "anyone"


def credentials_path() -> Path:
    """``$HERMES_CONFIG_DIR/credentials.json``, else ``~/.config/hermes/credentials.json``
    (``$XDG_CONFIG_HOME`` replaces ``~/.config`` when set)."""
    configured = os.environ.get("HERMES_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser() / CREDENTIALS_FILE
    config_home = os.environ.get("XDG_CONFIG_HOME")
    base = Path(config_home) if config_home else Path.home() / ".config"
    return base / "hermes" / CREDENTIALS_FILE


def read_stored_login() -> StoredLogin | None:
    """The login ``hermes login`` saved, or ``None`` when there is none."""
    path = credentials_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CliError(f"cannot read your login from {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
        fields = {name: data[name] for name in ("hub", "email", "access_token")}
    except (ValueError, KeyError, TypeError) as exc:
        raise CliError(f"{path} is not a login saved by 'hermes login': run it again") from exc
    if not all(isinstance(value, str) and value for value in fields.values()):
        raise CliError(f"{path} is not a login saved by 'hermes login': run it again")
    return StoredLogin(**fields)


def save_login(login: StoredLogin) -> Path:
    """Write the login readable by its owner only (0600, in a 0700 folder). The file is
    written beside its final name and renamed over it, so a crash never leaves half a token
    and the token is never, even briefly, in a file others may read."""
    path = credentials_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(asdict(login), file, indent=2)
                file.write("\n")
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise CliError(f"cannot save your login to {path}: {exc.strerror or exc}") from exc
    return path


def _default_hub(stored: StoredLogin | None) -> str:
    if stored is not None:
        return stored.hub
    from_environment = os.environ.get("HERMES_HUB") or os.environ.get("HERMES_HUB_URL")
    return hub_url(from_environment) if from_environment else DEFAULT_HUB


def _typed(parameter: str) -> bool:
    """Whether the option was typed (rather than read from its environment variable)."""
    context = click.get_current_context(silent=True)
    if context is None:
        return True
    return context.get_parameter_source(parameter) is not ParameterSource.ENVIRONMENT


def _login_command(explicit_hub: str | None) -> str:
    return f"hermes login --hub {explicit_hub}" if explicit_hub else "hermes login"


@dataclass(frozen=True)
class _Credential:
    token: str | None
    api_key: str | None
    unauthorized_hint: str


def _given_credential(token: str | None, api_key: str | None, login: str) -> _Credential | None:
    """The credential passed as an option or a variable, if any."""
    token_typed = token is not None and _typed("token")
    key_typed = api_key is not None and _typed("api_key")
    if token and (token_typed or not key_typed):
        hint = (
            f"pass a fresh --token, or drop it and run '{login}'"
            if token_typed
            else f"run '{login}' again, then export a fresh HERMES_TOKEN or unset it"
        )
        return _Credential(token=token, api_key=None, unauthorized_hint=hint)
    if api_key:
        return _Credential(
            token=None,
            api_key=api_key,
            unauthorized_hint="check the agent's API key (--api-key or HERMES_API_KEY)",
        )
    return None


def connect(
    hub: str | None,
    *,
    token: str | None = None,
    api_key: str | None = None,
    acting: Acting = Acting.ANYONE,
) -> Hub:
    """The hub (``--hub``, else the stored login's, else ``HERMES_HUB``, else the local
    default) and the credential to send it, for a command acting as ``acting``."""
    login = _login_command(hub)
    if acting is Acting.AGENT:
        if not api_key:
            raise CliError("this command acts as an agent: pass --api-key or set HERMES_API_KEY")
        given = _given_credential(None, api_key, login)
    else:
        given = _given_credential(token, api_key if acting is Acting.ANYONE else None, login)
    stored = read_stored_login() if hub is None or given is None else None
    url = hub_url(hub) if hub else _default_hub(stored)
    if given is not None:
        return Hub(
            url=url,
            token=given.token,
            api_key=given.api_key,
            unauthorized_hint=given.unauthorized_hint,
        )
    # A stored token is only good for the hub that issued it; never send it elsewhere.
    if stored is not None and stored.hub == url:
        return Hub(url=url, token=stored.access_token, unauthorized_hint=f"run '{login}' again")
    if acting is Acting.USER:
        raise CliError(f"this command needs you logged in to {url}: run '{login}' or pass --token")
    return Hub(url=url, unauthorized_hint=f"run '{login}' first, or pass --token or --api-key")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = str(typer.prompt("Password", hide_input=True))
    if not password:
        raise CliError("no password given")
    return password


def login(
    hub: str | None = HubOption,
    email: str | None = typer.Option(None, "--email", help="Omit to be prompted."),
    password_stdin: bool = typer.Option(
        False,
        "--password-stdin",
        help="Read the password from the first line of standard input (for scripts).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Log in to a hub; later commands use this login (the password is never stored)."""
    try:
        stored = read_stored_login()
    except CliError:
        # A damaged file is about to be replaced; it only loses its say in the defaults.
        stored = None
    url = hub_url(hub) if hub else _default_hub(stored)
    if email is None:
        if password_stdin:
            raise CliError("--password-stdin needs --email (standard input holds the password)")
        known = stored.email if stored is not None and stored.hub == url else None
        email = str(typer.prompt("Email", default=known))
    email = email.strip()
    password = _read_password(password_stdin)

    granted = call(
        Hub(url=url),
        lambda client: client.login(email, password),
        activity=f"Logging in to {url}",
    )
    path = save_login(StoredLogin(hub=url, email=email, access_token=str(granted["access_token"])))
    if os.environ.get("HERMES_TOKEN") or os.environ.get("HERMES_API_KEY"):
        error_console.print(
            "note: HERMES_TOKEN or HERMES_API_KEY is set in this shell and goes before this login"
        )
    emit(
        {
            "hub": url,
            "email": email,
            "credentials_file": str(path),
            "expires_in": granted.get("expires_in"),
        },
        as_json=as_json,
        human=f"logged in to {url} as {email} (saved in {path})",
    )


def token(as_json: bool = JsonOption) -> None:
    """Print the stored login's access token: export HERMES_TOKEN="$(hermes token)"."""
    stored = read_stored_login()
    if stored is None:
        raise CliError("not logged in: run 'hermes login' first")
    emit(asdict(stored), as_json=as_json, human=stored.access_token)
