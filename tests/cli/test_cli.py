"""The ``hermes`` command: version, db, admin, keys, serve and agents enroll."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hermes_hub import __version__
from hermes_hub.db import migrate
from hermes_hub.sdk.keys import load_private_key, public_key_b64
from tests.cli.conftest import (
    CliRunnerInvoke,
    LiveHub,
    assert_one_line_error,
    clean_environ,
    file_digest,
    hub_client,
    run_hermes,
    sqlite_emails,
)
from tests.factories import PASSWORD, login

ADMIN_EMAIL = "root@example.com"


def _tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}


def _strict_b64(text: str) -> bytes:
    """Decode base64 that must be one unbroken token, as a user would copy it."""
    assert not re.search(r"\s", text), f"not one token: {text!r}"
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        pytest.fail(f"not base64: {text!r} ({exc})")


# --- version ------------------------------------------------------------------------------


def test_version_human(cli: CliRunnerInvoke) -> None:
    result = cli("version")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"hermes-hub {__version__}"


def test_version_json(cli: CliRunnerInvoke) -> None:
    result = cli("version", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"version": __version__}


# --- db -----------------------------------------------------------------------------------


def _current(cli: CliRunnerInvoke) -> dict[str, object]:
    result = cli("db", "current", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    state: dict[str, object] = json.loads(result.stdout)
    return state


def test_db_upgrade_current_downgrade(
    cli: CliRunnerInvoke, cli_env: dict[str, str], sqlite_db: Path
) -> None:
    head = migrate.head_revision()

    before = _current(cli)
    assert before == {"revision": None, "head": head, "is_current": False}

    upgraded = cli("db", "upgrade")
    assert upgraded.exit_code == 0, (upgraded.output, upgraded.exception)
    assert sqlite_db.is_file()
    assert {"users", "agents", "alembic_version"} <= _tables(sqlite_db)
    assert _current(cli) == {"revision": head, "head": head, "is_current": True}

    human = cli("db", "current")
    assert human.exit_code == 0
    assert head in human.stdout
    assert "- current" in human.stdout

    downgraded = cli("db", "downgrade", "base")
    assert downgraded.exit_code == 0, (downgraded.output, downgraded.exception)
    assert _current(cli) == {"revision": None, "head": head, "is_current": False}
    assert "users" not in _tables(sqlite_db)
    assert "(none)" in cli("db", "current").stdout


# --- admin create -------------------------------------------------------------------------


async def _me(database_url: str, data_dir: Path, email: str, password: str) -> dict[str, object]:
    async with hub_client(database_url, data_dir) as http:
        token = await login(http, email, password)
        response = await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body


def test_admin_create_makes_an_admin_who_can_log_in(
    cli: CliRunnerInvoke, migrated_sqlite: Path, sqlite_url: str, data_dir: Path
) -> None:
    result = cli("admin", "create", "--email", ADMIN_EMAIL, "--password", PASSWORD, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    created = json.loads(result.stdout)
    assert created["email"] == ADMIN_EMAIL
    assert created["role"] == "admin"

    me = asyncio.run(_me(sqlite_url, data_dir, ADMIN_EMAIL, PASSWORD))
    assert me["id"] == created["id"]
    assert me["email"] == ADMIN_EMAIL
    assert me["role"] == "admin"


def test_admin_create_duplicate_email_is_one_line_error(
    cli: CliRunnerInvoke, migrated_sqlite: Path, cli_env: dict[str, str]
) -> None:
    first = cli("admin", "create", "--email", ADMIN_EMAIL, "--password", PASSWORD)
    assert first.exit_code == 0, (first.output, first.exception)

    again = run_hermes(
        "admin", "create", "--email", ADMIN_EMAIL.upper(), "--password", PASSWORD, env=cli_env
    )
    line = assert_one_line_error(again)
    assert "already exists" in line
    assert again.stdout == ""
    assert sqlite_emails(migrated_sqlite) == {ADMIN_EMAIL}


def test_admin_create_weak_password_is_refused(
    migrated_sqlite: Path, cli_env: dict[str, str]
) -> None:
    completed = run_hermes(
        "admin", "create", "--email", ADMIN_EMAIL, "--password", "password1234", env=cli_env
    )
    line = assert_one_line_error(completed)
    assert "password" in line.lower()
    assert "guess" in line.lower()
    assert sqlite_emails(migrated_sqlite) == set()


def test_admin_create_reads_password_from_environment(
    cli: CliRunnerInvoke, migrated_sqlite: Path, sqlite_url: str, data_dir: Path
) -> None:
    password = "another correct horse battery staple"
    result = cli(
        "admin", "create", "--email", ADMIN_EMAIL, "--json",
        env={"HERMES_ADMIN_PASSWORD": password},
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.stdout)["role"] == "admin"
    assert asyncio.run(_me(sqlite_url, data_dir, ADMIN_EMAIL, password))["role"] == "admin"


def test_admin_create_prompts_for_the_password_without_echoing_it(
    cli: CliRunnerInvoke, migrated_sqlite: Path
) -> None:
    result = cli("admin", "create", "--email", ADMIN_EMAIL, stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, (result.output, result.exception)
    assert PASSWORD not in result.output
    assert sqlite_emails(migrated_sqlite) == {ADMIN_EMAIL}


# --- keys ---------------------------------------------------------------------------------


def _generate(cli: CliRunnerInvoke, path: Path) -> str:
    result = cli("keys", "generate", "--out", str(path), "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    body = json.loads(result.stdout)
    assert body["private_key_file"] == str(path)
    return str(body["public_key"])


def test_keys_generate_writes_private_file_and_prints_public_key(
    cli: CliRunnerInvoke, tmp_path: Path
) -> None:
    path = tmp_path / "agent.pem"
    public = _generate(cli, path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(_strict_b64(public)) == 32
    assert public_key_b64(load_private_key(path)) == public


def test_keys_generate_refuses_to_overwrite(
    cli: CliRunnerInvoke, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    path = tmp_path / "agent.pem"
    _generate(cli, path)
    before = file_digest(path)

    completed = run_hermes("keys", "generate", "--out", str(path), "--json", env=cli_env)
    line = assert_one_line_error(completed)
    assert "already exists" in line
    assert completed.stdout == ""
    assert file_digest(path) == before


def test_keys_public_matches_generated_key(cli: CliRunnerInvoke, tmp_path: Path) -> None:
    path = tmp_path / "agent.pem"
    public = _generate(cli, path)

    human = cli("keys", "public", "--key", str(path))
    assert human.exit_code == 0, (human.output, human.exception)
    assert human.stdout.strip() == public
    as_json = cli("keys", "public", "--key", str(path), "--json")
    assert json.loads(as_json.stdout) == {"public_key": public}


def _verify(public: str, signature: bytes, message: str) -> None:
    key = Ed25519PublicKey.from_public_bytes(_strict_b64(public))
    try:
        key.verify(signature, message.encode("utf-8"))
    except InvalidSignature:
        pytest.fail("the signature does not verify with the generated public key")


def test_keys_sign_json_verifies(cli: CliRunnerInvoke, tmp_path: Path) -> None:
    path = tmp_path / "agent.pem"
    public = _generate(cli, path)
    message = "hermes-enroll:challenge-ünïcode"

    result = cli("keys", "sign", "--key", str(path), message, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    signature = _strict_b64(json.loads(result.stdout)["signature"])
    assert len(signature) == 64
    _verify(public, signature, message)


def test_keys_sign_prints_one_token_that_verifies(
    cli: CliRunnerInvoke, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """What ``SIG=$(hermes keys sign ...)`` captures in a script (no terminal): one token."""
    path = tmp_path / "agent.pem"
    public = _generate(cli, path)
    message = "hermes-enroll:abc"

    completed = run_hermes("keys", "sign", "--key", str(path), message, env=cli_env)
    assert completed.returncode == 0, completed.stderr
    signature = _strict_b64(completed.stdout.removesuffix("\n"))
    _verify(public, signature, message)


def test_keys_rejects_a_file_that_is_not_a_key(tmp_path: Path, cli_env: dict[str, str]) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a key\n")

    for command in (["keys", "public"], ["keys", "sign", "hello"]):
        completed = run_hermes(*command, "--key", str(path), env=cli_env)
        line = assert_one_line_error(completed)
        assert str(path) in line
        assert "key" in line.lower()


def test_keys_generate_reports_the_path_it_wrote(cli: CliRunnerInvoke, tmp_path: Path) -> None:
    """File names are printed verbatim, not interpreted as rich markup."""
    path = tmp_path / "[prod]agent.pem"
    result = cli("keys", "generate", "--out", str(path))
    assert result.exit_code == 0, (result.output, result.exception)
    assert path.is_file()
    assert str(path) in result.stdout.replace("\n", "")


def test_error_with_brackets_in_path_is_still_one_line(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    path = tmp_path / "[" / "]missing.pem"  # the message contains the text "[/]"
    completed = run_hermes("keys", "public", "--key", str(path), env=cli_env)
    line = assert_one_line_error(completed)
    assert str(path) in line


# --- serve: failures before the server starts ----------------------------------------------


def test_serve_database_unreachable(tmp_path: Path) -> None:
    env = clean_environ(
        tmp_path, HERMES_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/nope"
    )
    line = assert_one_line_error(run_hermes("serve", env=env))
    assert "database unreachable" in line
    assert "HERMES_DATABASE_URL" in line


def test_serve_refuses_unmigrated_database(tmp_path: Path) -> None:
    line = assert_one_line_error(run_hermes("serve", env=clean_environ(tmp_path)))
    assert "hermes db upgrade" in line


def test_serve_refuses_unsafe_production_settings(tmp_path: Path) -> None:
    env = clean_environ(
        tmp_path,
        HERMES_ENV="prod",
        HERMES_CORS_ORIGINS="*",
        HERMES_RATE_LIMIT_ENABLED="false",
    )
    line = assert_one_line_error(run_hermes("serve", env=env))
    assert "HERMES_ENV=prod" in line
    for variable in (
        "HERMES_SECRET_KEY",
        "HERMES_PUBLIC_URL",
        "HERMES_CORS_ORIGINS",
        "HERMES_DATABASE_URL",
        "HERMES_REDIS_URL",
        "HERMES_RATE_LIMIT_ENABLED",
    ):
        assert variable in line


def test_serve_rejects_invalid_port(tmp_path: Path) -> None:
    env = clean_environ(tmp_path, HERMES_PORT="abc")
    line = assert_one_line_error(run_hermes("serve", env=env))
    assert "HERMES_PORT" in line
    assert "invalid configuration" in line


# --- serve: the new-user journey against a real server ------------------------------------


def test_serve_answers_health_and_readiness(live_hub: LiveHub) -> None:
    with httpx.Client(base_url=live_hub.url, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


def test_serve_banner_names_url_and_admin_hint(live_hub: LiveHub) -> None:
    banner = " ".join(live_hub.stderr.split())  # wrapping is checked in the next test
    assert live_hub.url in banner
    assert "hermes admin create" in banner
    assert "Traceback" not in banner


def test_serve_banner_lines_are_not_hard_wrapped(live_hub: LiveHub) -> None:
    """Under a service manager stderr is no terminal; the hint must survive copy and paste."""
    lines = live_hub.stderr.splitlines()
    assert any("hermes admin create --email you@example.com" in line for line in lines), lines
    assert any(live_hub.url in line and "database: sqlite" in line for line in lines), lines


def test_agents_enroll_against_live_server(
    cli: CliRunnerInvoke, live_hub: LiveHub, tmp_path: Path
) -> None:
    email = "journey@example.com"
    key_path = tmp_path / "agent.pem"
    with httpx.Client(base_url=live_hub.url, timeout=10) as http:
        registered = http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        logged_in = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert logged_in.status_code == 200, logged_in.text
        token = logged_in.json()["access_token"]

        public = _generate(cli, key_path)

        enrolled = run_hermes(
            "agents", "enroll",
            "--hub", live_hub.url,
            "--token", token,
            "--key", str(key_path),
            "--name", "Journey Agent",
            "--capability", "x",
            "--json",
            env=live_hub.env,
        )  # fmt: skip
        assert enrolled.returncode == 0, (enrolled.stdout, enrolled.stderr)
        result = json.loads(enrolled.stdout)
        assert result["api_key"]

        me = http.get("/api/v1/agents/me", headers={"Authorization": f"Bearer {result['api_key']}"})
        assert me.status_code == 200, me.text
        agent = me.json()
        assert agent["id"] == result["agent_id"]
        assert agent["name"] == "Journey Agent"
        assert agent["capabilities"] == ["x"]
        assert agent["public_key"] == public


def test_agents_enroll_with_bad_token_is_one_line_error(
    cli: CliRunnerInvoke, live_hub: LiveHub, tmp_path: Path
) -> None:
    key_path = tmp_path / "agent.pem"
    _generate(cli, key_path)
    completed = run_hermes(
        "agents", "enroll",
        "--hub", live_hub.url,
        "--token", "not-a-jwt",
        "--key", str(key_path),
        "--name", "Nope",
        env=live_hub.env,
    )  # fmt: skip
    line = assert_one_line_error(completed)
    assert "refused" in line
