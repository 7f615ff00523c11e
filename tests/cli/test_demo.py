"""``hermes demo``: each story runs as a user would run it (a subprocess starting its own hub)
and tells what the hub really did; ``--hub`` runs it against a hub already serving."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from hermes_hub.cli.demo.cast import Translator, itinerary
from hermes_hub.cli.demo.local_hub import hub_environment
from hermes_hub.sdk.agent import Contract
from tests.cli.conftest import (
    LiveHub,
    assert_one_line_error,
    clean_environ,
    run_hermes,
    serve_hub,
)
from tests.conftest import GENEROUS_LIMIT

DEMO_TIMEOUT = 180


def run_demo(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_hermes("demo", *args, env=clean_environ(tmp_path), timeout=DEMO_TIMEOUT)


def _row(output: str, label: str, *, after: str = "") -> list[str]:
    """The cells of the first table row starting with ``label`` after the text ``after``."""
    start = output.index(after) if after else 0
    for line in output[start:].splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in:\n{output}")


def test_the_paris_story_is_told_end_to_end(tmp_path: Path) -> None:
    completed = run_demo(tmp_path=tmp_path)
    out = completed.stdout
    assert completed.returncode == 0, (out, completed.stderr)
    assert "Traceback" not in completed.stderr
    # The earlier week: the flaky agent's failures are real failed contracts.
    week = "Trust after the earlier week"
    assert _row(out, "SkyScout", after=week)[1:3] == ["9", "0"]
    assert _row(out, "BudgetHop", after=week)[1:3] == ["3", "2"]
    assert _row(out, "JetSetter", after=week)[1:3] == ["4", "0"]
    # Your weights, as the hub normalized them.
    assert _row(out, "price")[1] == "10%"
    assert _row(out, "trust")[1].startswith("40%")
    # Three bids, then the hub's award by those weights: SkyScout first.
    assert len(re.findall(r"bids \d+\.\d\d credits", out)) == 3
    assert re.search(r"│ 1 │ SkyScout", out), out
    assert "SkyScout wins at 4.50 credits: highest score" in out
    assert "awarded by system:scheduler" in out
    assert "15.00 available, 5.00 held" in out
    assert "0.50 left of the reward is back in your wallet (15.50 available)" in out
    assert "faster than promised!" in out
    assert "London to Paris" in out
    # Settlement: 10% platform fee out of the 4.50 released.
    assert _row(out, "released")[1] == "4.50"
    assert _row(out, "to SkyScout")[1] == "4.05"
    assert _row(out, "platform fee")[1] == "0.45"
    # Trust rises, and the 10th on-time outcome earns the badge.
    change = re.search(
        r"SkyScout's trust: (\d\.\d+) \((\S+)\) -> (\d\.\d+) \((\S+)\), improved!", out
    )
    assert change is not None, out
    assert float(change.group(3)) > float(change.group(1))
    assert "Badge earned: lightning_fast" in out
    # Balances: you paid 4.50 in all; SkyScout earned 4.05 more than after its 9 earlier jobs.
    assert _row(out, "you (available)")[1:] == ["20.00", "15.50"]
    assert _row(out, "you (held)")[1:] == ["0.00", "0.00"]
    assert _row(out, "SkyScout's earnings")[1:] == ["36.45", "40.50"]
    assert _row(out, "BudgetHop's earnings")[1] == _row(out, "BudgetHop's earnings")[2]
    marketplace = out[out.index("SkyScout in the marketplace") :]
    assert "lightning_fast" in marketplace


def test_the_discovery_story_finds_agents_by_meaning(tmp_path: Path) -> None:
    completed = run_demo("discovery", tmp_path=tmp_path)
    out = completed.stdout
    assert completed.returncode == 0, (out, completed.stderr)
    # The first row after each query is the best match.
    firsts = re.findall(r'"([^"]+)"  \(.*?\)\n.*?\n.*?\n.*?\n│ 1 │ (\S+)', out)
    best = dict(firsts)
    assert best["is there a hole in my Flask app an attacker could use?"] == "CodeGuard"
    assert best["get me from Munich to Vienna by rail"] == "RailMate"
    assert best["my thesis needs a careful read for grammar mistakes"] == "Scribe"
    # The price filter leaves out Lingo (1.20) for a paragraph into Spanish.
    assert best["translate a paragraph into Spanish"] == "QuickTranslate"


def test_the_a2a_story_calls_through_the_hub_with_a_stock_client(tmp_path: Path) -> None:
    completed = run_demo("a2a", tmp_path=tmp_path)
    out = completed.stdout
    assert completed.returncode == 0, (out, completed.stderr)
    assert '"Where is the station?" -> où est la gare' in out
    assert "TASK_STATE_COMPLETED" in out
    assert "un café s'il vous plaît" in out
    assert "-> merci" in out
    assert "hermes_bearer" in out
    assert "403 approval_required" in out
    assert "The stranger calls again: bonjour" in out
    assert "403 call_denied" in out
    logged = re.findall(r"│ \d\d:\d\d:\d\d │ (\w+)\s+│ (\w+)\s+│ (\w+)\s+│\s+[\d.]+ │ (\w+)", out)
    assert sorted(logged) == sorted(
        [
            ("You", "a2a", "SendMessage", "ok"),
            ("You", "a2a", "SendStreamingMessage", "ok"),
            ("You", "execute", "SendMessage", "ok"),
            ("Stranger", "execute", "SendMessage", "ok"),
        ]
    )


def _serve(root: Path, register_limit: str) -> Iterator[LiveHub]:
    """A hub already serving, that may call agents on 127.0.0.1, as ``--hub`` needs."""
    yield from serve_hub(
        root,
        HERMES_ALLOW_PRIVATE_ENDPOINTS="1",
        HERMES_RATE_LIMIT_REGISTER=register_limit,
        HERMES_RATE_LIMIT_LOGIN=GENEROUS_LIMIT,
    )


@pytest.fixture(scope="module")
def open_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    yield from _serve(tmp_path_factory.mktemp("demo-hub"), GENEROUS_LIMIT)


@pytest.fixture
def strict_hub(tmp_path: Path) -> Iterator[LiveHub]:
    """Such a hub that takes two sign-ups an hour."""
    yield from _serve(tmp_path / "strict", "2/hour")


@pytest.mark.parametrize("order", ["after", "before"])
def test_a_demo_runs_against_a_hub_given_with_hub(
    open_hub: LiveHub, tmp_path: Path, order: str
) -> None:
    where = ("--hub", open_hub.url)
    args = ("a2a", *where) if order == "after" else (*where, "a2a")
    completed = run_demo(*args, tmp_path=tmp_path)
    assert completed.returncode == 0, (completed.stdout, completed.stderr)
    assert f"Using the hub at {open_hub.url}" in completed.stdout
    assert "où est la gare" in completed.stdout
    # The demo's agent really is on that hub.
    catalog = httpx.get(f"{open_hub.url}/.well-known/ai-catalog.json", timeout=10).json()
    assert "Phrasebook" in str(catalog)


def test_a_hub_that_refuses_local_agents_gets_one_line_with_the_way_out(
    live_hub: LiveHub, tmp_path: Path
) -> None:
    completed = run_demo("a2a", "--hub", live_hub.url, tmp_path=tmp_path)
    line = assert_one_line_error(completed)
    assert "endpoint_not_allowed" in line
    assert "HERMES_ALLOW_PRIVATE_ENDPOINTS=1" in line


def test_a_hub_limiting_sign_ups_gets_one_line_saying_so(
    strict_hub: LiveHub, tmp_path: Path
) -> None:
    line = assert_one_line_error(run_demo("a2a", "--hub", strict_hub.url, tmp_path=tmp_path))
    assert "429" in line
    assert "HERMES_RATE_LIMIT_REGISTER" in line


def test_keep_refuses_a_folder_with_files_in_it(tmp_path: Path) -> None:
    (tmp_path / "keep" / "hub").mkdir(parents=True)
    (tmp_path / "keep" / "hub" / "something").write_text("mine")
    completed = run_demo("--keep", str(tmp_path / "keep"), tmp_path=tmp_path)
    line = assert_one_line_error(completed)
    assert "--keep needs an empty or new folder" in line
    assert (tmp_path / "keep" / "hub" / "something").read_text() == "mine"


def test_an_unusable_hub_url_is_one_line(tmp_path: Path) -> None:
    line = assert_one_line_error(run_demo("paris", "--hub", "ftp://nowhere", tmp_path=tmp_path))
    assert "not a hub URL" in line


# ---- the pure parts ----


def test_the_demo_hub_ignores_the_callers_hermes_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERMES_DATABASE_URL", "postgresql+asyncpg://prod/db")
    monkeypatch.setenv("HERMES_REDIS_URL", "redis://prod")
    monkeypatch.setenv("HERMES_SECRET_KEY", "production-secret")
    monkeypatch.setenv("PORT", "9999")
    environment = hub_environment(tmp_path, 4321)
    assert "HERMES_DATABASE_URL" not in environment
    assert "HERMES_REDIS_URL" not in environment
    assert "HERMES_SECRET_KEY" not in environment
    assert "PORT" not in environment
    assert environment["HERMES_PORT"] == "4321"
    assert environment["HERMES_DATA_DIR"] == str(tmp_path)
    assert environment["HERMES_ALLOW_PRIVATE_ENDPOINTS"] == "1"
    assert environment["HERMES_ENV"] == "dev"


def _contract(intent: str, **context: str) -> Contract:
    return Contract(
        id="c-1", intent=intent, capability="travel.booking", reward=Decimal(0), context=context
    )


def test_an_itinerary_follows_the_contract_and_is_stable() -> None:
    first = itinerary(
        "SkyScout", _contract("Book me a flight to Paris next week", **{"from": "london"})
    )
    assert first == itinerary(
        "SkyScout", _contract("Book me a flight to Paris next week", **{"from": "london"})
    )
    assert (first["from"], first["to"]) == ("LHR", "CDG")
    assert "London to Paris" in first["text"]
    other = itinerary("SkyScout", _contract("anything", to="Rome"))
    assert other["to"] == "FCO"


async def test_the_phrasebook_translates_phrases_and_words() -> None:
    agent = Translator()
    assert (await agent.perform(_contract("Where is the station?")))["text"] == "où est la gare"
    assert (await agent.perform(_contract("my ticket please")))[
        "text"
    ] == "mon billet s'il vous plaît"
