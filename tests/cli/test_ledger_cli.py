"""``hermes ledger check|grant|expire-holds`` and ``hermes wallet balance``."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from hermes_hub.db import migrate
from tests.cli.conftest import (
    CliRunnerInvoke,
    LiveHub,
    assert_one_line_error,
    clean_environ,
    run_hermes,
)
from tests.factories import PASSWORD

ADMIN_EMAIL = "ledger-admin@example.com"


def _create_user(cli: CliRunnerInvoke, email: str = ADMIN_EMAIL) -> None:
    created = cli("admin", "create", "--email", email, env={"HERMES_ADMIN_PASSWORD": PASSWORD})
    assert created.exit_code == 0, created.output


def test_grant_then_check_passes(cli: CliRunnerInvoke, migrated_sqlite: Path) -> None:
    _create_user(cli)
    granted = cli("ledger", "grant", ADMIN_EMAIL, "12.50", "--reason", "opening balance", "--json")
    assert granted.exit_code == 0, granted.output
    body = json.loads(granted.stdout)
    assert body["amount"] == "12.50"
    assert body["available"] == "12.50"

    checked = cli("ledger", "check", "--json")
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert report["ok"] is True
    assert report["transfers"] == 1
    assert report["totals"]["CRD"] == {"net_posted": 0, "net_pending": 0, "credits_posted": 1250}
    human = cli("ledger", "check")
    assert "ledger OK" in human.stdout


def test_check_reports_a_tampered_balance_and_exits_2(
    cli: CliRunnerInvoke, migrated_sqlite: Path
) -> None:
    _create_user(cli)
    assert cli("ledger", "grant", ADMIN_EMAIL, "5", "--reason", "seed").exit_code == 0
    with closing(sqlite3.connect(migrated_sqlite)) as connection:
        connection.execute(
            "UPDATE ledger_accounts SET credits_posted = credits_posted + 100 "
            "WHERE kind = 'user_wallet'"
        )
        connection.commit()
    checked = cli("ledger", "check")
    assert checked.exit_code == 2, checked.output
    assert "ledger BROKEN" in checked.stdout
    assert "the journal gives" in checked.stdout
    assert "posted balances sum to 100" in checked.stdout


def test_the_journal_refuses_updates_and_deletes(
    cli: CliRunnerInvoke, migrated_sqlite: Path
) -> None:
    _create_user(cli)
    assert cli("ledger", "grant", ADMIN_EMAIL, "5", "--reason", "seed").exit_code == 0
    with closing(sqlite3.connect(migrated_sqlite)) as connection:
        for statement in (
            "UPDATE ledger_transfers SET amount = 1",
            "DELETE FROM ledger_transfers",
            "DELETE FROM ledger_audit_log",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                connection.execute(statement)
    assert cli("ledger", "check").exit_code == 0


def test_grant_mistakes_are_one_line_errors(migrated_sqlite: Path, data_dir: Path) -> None:
    env = clean_environ(data_dir)
    for args in (
        ("nobody@example.com", "5", "--reason", "ghost"),
        (ADMIN_EMAIL, "1.001", "--reason", "too precise"),
        ("--reason", "negative", "--", ADMIN_EMAIL, "-3"),
        (ADMIN_EMAIL, "abc", "--reason", "not a number"),
        (ADMIN_EMAIL, "5", "--reason", "x"),
    ):
        assert_one_line_error(run_hermes("ledger", "grant", *args, env=env))


def test_check_on_postgres(cli: CliRunnerInvoke, postgres_scratch_url: str) -> None:
    migrate.upgrade(postgres_scratch_url)
    env = {"HERMES_DATABASE_URL": postgres_scratch_url}
    created = cli(
        "admin", "create", "--email", ADMIN_EMAIL, env={**env, "HERMES_ADMIN_PASSWORD": PASSWORD}
    )
    assert created.exit_code == 0, created.output
    assert cli("ledger", "grant", ADMIN_EMAIL, "3", "--reason", "seed", env=env).exit_code == 0
    checked = cli("ledger", "check", "--json", env=env)
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["transfers"] == 1
    expired = cli("ledger", "expire-holds", "--json", env=env)
    assert json.loads(expired.stdout) == {"refunded": []}


def test_wallet_balance_against_live_server(cli: CliRunnerInvoke, live_hub: LiveHub) -> None:
    email = "wallet-cli@example.com"
    with httpx.Client(base_url=live_hub.url, timeout=10) as http:
        assert (
            http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        ).status_code == 201
        token = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()[
            "access_token"
        ]
    granted = run_hermes("ledger", "grant", email, "7.25", "--reason", "cli test", env=live_hub.env)
    assert granted.returncode == 0, granted.stderr
    shown = cli("wallet", "balance", "--hub", live_hub.url, "--token", token)
    assert shown.exit_code == 0, shown.output
    assert "available 7.25 CRD" in shown.stdout
    as_json = cli("wallet", "balance", "--hub", live_hub.url, "--token", token, "--json")
    assert json.loads(as_json.stdout)["available_units"] == 725
    refused = run_hermes(
        "wallet", "balance", "--hub", live_hub.url, "--token", "nope", env=live_hub.env
    )
    assert "the hub refused" in assert_one_line_error(refused)
