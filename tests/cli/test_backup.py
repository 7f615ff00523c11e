"""``hermes backup`` and ``hermes restore`` on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import types
from pathlib import Path
from typing import Any

import pytest

from hermes_hub.ops import backup as backups
from tests.cli.conftest import (
    CliRunnerInvoke,
    assert_one_line_error,
    file_digest,
    hub_client,
    postgres_emails,
    run_hermes,
    sqlite_emails,
)
from tests.factories import PASSWORD, register

FIRST = "first@example.com"
SECOND = "second@example.com"


async def _register(database_url: str, data_dir: Path, email: str) -> None:
    async with hub_client(database_url, data_dir) as http:
        await register(http, email)


async def _login_statuses(database_url: str, data_dir: Path, *emails: str) -> dict[str, int]:
    async with hub_client(database_url, data_dir) as http:
        statuses = {}
        for email in emails:
            response = await http.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            statuses[email] = response.status_code
        return statuses


def _ok(result: Any) -> None:
    assert result.exit_code == 0, (result.output, result.exception)


# --- SQLite -------------------------------------------------------------------------------


def test_sqlite_backup_and_restore_roundtrip(
    cli: CliRunnerInvoke, migrated_sqlite: Path, sqlite_url: str, data_dir: Path, tmp_path: Path
) -> None:
    asyncio.run(_register(sqlite_url, data_dir, FIRST))
    backup_path = tmp_path / "backups" / "hub.db"

    _ok(cli("backup", str(backup_path)))
    assert backup_path.is_file()
    assert not backup_path.with_name("hub.db.partial").exists()
    assert sqlite_emails(backup_path) == {FIRST}

    asyncio.run(_register(sqlite_url, data_dir, SECOND))
    assert sqlite_emails(migrated_sqlite) == {FIRST, SECOND}

    _ok(cli("restore", str(backup_path), "--yes"))
    assert sqlite_emails(migrated_sqlite) == {FIRST}
    statuses = asyncio.run(_login_statuses(sqlite_url, data_dir, FIRST, SECOND))
    assert statuses == {FIRST: 200, SECOND: 401}
    current = cli("db", "current", "--json")
    _ok(current)
    assert json.loads(current.stdout)["is_current"] is True


def test_sqlite_restore_rejects_a_file_that_is_not_a_backup(
    migrated_sqlite: Path, sqlite_url: str, data_dir: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    asyncio.run(_register(sqlite_url, data_dir, FIRST))
    before = file_digest(migrated_sqlite)
    bogus = tmp_path / "notes.bak"
    bogus.write_text("this is not a database\n" * 200)

    completed = run_hermes("restore", str(bogus), "--yes", env=cli_env)
    line = assert_one_line_error(completed)
    assert str(bogus) in line
    assert "not a Hermes Hub SQLite backup" in line
    assert file_digest(migrated_sqlite) == before
    assert sqlite_emails(migrated_sqlite) == {FIRST}


def test_sqlite_restore_rejects_a_sqlite_file_that_is_not_a_hub_backup(
    cli: CliRunnerInvoke, migrated_sqlite: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
        connection.commit()
    before = file_digest(migrated_sqlite)

    result = cli("restore", str(other), "--yes")
    assert result.exit_code == 1
    assert isinstance(result.exception, backups.BackupError)
    assert file_digest(migrated_sqlite) == before


def test_sqlite_restore_asks_and_a_no_changes_nothing(
    cli: CliRunnerInvoke,
    migrated_sqlite: Path,
    sqlite_url: str,
    data_dir: Path,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    asyncio.run(_register(sqlite_url, data_dir, FIRST))
    backup_path = tmp_path / "hub.db"
    _ok(cli("backup", str(backup_path)))
    asyncio.run(_register(sqlite_url, data_dir, SECOND))
    before = file_digest(migrated_sqlite)

    completed = run_hermes("restore", str(backup_path), env=cli_env, stdin="n\n")
    line = assert_one_line_error(completed)
    assert "cancelled" in line
    assert "Replace everything" in completed.stdout
    assert file_digest(migrated_sqlite) == before
    assert sqlite_emails(migrated_sqlite) == {FIRST, SECOND}


def test_sqlite_backup_without_a_database_fails(
    cli: CliRunnerInvoke, cli_env: dict[str, str], sqlite_db: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "hub.db"
    result = cli("backup", str(destination))
    assert result.exit_code == 1
    assert isinstance(result.exception, backups.BackupError)
    assert "nothing to back up" in str(result.exception)
    assert not destination.exists()
    assert not sqlite_db.exists()


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def postgres_hub(
    cli: CliRunnerInvoke,
    cli_env: dict[str, str],
    postgres_scratch_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """A migrated scratch database that the ``hermes`` command points at."""
    monkeypatch.setenv("HERMES_DATABASE_URL", postgres_scratch_url)
    _ok(cli("db", "upgrade"))
    return postgres_scratch_url


def test_postgres_backup_and_restore_roundtrip(
    cli: CliRunnerInvoke, postgres_hub: str, data_dir: Path, tmp_path: Path
) -> None:
    asyncio.run(_register(postgres_hub, data_dir, FIRST))
    backup_path = tmp_path / "hub.dump"

    _ok(cli("backup", str(backup_path)))
    assert backup_path.read_bytes().startswith(b"PGDMP")
    assert not backup_path.with_name("hub.dump.partial").exists()

    asyncio.run(_register(postgres_hub, data_dir, SECOND))
    assert asyncio.run(postgres_emails(postgres_hub)) == {FIRST, SECOND}

    _ok(cli("restore", str(backup_path), "--yes"))
    assert asyncio.run(postgres_emails(postgres_hub)) == {FIRST}
    statuses = asyncio.run(_login_statuses(postgres_hub, data_dir, FIRST, SECOND))
    assert statuses == {FIRST: 200, SECOND: 401}
    current = cli("db", "current", "--json")
    _ok(current)
    assert json.loads(current.stdout)["is_current"] is True


def test_postgres_restore_of_a_non_backup_changes_nothing(
    cli: CliRunnerInvoke, postgres_hub: str, data_dir: Path, tmp_path: Path
) -> None:
    asyncio.run(_register(postgres_hub, data_dir, FIRST))
    bogus = tmp_path / "notes.dump"
    bogus.write_text("this is not a dump\n")

    result = cli("restore", str(bogus), "--yes")
    assert result.exit_code == 1
    assert isinstance(result.exception, backups.BackupError)
    assert "pg_restore failed" in str(result.exception)
    assert asyncio.run(postgres_emails(postgres_hub)) == {FIRST}


def test_postgres_password_stays_off_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Other local users can read any process's arguments (``ps``); secrets must not be there."""
    password = "s3cret-Pa55word-xyz"
    url = f"postgresql+asyncpg://hermes:{password}@db.internal:5432/hermes"
    calls: list[tuple[list[str], dict[str, Any]]] = []

    def fake_run(arguments: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append((list(arguments), kwargs))
        if "--file" in arguments:
            Path(arguments[arguments.index("--file") + 1]).write_bytes(b"PGDMP")
        return subprocess.CompletedProcess(arguments, 0, "", "")

    monkeypatch.setattr(backups, "subprocess", types.SimpleNamespace(run=fake_run))
    monkeypatch.setattr(backups.shutil, "which", lambda name: f"/usr/bin/{name}")
    dump = tmp_path / "hub.dump"

    backups.backup(url, dump)
    backups.restore(url, dump)

    assert [Path(arguments[0]).name for arguments, _ in calls] == ["pg_dump", "pg_restore"]
    for arguments, _ in calls:
        assert not any(password in argument for argument in arguments), arguments
