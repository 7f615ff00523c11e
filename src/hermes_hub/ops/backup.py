"""Backups: SQLite through its online backup API, PostgreSQL through pg_dump/pg_restore."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import URL, make_url


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message says why."""


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(url.database)


def _libpq_url(url: URL) -> str:
    """The URL for pg_dump/pg_restore, without the password (that goes in PGPASSWORD)."""
    # URL.set() treats None as "keep"; URL is a named tuple, so _replace really drops it.
    without_password = url.set(drivername="postgresql")._replace(password=None)
    return without_password.render_as_string(hide_password=False)


def _libpq_environment(url: URL) -> dict[str, str]:
    # A password on the command line is visible to every local user through ps.
    environment = dict(os.environ)
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    return environment


def _require_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} was not found on PATH; install the PostgreSQL client tools")
    return found


def _run(arguments: list[str], url: URL) -> None:
    completed = subprocess.run(  # noqa: S603
        arguments, capture_output=True, text=True, check=False, env=_libpq_environment(url)
    )
    if completed.returncode != 0:
        message = (completed.stderr or completed.stdout).strip().splitlines()
        raise BackupError(
            f"{Path(arguments[0]).name} failed: {message[-1] if message else 'no output'}"
        )


def backup(database_url: str, destination: Path) -> None:
    """Write a consistent copy of the live database to ``destination`` (atomically)."""
    url = make_url(database_url)
    destination = destination.expanduser()
    if destination.is_dir():
        raise BackupError(f"{destination} is a directory; give a file path")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    try:
        if url.get_backend_name() == "sqlite":
            source_path = _sqlite_path(url)
            if not source_path.exists():
                raise BackupError(f"no database at {source_path}; nothing to back up")
            with (
                contextlib.closing(sqlite3.connect(source_path)) as source,
                contextlib.closing(sqlite3.connect(partial)) as target,
            ):
                source.backup(target)
        elif url.get_backend_name() == "postgresql":
            _run(
                [
                    _require_tool("pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    "--file",
                    str(partial),
                    _libpq_url(url),
                ],
                url,
            )
        else:
            raise BackupError(f"backups are not supported for {url.get_backend_name()}")
        os.replace(partial, destination)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def _check_sqlite_backup(path: Path) -> None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a Hermes Hub SQLite backup ({exc})") from exc


def restore(database_url: str, source: Path) -> None:
    """Replace the live database's contents with the backup at ``source``."""
    url = make_url(database_url)
    source = source.expanduser()
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    if url.get_backend_name() == "sqlite":
        _check_sqlite_backup(source)
        target_path = _sqlite_path(url)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        with (
            contextlib.closing(sqlite3.connect(source)) as backup_db,
            contextlib.closing(sqlite3.connect(target_path)) as live,
        ):
            backup_db.backup(live)
    elif url.get_backend_name() == "postgresql":
        _run(
            [
                _require_tool("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                "--dbname",
                _libpq_url(url),
                str(source),
            ],
            url,
        )
    else:
        raise BackupError(f"restores are not supported for {url.get_backend_name()}")
