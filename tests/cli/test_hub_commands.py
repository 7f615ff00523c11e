"""``hermes login|token|agent|contract|wallet|init``: the commands that talk to a hub.

They run in-process against one live hub per module (``hermes serve`` on SQLite); the
one-line form of a failure is checked on the real console script in a subprocess, since only
``main()`` turns errors into that line. Every test keeps its login in its own config folder.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import stat
import tomllib
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import Result

from hermes_hub.cli.output import CliError
from hermes_hub.sdk import Agent, Bid, Contract
from tests.cli.conftest import (
    CliRunnerInvoke,
    LiveHub,
    assert_one_line_error,
    run_hermes,
    serve_hub,
)
from tests.conftest import GENEROUS_LIMIT
from tests.factories import PASSWORD


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """A hub serving with rate limits these tests cannot reach: they register and log in
    more users in a few seconds than the defaults (10 registrations an hour) allow."""
    yield from serve_hub(
        tmp_path_factory.mktemp("hub-commands"),
        HERMES_RATE_LIMIT_LOGIN=GENEROUS_LIMIT,
        HERMES_RATE_LIMIT_REGISTER=GENEROUS_LIMIT,
        HERMES_RATE_LIMIT_ENROLL=GENEROUS_LIMIT,
    )


@pytest.fixture
def config_dir(cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where ``hermes login`` keeps credentials for this test (not created)."""
    path = tmp_path / "config"
    monkeypatch.setenv("HERMES_CONFIG_DIR", str(path))
    return path


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _register(hub: LiveHub, email: str) -> str:
    """A new user on the hub; returns an access token (for the tests that pass --token)."""
    with httpx.Client(base_url=hub.url, timeout=10) as http:
        registered = http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        logged_in = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert logged_in.status_code == 200, logged_in.text
        return str(logged_in.json()["access_token"])


def _ok(result: Result) -> Any:
    """The JSON a successful ``--json`` run printed."""
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def _refused(result: Result) -> str:
    """The message of an in-process run that failed the way ``main()`` reports in one line."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, CliError), result.exception
    return str(result.exception)


def _login(cli: CliRunnerInvoke, hub: LiveHub, email: str) -> dict[str, Any]:
    result = cli(
        "login", "--hub", hub.url, "--email", email, "--password-stdin", "--json",
        stdin=f"{PASSWORD}\n",
    )  # fmt: skip
    body: dict[str, Any] = _ok(result)
    return body


def _enroll(
    cli: CliRunnerInvoke, tmp_path: Path, *extra: str, name: str, capability: str
) -> dict[str, Any]:
    key = tmp_path / f"{uuid.uuid4().hex}.pem"
    assert cli("keys", "generate", "--out", str(key)).exit_code == 0
    command = ["agent", "enroll", "--name", name, "--key", str(key), "-c", capability, *extra]
    enrolled: dict[str, Any] = _ok(cli(*command, "--json"))
    return enrolled


def _grant(cli: CliRunnerInvoke, hub: LiveHub, email: str, amount: str) -> None:
    # Straight to the hub's database, as an operator would (HERMES_DATA_DIR of the live hub).
    granted = cli("ledger", "grant", email, amount, "--reason", "test credits", env=hub.env)
    assert granted.exit_code == 0, granted.output


def _subprocess_env(hub: LiveHub, config_dir: Path) -> dict[str, str]:
    return {**hub.env, "HERMES_CONFIG_DIR": str(config_dir)}


# --- login ---------------------------------------------------------------------------------


def test_login_stores_credentials_0600_and_later_commands_use_them(
    cli: CliRunnerInvoke, live_hub: LiveHub, config_dir: Path
) -> None:
    email = f"{_unique('login')}@example.com"
    _register(live_hub, email)

    shown = _login(cli, live_hub, email)
    path = config_dir / "credentials.json"
    assert shown["credentials_file"] == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())
    assert set(stored) == {"hub", "email", "access_token"}
    assert stored["hub"] == live_hub.url
    assert stored["email"] == email
    assert PASSWORD not in path.read_text()

    # No --hub and no --token from here on: both come from the stored login.
    wallet = _ok(cli("wallet", "balance", "--json"))
    assert wallet["available_units"] == 0
    assert _ok(cli("agent", "list", "--json"))["total"] == 0
    assert _ok(cli("token", "--json"))["access_token"] == stored["access_token"]
    printed = cli("token")
    assert printed.stdout.strip() == stored["access_token"]


def test_login_prompts_for_email_and_hidden_password(
    cli: CliRunnerInvoke, live_hub: LiveHub, config_dir: Path
) -> None:
    email = f"{_unique('prompted')}@example.com"
    _register(live_hub, email)

    result = cli("login", "--hub", live_hub.url, stdin=f"{email}\n{PASSWORD}\n")
    assert result.exit_code == 0, (result.output, result.exception)
    assert PASSWORD not in result.output
    assert f"logged in to {live_hub.url} as {email}" in result.stdout
    assert json.loads((config_dir / "credentials.json").read_text())["email"] == email


def test_refused_logins_are_one_line_errors(live_hub: LiveHub, config_dir: Path) -> None:
    email = f"{_unique('stale')}@example.com"
    _register(live_hub, email)
    env = _subprocess_env(live_hub, config_dir)

    wrong = run_hermes(
        "login", "--hub", live_hub.url, "--email", email, "--password-stdin",
        env=env, stdin="not the password\n",
    )  # fmt: skip
    assert "the hub refused" in assert_one_line_error(wrong)
    assert not (config_dir / "credentials.json").exists()

    config_dir.mkdir()
    (config_dir / "credentials.json").write_text(
        json.dumps({"hub": live_hub.url, "email": email, "access_token": "expired.or.revoked"})
    )
    line = assert_one_line_error(run_hermes("wallet", "balance", env=env))
    assert "(401 " in line
    assert "run 'hermes login' again" in line


def test_a_stored_login_is_never_sent_to_another_hub(
    cli: CliRunnerInvoke, live_hub: LiveHub, config_dir: Path
) -> None:
    email = f"{_unique('scoped')}@example.com"
    _register(live_hub, email)
    _login(cli, live_hub, email)
    # The same server under another name is another hub as far as the login knows.
    elsewhere = live_hub.url.replace("127.0.0.1", "localhost")

    message = _refused(cli("wallet", "balance", "--hub", elsewhere))
    assert "(401 " in message
    assert f"hermes login --hub {elsewhere}" in message


# --- agents --------------------------------------------------------------------------------


def test_agent_enroll_list_info_search(
    cli: CliRunnerInvoke, live_hub: LiveHub, config_dir: Path, tmp_path: Path
) -> None:
    email = f"{_unique('owner')}@example.com"
    _register(live_hub, email)
    _login(cli, live_hub, email)
    capability = _unique("limerick")

    enrolled = _enroll(
        cli, tmp_path, "--price", "2.5", "--description", "Writes limericks on demand.",
        name="Limerick Smith", capability=capability,
    )  # fmt: skip
    agent_id = enrolled["agent_id"]
    assert enrolled["api_key"]

    listed = _ok(cli("agent", "list", "--json"))
    assert [agent["id"] for agent in listed["items"]] == [agent_id]
    assert "Limerick Smith" in cli("agent", "list").stdout
    as_itself = _ok(cli("agent", "list", "--api-key", enrolled["api_key"], "--json"))
    assert [agent["id"] for agent in as_itself["items"]] == [agent_id]

    info = _ok(cli("agent", "info", agent_id, "--json"))
    assert info["name"] == "Limerick Smith"
    assert info["capabilities"] == [capability]
    assert info["pricing"]["base_price"] == 2.5
    human = cli("agent", "info", agent_id).stdout
    assert "Limerick Smith" in human
    assert "2.5 CRD" in human

    found = _ok(cli("agent", "search", f"someone for {capability}", "--json"))
    assert agent_id in [agent["id"] for agent in found["results"]]
    assert agent_id in cli("agent", "search", f"someone for {capability}").stdout


def test_agent_call_without_an_endpoint_is_a_one_line_409(
    cli: CliRunnerInvoke, live_hub: LiveHub, config_dir: Path, tmp_path: Path
) -> None:
    token = _register(live_hub, f"{_unique('caller')}@example.com")
    agent = _enroll(cli, tmp_path, "--hub", live_hub.url, "--token", token,
                    name="No Endpoint", capability="echo")  # fmt: skip

    completed = run_hermes(
        "agent", "call", agent["agent_id"], "say hi", "--context", '{"lang": "fr"}',
        "--hub", live_hub.url, "--token", token,
        env=_subprocess_env(live_hub, config_dir),
    )  # fmt: skip
    line = assert_one_line_error(completed)
    assert "the hub refused" in line
    assert "(409 no_endpoint)" in line
    assert completed.stdout == ""


def test_an_unknown_agent_is_a_one_line_404(live_hub: LiveHub, config_dir: Path) -> None:
    token = _register(live_hub, f"{_unique('lost')}@example.com")
    completed = run_hermes(
        "agent", "info", str(uuid.uuid4()), "--hub", live_hub.url, "--token", token,
        env=_subprocess_env(live_hub, config_dir),
    )  # fmt: skip
    line = assert_one_line_error(completed)
    assert line.startswith("error: the hub refused: ")
    assert "(404 " in line


def test_missing_credentials_and_bad_values_are_refused_before_calling(
    cli: CliRunnerInvoke, config_dir: Path, tmp_path: Path
) -> None:
    unreachable = "http://127.0.0.1:1"
    bid = cli("contract", "bid", "c1", "--price", "1", "--eta", "5", "--confidence", "0.5")
    assert "--api-key" in _refused(bid)
    key = tmp_path / "agent.pem"
    assert cli("keys", "generate", "--out", str(key)).exit_code == 0
    enroll = cli("agent", "enroll", "--name", "x", "--key", str(key), "--hub", unreachable)
    assert "hermes login --hub" in _refused(enroll)
    deliver = cli("contract", "deliver", "c1", "--result", "{nope", "--api-key", "k")
    assert "not valid JSON" in _refused(deliver)
    create = cli(
        "contract", "create", "--intent", "x", "--capability", "x", "--reward", "lots",
        "--hub", unreachable,
    )  # fmt: skip
    assert "--reward" in _refused(create)
    assert "not a hub URL" in _refused(cli("wallet", "balance", "--hub", "nowhere"))
    offline = _refused(cli("wallet", "balance", "--hub", unreachable))
    assert offline.startswith(f"cannot reach the hub at {unreachable}")


# --- contracts and wallets -----------------------------------------------------------------


def test_contract_flow_create_bid_award_deliver_settle(
    cli: CliRunnerInvoke, live_hub: LiveHub, config_dir: Path, tmp_path: Path
) -> None:
    capability = _unique("translate")
    owner_token = _register(live_hub, f"{_unique('worker')}@example.com")
    agent = _enroll(cli, tmp_path, "--hub", live_hub.url, "--token", owner_token,
                    name="Translator", capability=capability)  # fmt: skip
    api_key = agent["api_key"]

    requester = f"{_unique('requester')}@example.com"
    _register(live_hub, requester)
    _login(cli, live_hub, requester)
    _grant(cli, live_hub, requester, "50")

    created = _ok(
        cli(
            "contract", "create", "--intent", "Translate 'hello' into French",
            "--capability", capability, "--reward", "5", "--max-price", "4",
            "--bidding-seconds", "600", "--json",
        )
    )  # fmt: skip
    contract_id = created["id"]
    assert created["status"] == "bidding"
    assert created["held"] == 4

    placed = _ok(
        cli(
            "contract", "bid", contract_id, "--price", "3", "--eta", "60", "--confidence", "0.9",
            "--api-key", api_key, "--json",
        )
    )  # fmt: skip
    assert placed["agent_id"] == agent["agent_id"]
    assert placed["price"] == 3

    mine = _ok(cli("contract", "list", "--mine", "--json"))
    assert [item["id"] for item in mine["items"]] == [contract_id]
    shown = _ok(cli("contract", "show", contract_id, "--json"))
    assert shown["bid_count"] == 1
    assert [bid["id"] for bid in shown["bids"]] == [placed["id"]]
    human = cli("contract", "show", contract_id).stdout
    assert placed["id"] in human
    assert "Translate 'hello' into French" in human

    awarded = _ok(cli("contract", "award", contract_id, "--bid", placed["id"], "--json"))
    assert awarded["winner"]["bid_id"] == placed["id"]
    assert awarded["contract"]["status"] == "awarded"

    result_file = tmp_path / "result.json"
    result_file.write_text(json.dumps({"text": "bonjour"}))
    delivered = _ok(
        cli("contract", "deliver", contract_id, "--result", f"@{result_file}",
            "--api-key", api_key, "--json")
    )  # fmt: skip
    assert delivered["status"] == "delivered"
    assert delivered["delivery"]["data"] == {"text": "bonjour"}

    settled = _ok(
        cli("contract", "settle", contract_id, "--score", "0.9", "--rating", "5", "--json")
    )
    assert settled["status"] == "settled"
    assert settled["rating"] == 5
    agent_share = Decimal(str(settled["settlement"]["agent_share"]))
    assert agent_share > 0

    # The requester paid what the score released of the price (never more than the 3 bid),
    # the rest of the hold came back; the agent earned its share of it.
    released = settled["settlement"]["units"]["released"]
    assert 0 < released <= 300
    wallet = _ok(cli("wallet", "balance", "--json"))
    assert wallet["available_units"] == 5000 - released
    assert wallet["held_units"] == 0
    earnings = _ok(cli("wallet", "balance", "--api-key", api_key, "--json"))
    assert Decimal(str(earnings["available"])) == agent_share

    statement = _ok(cli("wallet", "transactions", "--json"))
    kinds = {line["kind"] for line in statement["items"]}
    assert {"grant", "escrow_hold", "escrow_release"} <= kinds
    grants = _ok(cli("wallet", "transactions", "--kind", "grant", "--json"))
    assert [line["kind"] for line in grants["items"]] == ["grant"]
    assert "grant" in cli("wallet", "transactions", "--limit", "5").stdout
    assert f"available {wallet['available']:.2f} CRD" in cli("wallet", "balance").stdout
    assert "settled" in cli("contract", "list", "--status", "settled").stdout


# --- init ----------------------------------------------------------------------------------


def _import(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"generated_{uuid.uuid4().hex}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_init_creates_a_project_whose_agent_imports_and_works(
    cli: CliRunnerInvoke, tmp_path: Path
) -> None:
    target = tmp_path / "projects" / "echo"
    made = _ok(cli("init", "Echo Bot", "--dir", str(target), "--port", "9200", "--json"))
    assert made["files"] == [".gitignore", "README.md", "agent.py", "pyproject.toml"]
    assert sorted(path.name for path in target.iterdir()) == made["files"]

    assert ".hermes/" in (target / ".gitignore").read_text().splitlines()
    project = tomllib.loads((target / "pyproject.toml").read_text())["project"]
    assert project["name"] == "echo-bot"
    assert any(dependency.startswith("hermes-hub") for dependency in project["dependencies"])
    readme = (target / "README.md").read_text()
    assert [line[:3] for line in readme.splitlines() if line[:1].isdigit()] == ["1. ", "2. ", "3. "]
    assert "python agent.py" in readme

    module = _import(target / "agent.py")
    agent_class = getattr(module, made["class_name"])
    assert issubclass(agent_class, Agent)
    agent = agent_class()
    assert agent.name == "Echo Bot"
    assert agent.capabilities == ["echo"]
    contract = Contract(id="c1", intent="say hi", capability="echo", reward=Decimal("1"))
    offer = asyncio.run(agent.bid(contract))
    assert isinstance(offer, Bid)
    assert Decimal(str(offer.price)) == Decimal("1")
    assert asyncio.run(agent.perform(contract)) == {"text": "SAY HI"}
    assert "port=9200" in (target / "agent.py").read_text()


def test_init_names_the_folder_after_the_agent_and_accepts_an_empty_one(
    cli: CliRunnerInvoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli("init", "My Écho Bot!").exit_code == 0
    assert (tmp_path / "my-echo-bot" / "agent.py").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("init", "Other", "--dir", str(empty)).exit_code == 0
    assert (empty / "agent.py").is_file()


def test_init_refuses_a_folder_that_is_not_empty(tmp_path: Path, cli_env: dict[str, str]) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "agent.py").write_text("mine = True\n")

    completed = run_hermes("init", "Echo", "--dir", str(target), env=cli_env)
    line = assert_one_line_error(completed)
    assert "not empty" in line
    assert str(target) in line
    assert sorted(path.name for path in target.iterdir()) == ["agent.py"]
    assert (target / "agent.py").read_text() == "mine = True\n"
