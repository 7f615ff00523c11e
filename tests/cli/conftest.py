"""Fixtures for the ``hermes`` command: controlled environments, subprocess runs, a live hub.

In-process runs go through ``typer.testing.CliRunner``; anything that checks how a failure is
reported (one ``error:`` line, exit status 1, no traceback) runs the real console script in a
subprocess, because only ``main()`` turns exceptions into that one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner, Result

from hermes_hub.app import create_app
from hermes_hub.cli.main import app as cli_app
from hermes_hub.config import Settings
from tests.conftest import GENEROUS_LIMIT, TEST_SECRET, libpq_url, scratch_postgres_database

SUBPROCESS_TIMEOUT = 60
SERVER_START_TIMEOUT = 20.0

# Variables that change how rich renders (colour, width) or which port the hub picks; the
# tests run the CLI as it runs under a service manager: no terminal, no overrides.
_DROPPED_VARIABLES = (
    "COLUMNS",
    "LINES",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "PORT",
)


def hermes_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m hermes_hub``."""
    script = Path(sys.executable).with_name("hermes")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "hermes_hub"]


def clean_environ(data_dir: Path, **extra: str) -> dict[str, str]:
    """A copy of ``os.environ`` without any ``HERMES_*`` variable, pointed at ``data_dir``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HERMES_") and name not in _DROPPED_VARIABLES
    }
    env["HERMES_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def run_hermes(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = SUBPROCESS_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed executable, argument list, no shell
        [*hermes_command(), *args],
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(completed: subprocess.CompletedProcess[str]) -> str:
    """Exit status 1, exactly one stderr line starting with ``error:``, no traceback."""
    assert completed.returncode == 1, (completed.returncode, completed.stdout, completed.stderr)
    assert "Traceback" not in completed.stderr, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: "), completed.stderr
    return lines[0]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sqlite_emails(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return {row[0] for row in connection.execute("SELECT email FROM users")}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hub_settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        secret_key=TEST_SECRET,
        public_url="http://testserver",
        log_level="warning",
        rate_limit_key_prefix=f"clitest-{uuid.uuid4().hex}",
        rate_limit_default=GENEROUS_LIMIT,
        rate_limit_login=GENEROUS_LIMIT,
        rate_limit_register=GENEROUS_LIMIT,
        rate_limit_enroll=GENEROUS_LIMIT,
    )


@contextlib.asynccontextmanager
async def hub_client(database_url: str, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The hub app on ``database_url``, served in-process; the engine is disposed on exit."""
    application = create_app(hub_settings(database_url, data_dir))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> dict[str, str]:
    """Make this process's environment look like ``clean_environ``; return that mapping."""
    for name in list(os.environ):
        if name.startswith("HERMES_") or name in _DROPPED_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HERMES_DATA_DIR", str(data_dir))
    return clean_environ(data_dir)


@pytest.fixture
def sqlite_db(data_dir: Path) -> Path:
    """Where the hub keeps its SQLite database under ``data_dir`` (not created)."""
    return data_dir / "hermes.db"


@pytest.fixture
def migrated_sqlite(sqlite_db: Path, sqlite_template: Path, cli_env: dict[str, str]) -> Path:
    """A migrated, empty SQLite database at the default location under ``HERMES_DATA_DIR``."""
    shutil.copyfile(sqlite_template, sqlite_db)
    return sqlite_db


@pytest.fixture
def sqlite_url(sqlite_db: Path) -> str:
    return f"sqlite+aiosqlite:///{sqlite_db}"


@pytest.fixture
def cli(cli_env: dict[str, str]) -> CliRunnerInvoke:
    """In-process runs see the same cleaned environment as subprocesses."""
    return CliRunnerInvoke(CliRunner())


class CliRunnerInvoke:
    """``cli("keys", "public", ...)`` runs the Typer app in-process and returns the result."""

    def __init__(self, runner: CliRunner) -> None:
        self.runner = runner

    def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        return self.runner.invoke(cli_app, list(args), input=stdin, env=env, catch_exceptions=True)


@pytest.fixture
def postgres_scratch_url() -> Iterator[str]:
    """An empty PostgreSQL database ``hermes_clitest_*`` (unmigrated), dropped afterwards."""
    with scratch_postgres_database("hermes_clitest") as url:
        yield url


async def postgres_emails(url: str) -> set[str]:
    connection = await asyncpg.connect(libpq_url(url))
    try:
        return {row["email"] for row in await connection.fetch("SELECT email FROM users")}
    finally:
        await connection.close()


@dataclass
class LiveHub:
    url: str
    process: subprocess.Popen[bytes]
    stderr_path: Path
    env: dict[str, str]
    data_dir: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, stderr_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"'hermes serve' exited with {process.returncode}: "
                    f"{stderr_path.read_text(errors='replace')}"
                )
            try:
                if http.get(f"{url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail(f"'hermes serve' did not answer /healthz within {SERVER_START_TIMEOUT:.0f} s")


def serve_hub(root: Path, **settings: str) -> Iterator[LiveHub]:
    """``hermes db upgrade`` then ``hermes serve`` on SQLite under ``root``, as a new user
    would run them, with these extra ``HERMES_*`` settings; stopped when the caller is done.
    ``HERMES_PUBLIC_URL`` is the address it is served at, unless given."""
    data_dir = root / "data"
    env = clean_environ(data_dir, **settings)
    upgraded = run_hermes("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env.setdefault("HERMES_PUBLIC_URL", url)
    stdout_path, stderr_path = root / "serve.stdout", root / "serve.stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - fixed executable, argument list, no shell
            [*hermes_command(), "serve", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        _wait_until_healthy(process, url, stderr_path)
        yield LiveHub(url=url, process=process, stderr_path=stderr_path, env=env, data_dir=data_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """A hub serving with the default settings."""
    yield from serve_hub(tmp_path_factory.mktemp("live-hub"))
