"""A process killed in the middle of an escrow release leaves no partial state behind.

The release runs in a separate process (``crash_worker.py``) that freezes inside its open
transaction after writing (counters, transfer rows, the hold, the audit row) but before the
commit; the test kills it with SIGKILL. The database must then look exactly as before the
release: the hold still held, no release transfer, not one counter changed, the ledger check
(in-process and ``hermes ledger check``) clean. A fresh process can then release the hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.config import Settings
from hermes_hub.db.session import Database, create_engine
from hermes_hub.db.transaction import in_transaction
from hermes_hub.identity.models import Agent, Organization, User
from hermes_hub.ledger import accounts, escrow, wallets
from hermes_hub.ledger.check import check_ledger
from hermes_hub.ledger.journal import ACCOUNTS, TRANSFERS
from hermes_hub.ledger.models import AuditEntry, Hold, HoldStatus, TransferPhase

WORKER = Path(__file__).with_name("crash_worker.py")
STARTUP_TIMEOUT = 60.0
CLI_TIMEOUT = 60.0
FUNDED = 10_000
HELD = 4_000
RATES = escrow.FeeRates(platform_fee_bp=1_000, org_share_bp=500)  # as in crash_worker.py


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database.from_engine(create_engine(settings))
    try:
        yield db
    finally:
        await db.dispose()


def subprocess_env(database_url: str, data_dir: Path) -> dict[str, str]:
    """This environment without any ``HERMES_*`` setting, pointed at the test database."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("HERMES_")}
    env.update(HERMES_DATABASE_URL=database_url, HERMES_DATA_DIR=str(data_dir))
    return env


async def run_process(*command: str, env: dict[str, str], limit: float) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with asyncio.timeout(limit):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def setup_hold(database: Database) -> tuple[Hold, Agent]:
    """A funded payer with a hold, and a payee agent of an organization.

    Nothing has paid the agent, the platform or the organization yet, so the release in
    the worker also opens their accounts; the crash must leave no trace of those either.
    """

    async def work(session: AsyncSession) -> tuple[Hold, Agent]:
        payer = User(email=f"payer-{uuid.uuid4().hex}@example.com", password_hash="!")
        provider = User(email=f"provider-{uuid.uuid4().hex}@example.com", password_hash="!")
        session.add_all([payer, provider])
        await session.flush()
        org = Organization(
            name="Acme", slug=f"acme-{uuid.uuid4().hex[:12]}", created_by_id=provider.id
        )
        session.add(org)
        await session.flush()
        agent = Agent(
            owner_id=provider.id, organization_id=org.id, name="payee", public_key=uuid.uuid4().hex
        )
        session.add(agent)
        await session.flush()
        await wallets.grant(session, user_id=payer.id, amount=FUNDED, reason="seed", actor="test")
        payer_wallet = await accounts.user_wallet(session, payer.id)
        hold = await escrow.hold(
            session, payer_account_id=payer_wallet, amount=HELD, contract_id=uuid.uuid4()
        )
        return hold, agent

    return await in_transaction(database, work)


async def snapshot(database: Database) -> dict[str, Any]:
    """Everything a release could touch: every account's counters, the journal, the audit
    log and the holds."""
    async with database.read_sessions() as session:
        account_rows = (await session.execute(select(ACCOUNTS))).all()
        holds = (await session.scalars(select(Hold))).all()
        return {
            "accounts": {
                row.id: (
                    row.owner_ref,
                    row.debits_pending,
                    row.debits_posted,
                    row.credits_pending,
                    row.credits_posted,
                )
                for row in account_rows
            },
            "transfers": sorted(
                str(transfer_id)
                for transfer_id in (await session.scalars(select(TRANSFERS.c.id))).all()
            ),
            "audit": await session.scalar(select(func.count()).select_from(AuditEntry)),
            "holds": {
                hold.id: (hold.status, hold.amount, hold.released, hold.refunded, hold.resolved_at)
                for hold in holds
            },
        }


async def assert_ledger_ok(database: Database) -> None:
    async with database.read_sessions() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations


async def wait_for_marker(process: asyncio.subprocess.Process, marker: Path, stderr: Path) -> Any:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not await asyncio.to_thread(marker.exists):
        if process.returncode is not None:
            pytest.fail(
                f"the worker exited with {process.returncode} before freezing: "
                f"{await asyncio.to_thread(stderr.read_text, errors='replace')}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"the worker did not freeze within {STARTUP_TIMEOUT:.0f} s")
        await asyncio.sleep(0.02)
    return json.loads(await asyncio.to_thread(marker.read_text))


async def wait_until_backend_gone(database: Database, backend_pid: int) -> None:
    """PostgreSQL rolls the killed client's transaction back once it notices the closed
    connection; wait until that backend has exited, so the checks below race nothing."""
    deadline = time.monotonic() + 30
    while True:
        async with database.read_sessions() as session:
            alive = await session.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": backend_pid},
            )
        if not alive:
            return
        assert time.monotonic() < deadline, f"backend {backend_pid} still alive after 30 s"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("stage", ["journal", "audit"])
async def test_release_killed_mid_transaction_leaves_no_partial_state(
    database: Database, database_url: str, backend: str, tmp_path: Path, stage: str
) -> None:
    hold, agent = await setup_hold(database)
    before = await snapshot(database)
    env = subprocess_env(database_url, tmp_path)
    marker = tmp_path / "frozen.json"
    stderr_path = tmp_path / "worker.stderr"

    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            database_url,
            str(hold.id),
            str(agent.id),
            str(marker),
            stage,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        frozen = await wait_for_marker(process, marker, stderr_path)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == -signal.SIGKILL

    # Inside its transaction the worker had written its part of the release...
    assert frozen["stage"] == stage
    assert frozen["resolutions"] == 1
    assert frozen["transfers"] > len(before["transfers"])
    assert frozen["hold_status"] == (
        HoldStatus.RELEASED.value if stage == "audit" else HoldStatus.HELD.value
    )
    if backend == "postgres":
        await wait_until_backend_gone(database, frozen["backend_pid"])

    # ...and none of it survived the kill.
    assert await snapshot(database) == before
    async with database.read_sessions() as session:
        stored = await session.get(Hold, hold.id)
        assert stored is not None
        assert stored.status == HoldStatus.HELD.value
        released = await session.scalar(
            select(func.count())
            .select_from(TRANSFERS)
            .where(TRANSFERS.c.pending_id == hold.pending_transfer_id)
        )
        assert released == 0
        assert await accounts.find_account(session, accounts.agent_ref(agent.id)) is None
    await assert_ledger_ok(database)

    code, out, err = await run_process(
        sys.executable,
        "-m",
        "hermes_hub",
        "ledger",
        "check",
        "--json",
        env=env,
        limit=CLI_TIMEOUT,
    )
    assert code == 0, (code, out, err)
    report = json.loads(out)
    assert report["ok"] is True, report
    assert report["violations"] == []
    assert report["holds"] == 1

    # "Restart": a fresh process releases the hold, exactly once.
    code, out, err = await run_process(
        sys.executable,
        str(WORKER),
        database_url,
        str(hold.id),
        str(agent.id),
        str(tmp_path / "unused.json"),
        "none",
        env=env,
        limit=CLI_TIMEOUT,
    )
    assert code == 0, (code, out, err)
    assert json.loads(out) == {"status": HoldStatus.RELEASED.value, "released": HELD}

    fee = HELD * RATES.platform_fee_bp // 10_000
    org_share = HELD * RATES.org_share_bp // 10_000
    async with database.read_sessions() as session:
        stored = await session.get(Hold, hold.id)
        assert stored is not None
        assert (stored.status, stored.released, stored.refunded) == ("released", HELD, 0)
        resolutions = (
            await session.execute(
                select(TRANSFERS.c.phase, TRANSFERS.c.amount).where(
                    TRANSFERS.c.pending_id == hold.pending_transfer_id
                )
            )
        ).all()
        assert [tuple(row) for row in resolutions] == [(TransferPhase.POST_PENDING.value, HELD)]
        payer = await accounts.read_account(session, hold.payer_account_id)
        assert (payer.balance, payer.debits_pending) == (FUNDED - HELD, 0)
        payee = await accounts.find_account(session, accounts.agent_ref(agent.id))
        assert payee is not None
        assert payee.balance == HELD - fee - org_share
        platform = await accounts.find_account(session, accounts.PLATFORM_REF)
        assert platform is not None
        assert platform.balance == fee
        assert agent.organization_id is not None
        org = await accounts.find_account(session, accounts.org_ref(agent.organization_id))
        assert org is not None
        assert org.balance == org_share
    await assert_ledger_ok(database)
