"""The ledger under concurrent writers: no overdraft, no double resolution, no double replay.

Every operation runs as production runs it: ``in_transaction`` around a service call, each in
its own transaction on a pool big enough for real overlap. On PostgreSQL the accounts (and the
hold or withdrawal row) are locked with ``SELECT ... FOR UPDATE``; on SQLite writers queue on
the database lock. Either way the outcome must be the one a serial run would give.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.config import Settings
from hermes_hub.db.session import Database, create_engine
from hermes_hub.db.transaction import in_transaction
from hermes_hub.identity.models import Agent, Organization, User
from hermes_hub.ledger import accounts, escrow, wallets, withdrawals
from hermes_hub.ledger.check import check_ledger
from hermes_hub.ledger.errors import (
    HoldResolvedError,
    InsufficientFundsError,
    WithdrawalResolvedError,
)
from hermes_hub.ledger.journal import ACCOUNTS, TRANSFERS, AccountState, TransferRecord
from hermes_hub.ledger.models import Hold, HoldStatus, TransferKind, Withdrawal
from tests.factories import assert_problem, enroll, register
from tests.ledger.helpers import assert_ledger_ok, grant, make_admin, wallet

T = TypeVar("T")

SPEND = 100  # units per spend
AFFORDABLE = 137  # spends the wallet can pay for
ATTEMPTS = 200  # spends launched at once
# Enough connections for real overlap, yet well under PostgreSQL's default max_connections
# of 100 (other sessions may share the test server).
POOL_SIZE = 20
MAX_OVERFLOW = 20
RATES = escrow.FeeRates(platform_fee_bp=1_000, org_share_bp=500)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"db_pool_size": POOL_SIZE, "db_max_overflow": MAX_OVERFLOW}


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database.from_engine(create_engine(settings))
    try:
        await warm_pool(db, POOL_SIZE)
        yield db
    finally:
        await db.dispose()


async def warm_pool(database: Database, connections: int) -> None:
    """Open the pool's connections up front.

    Otherwise the racers queue on opening connections one after another, and the first
    one often commits before the others reach the database: no race at all.
    """
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(connections):
            await stack.enter_async_context(database.engine.connect())


# ---- helpers ----


async def run(database: Database, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return await in_transaction(database, work)


async def make_user(database: Database) -> User:
    async def work(session: AsyncSession) -> User:
        user = User(email=f"user-{uuid.uuid4().hex}@example.com", password_hash="!")
        session.add(user)
        await session.flush()
        return user

    return await run(database, work)


async def make_org(database: Database, creator: User) -> Organization:
    async def work(session: AsyncSession) -> Organization:
        org = Organization(
            name="Acme", slug=f"acme-{uuid.uuid4().hex[:12]}", created_by_id=creator.id
        )
        session.add(org)
        await session.flush()
        return org

    return await run(database, work)


async def make_agent(
    database: Database, owner: User, organization: Organization | None = None
) -> Agent:
    async def work(session: AsyncSession) -> Agent:
        agent = Agent(
            owner_id=owner.id,
            organization_id=organization.id if organization else None,
            name="worker",
            public_key=uuid.uuid4().hex,
        )
        session.add(agent)
        await session.flush()
        return agent

    return await run(database, work)


async def fund(database: Database, user: User, amount: int) -> uuid.UUID:
    """Grant ``amount`` units to the user's wallet; return the wallet's account id."""

    async def work(session: AsyncSession) -> uuid.UUID:
        await wallets.grant(session, user_id=user.id, amount=amount, reason="seed", actor="test")
        return await accounts.user_wallet(session, user.id)

    return await run(database, work)


async def state(database: Database, account_id: uuid.UUID) -> AccountState:
    async with database.read_sessions() as session:
        return await accounts.read_account(session, account_id)


async def find_state(database: Database, owner_ref: str) -> AccountState | None:
    async with database.read_sessions() as session:
        return await accounts.find_account(session, owner_ref)


async def count_transfers(database: Database, *conditions: Any) -> int:
    async with database.read_sessions() as session:
        total = await session.scalar(select(func.count()).select_from(TRANSFERS).where(*conditions))
    return int(total or 0)


async def assert_checked(database: Database) -> dict[str, Any]:
    async with database.read_sessions() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations
    return report.as_dict()


def split_outcomes(
    results: list[Any], success: Any, failure: type[BaseException]
) -> tuple[list[Any], list[BaseException]]:
    """Successes and expected failures; anything else fails the test with the culprit."""
    unexpected = [r for r in results if not isinstance(r, success | failure)]
    assert not unexpected, unexpected[:3]
    return [r for r in results if isinstance(r, success)], [
        r for r in results if isinstance(r, failure)
    ]


# ---- 1. many spends from one wallet ----


async def test_concurrent_spends_never_overdraw(database: Database) -> None:
    payer = await make_user(database)
    source = await fund(database, payer, SPEND * AFFORDABLE)
    other_users = [await make_user(database) for _ in range(4)]
    own_agents = [await make_agent(database, payer) for _ in range(4)]

    async def open_destinations(session: AsyncSession) -> list[uuid.UUID]:
        opened = [await accounts.user_wallet(session, user.id) for user in other_users]
        opened += [await accounts.agent_wallet(session, agent.id) for agent in own_agents]
        return opened

    destinations = await run(database, open_destinations)

    async def spend(index: int) -> TransferRecord:
        async def work(session: AsyncSession) -> TransferRecord:
            return await wallets.move(
                session,
                debit=source,
                credit=destinations[index % len(destinations)],
                amount=SPEND,
                memo=f"spend {index}",
                actor=f"user:{payer.id}",
            )

        return await in_transaction(database, work)

    results = await asyncio.gather(*(spend(i) for i in range(ATTEMPTS)), return_exceptions=True)
    succeeded, refused = split_outcomes(results, TransferRecord, InsufficientFundsError)

    assert len(succeeded) == AFFORDABLE
    assert len(refused) == ATTEMPTS - AFFORDABLE
    assert len({record.id for record in succeeded}) == AFFORDABLE
    # Every spend is the same size, so a refusal can only ever have seen an empty wallet.
    assert {error.extra["available"] for error in refused} == {0}  # type: ignore[attr-defined]

    drained = await state(database, source)
    assert (drained.available, drained.balance, drained.debits_pending) == (0, 0, 0)
    assert drained.debits_posted == SPEND * AFFORDABLE
    received = Counter(record.credit_account_id for record in succeeded)
    for destination in destinations:
        assert (await state(database, destination)).credits_posted == SPEND * received[destination]
    moved = await count_transfers(
        database,
        TRANSFERS.c.debit_account_id == source,
        TRANSFERS.c.kind == TransferKind.INTERNAL.value,
    )
    assert moved == AFFORDABLE
    await assert_checked(database)


# Fewer than 100 in flight: past that, see test_a_burst_of_requests_is_not_refused.
HTTP_AFFORDABLE = 137
HTTP_ATTEMPTS = 200


async def test_concurrent_transfers_over_http_never_overdraw(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await make_admin(app, client)
    user = await register(client)
    agents = [await enroll(client, user) for _ in range(3)]
    await grant(client, admin, user, HTTP_AFFORDABLE)  # credits; each request moves 1 credit
    await warm_pool(app.state.database, POOL_SIZE)

    async def transfer(index: int) -> httpx.Response:
        return await client.post(
            "/api/v1/wallet/transfers",
            json={"destination": f"agent:{agents[index % len(agents)].id}", "amount": 1},
            headers=user.headers,
        )

    responses = await asyncio.gather(*(transfer(i) for i in range(HTTP_ATTEMPTS)))
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: HTTP_AFFORDABLE, 409: HTTP_ATTEMPTS - HTTP_AFFORDABLE}, statuses
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "insufficient_funds")
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == HTTP_AFFORDABLE

    body = await wallet(client, user)
    assert (body["available_units"], body["held_units"], body["total_units"]) == (0, 0, 0)
    earned = 0
    for agent in agents:
        balance = await wallet(client, agent)
        earned += balance["total_units"]
    assert earned == HTTP_AFFORDABLE * 100
    await assert_ledger_ok(app)


async def test_a_burst_of_requests_is_not_refused(client: httpx.AsyncClient, app: FastAPI) -> None:
    """More than 100 requests in flight must queue, not fail.

    Every authenticated request hits the rate limiter. redis-py's default async pool allows
    100 connections and raises at once for the 101st, which turned a burst into 503
    rate_limiter_unavailable although Redis was healthy; the app now uses a blocking pool.
    """
    user = await register(client)
    await warm_pool(app.state.database, POOL_SIZE)
    responses = await asyncio.gather(
        *(client.get("/api/v1/wallet", headers=user.headers) for _ in range(150))
    )
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 150}, statuses


# ---- 2. a hold or a withdrawal is resolved exactly once ----


async def test_concurrent_release_and_refund_resolve_each_hold_once(database: Database) -> None:
    payer = await make_user(database)
    provider = await make_user(database)
    agent = await make_agent(database, provider)
    funded = 10_000
    payer_wallet = await fund(database, payer, funded)
    amounts = (1_000, 2_000)

    async def open_hold(amount: int) -> Hold:
        async def work(session: AsyncSession) -> Hold:
            return await escrow.hold(session, payer_account_id=payer_wallet, amount=amount)

        return await run(database, work)

    holds = [await open_hold(amount) for amount in amounts]

    def resolver(hold_id: uuid.UUID, index: int) -> Awaitable[Any]:
        async def work(session: AsyncSession) -> Any:
            if index % 2:
                return await escrow.refund(session, hold_id=hold_id)
            return await escrow.release(
                session, hold_id=hold_id, score=1.0, payee_agent_id=agent.id, rates=RATES
            )

        return in_transaction(database, work)

    per_hold = 20
    # Interleaved, and the first racer for the second hold is a refund, so either kind of
    # resolution usually gets to win one hold.
    results = await asyncio.gather(
        *(resolver(hold.id, i + n) for i in range(per_hold) for n, hold in enumerate(holds)),
        return_exceptions=True,
    )
    released_total = 0
    for position, hold in enumerate(holds):
        mine = results[position :: len(holds)]
        won, lost = split_outcomes(mine, escrow.ReleaseOutcome | Hold, HoldResolvedError)
        assert len(won) == 1, won
        assert len(lost) == per_hold - 1
        async with database.read_sessions() as session:
            stored = await session.get(Hold, hold.id)
            assert stored is not None
            resolutions = await session.scalar(
                select(func.count())
                .select_from(TRANSFERS)
                .where(TRANSFERS.c.pending_id == hold.pending_transfer_id)
            )
        assert resolutions == 1
        if isinstance(won[0], escrow.ReleaseOutcome):
            assert stored.status == HoldStatus.RELEASED.value
            assert (stored.released, stored.refunded) == (hold.amount, 0)
            released_total += hold.amount
        else:
            assert stored.status == HoldStatus.REFUNDED.value
            assert (stored.released, stored.refunded) == (0, hold.amount)

    payer_state = await state(database, payer_wallet)
    assert payer_state.debits_pending == 0
    assert payer_state.balance == funded - released_total
    agent_wallet = await find_state(database, accounts.agent_ref(agent.id))
    platform = await find_state(database, accounts.PLATFORM_REF)
    if released_total:
        assert agent_wallet is not None
        assert platform is not None
        # The agent has no organization: the platform's 10% fee, the rest to the agent.
        released_fee = released_total * RATES.platform_fee_bp // 10_000
        assert platform.balance == released_fee
        assert agent_wallet.balance == released_total - released_fee
    else:
        assert agent_wallet is None or agent_wallet.balance == 0
    await assert_checked(database)


async def test_concurrent_approve_and_reject_resolve_a_withdrawal_once(
    database: Database,
) -> None:
    user = await make_user(database)
    admin = await make_user(database)
    funded, amount = 5_000, 2_000
    source = await fund(database, user, funded)

    async def request(session: AsyncSession) -> Withdrawal:
        return await withdrawals.request_withdrawal(
            session,
            user=user,
            account_id=source,
            amount=amount,
            minimum=1,
            destination="iban:TEST",
            idempotency_key=None,
        )

    requested = await run(database, request)

    def decide(index: int) -> Awaitable[Withdrawal]:
        async def work(session: AsyncSession) -> Withdrawal:
            return await withdrawals.resolve_withdrawal(
                session,
                withdrawal_id=requested.id,
                admin=admin,
                approve=index % 2 == 0,
                note=f"decision {index}",
            )

        return in_transaction(database, work)

    attempts = 20
    results = await asyncio.gather(*(decide(i) for i in range(attempts)), return_exceptions=True)
    won, lost = split_outcomes(results, Withdrawal, WithdrawalResolvedError)
    assert len(won) == 1
    assert len(lost) == attempts - 1

    async with database.read_sessions() as session:
        stored = await session.get(Withdrawal, requested.id)
    assert stored is not None
    assert stored.status == won[0].status
    assert stored.resolution_note == won[0].resolution_note
    assert (
        await count_transfers(database, TRANSFERS.c.pending_id == requested.pending_transfer_id)
        == 1
    )
    after = await state(database, source)
    assert after.debits_pending == 0
    assert after.balance == (funded - amount if stored.status == "approved" else funded)
    await assert_checked(database)


# ---- 3. idempotent replays racing each other ----


async def test_concurrent_grants_with_one_idempotency_key_grant_once(database: Database) -> None:
    user = await make_user(database)
    attempts, amount = 20, 750

    async def open_accounts(session: AsyncSession) -> None:
        # With both accounts already there, nothing serializes the racers before the account
        # locks: they all miss the replay, and all but one then collide on the transfer id.
        await accounts.user_wallet(session, user.id)
        await accounts.world_account(session)

    await run(database, open_accounts)

    def grant_once() -> Awaitable[TransferRecord]:
        async def work(session: AsyncSession) -> TransferRecord:
            return await wallets.grant(
                session,
                user_id=user.id,
                amount=amount,
                reason="welcome",
                actor="user:admin",
                idempotency_key="welcome-bonus",
            )

        return in_transaction(database, work)

    results = await asyncio.gather(*(grant_once() for _ in range(attempts)), return_exceptions=True)
    records, _ = split_outcomes(results, TransferRecord, Exception)
    assert len(records) == attempts, results
    assert len({record.id for record in records}) == 1
    assert await count_transfers(database, TRANSFERS.c.kind == TransferKind.GRANT.value) == 1
    credited = await find_state(database, accounts.user_ref(user.id))
    assert credited is not None
    assert credited.balance == amount
    await assert_checked(database)


async def test_concurrent_moves_with_one_idempotency_key_move_once(database: Database) -> None:
    user = await make_user(database)
    agent = await make_agent(database, user)
    source = await fund(database, user, 1_000)
    destination = await run(database, lambda session: accounts.agent_wallet(session, agent.id))
    attempts, amount = 20, 300

    def move_once() -> Awaitable[TransferRecord]:
        async def work(session: AsyncSession) -> TransferRecord:
            return await wallets.move(
                session,
                debit=source,
                credit=destination,
                amount=amount,
                memo="once",
                actor=f"user:{user.id}",
                idempotency_key="pay-agent-1",
            )

        return in_transaction(database, work)

    results = await asyncio.gather(*(move_once() for _ in range(attempts)), return_exceptions=True)
    records, _ = split_outcomes(results, TransferRecord, Exception)
    assert len(records) == attempts, results
    assert len({record.id for record in records}) == 1
    assert await count_transfers(database, TRANSFERS.c.kind == TransferKind.INTERNAL.value) == 1
    assert (await state(database, source)).balance == 1_000 - amount
    assert (await state(database, destination)).balance == amount
    await assert_checked(database)


async def test_concurrent_http_replays_return_one_transfer(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await make_admin(app, client)
    user = await register(client)
    agent = await enroll(client, user)
    await grant(client, admin, user, 10)
    # Open the agent's wallet first, so the racers do not queue on opening it.
    opened = await client.post(
        "/api/v1/wallet/transfers",
        json={"destination": f"agent:{agent.id}", "amount": 1},
        headers=user.headers,
    )
    assert opened.status_code == 201, opened.text
    headers = {**user.headers, "Idempotency-Key": "http-replay-1"}
    await warm_pool(app.state.database, POOL_SIZE)

    async def transfer() -> httpx.Response:
        return await client.post(
            "/api/v1/wallet/transfers",
            json={"destination": f"agent:{agent.id}", "amount": 4},
            headers=headers,
        )

    responses = await asyncio.gather(*(transfer() for _ in range(40)))
    assert {response.status_code for response in responses} == {201}, [
        r.text for r in responses if r.status_code != 201
    ]
    assert len({response.json()["id"] for response in responses}) == 1
    assert (await wallet(client, user))["total_units"] == 500
    assert (await wallet(client, agent))["total_units"] == 500
    await assert_ledger_ok(app)


# ---- 4. holds, releases, refunds and moves over overlapping accounts ----


async def test_mixed_operations_over_overlapping_accounts(database: Database) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    payers = [await make_user(database) for _ in range(4)]
    funded = 100_000
    payer_wallets = [await fund(database, payer, funded) for payer in payers]
    provider = await make_user(database)
    org = await make_org(database, provider)
    # Agent wallets (and the organization's) are opened lazily by the first release, so
    # concurrent releases also race to open them.
    payees = [
        await make_agent(database, provider),
        await make_agent(database, provider),
        await make_agent(database, provider, org),
    ]

    async def open_hold(payer_wallet: uuid.UUID, amount: int) -> Hold:
        async def work(session: AsyncSession) -> Hold:
            return await escrow.hold(
                session, payer_account_id=payer_wallet, amount=amount, contract_id=uuid.uuid4()
            )

        return await in_transaction(database, work)

    async def resolve(hold_id: uuid.UUID, score: float | None, payee: Agent) -> str:
        async def work(session: AsyncSession) -> str:
            if score is None:
                return (await escrow.refund(session, hold_id=hold_id)).status
            outcome = await escrow.release(
                session, hold_id=hold_id, score=score, payee_agent_id=payee.id, rates=RATES
            )
            return outcome.hold.status

        return await in_transaction(database, work)

    async def move(debit: uuid.UUID, credit: uuid.UUID, amount: int) -> str:
        async def work(session: AsyncSession) -> str:
            record = await wallets.move(
                session, debit=debit, credit=credit, amount=amount, memo="mix", actor="test"
            )
            return record.phase

        return await in_transaction(database, work)

    def random_resolution() -> tuple[float | None, Agent]:
        return rng.choice([None, 1.0, 0.9, 0.7]), rng.choice(payees)

    existing = await asyncio.gather(
        *(open_hold(rng.choice(payer_wallets), rng.randrange(100, 5_000)) for _ in range(12))
    )
    expected: dict[uuid.UUID, str] = {}
    operations: list[Awaitable[str]] = []
    for hold in existing:
        score, payee = random_resolution()
        expected[hold.id] = "refunded" if score is None else "released"
        operations.append(resolve(hold.id, score, payee))

    async def hold_then_resolve(
        payer_wallet: uuid.UUID, amount: int, score: float | None, payee: Agent
    ) -> str:
        fresh = await open_hold(payer_wallet, amount)
        expected[fresh.id] = "refunded" if score is None else "released"
        return await resolve(fresh.id, score, payee)

    for _ in range(12):
        payer_wallet, amount = rng.choice(payer_wallets), rng.randrange(100, 5_000)
        operations.append(hold_then_resolve(payer_wallet, amount, *random_resolution()))
    for _ in range(16):
        debit, credit = rng.sample(payer_wallets, 2)
        operations.append(move(debit, credit, rng.randrange(1, 2_000)))
    rng.shuffle(operations)

    results = await asyncio.gather(*operations, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, (seed, failures[:3])
    assert Counter(results) == {
        "released": sum(1 for status in expected.values() if status == "released"),
        "refunded": sum(1 for status in expected.values() if status == "refunded"),
        "posted": 16,
    }, seed

    async with database.read_sessions() as session:
        stored = {hold.id: hold.status for hold in (await session.scalars(select(Hold))).all()}
    assert stored == expected, seed
    report = await assert_checked(database)
    assert report["holds"] == 24
    world = await find_state(database, accounts.WORLD_REF)
    assert world is not None
    # Money only entered through the grants and never left the hub.
    assert world.balance == -funded * len(payers)
    payer_total = sum([(await state(database, w)).balance for w in payer_wallets])
    released = 0
    async with database.read_sessions() as session:
        for hold in (await session.scalars(select(Hold))).all():
            released += hold.released
            assert hold.released + hold.refunded == hold.amount
    assert payer_total == funded * len(payers) - released, seed


async def test_a_deadlock_is_retried_not_reported(database: Database, backend: str) -> None:
    """Two transactions that lock two wallets in opposite orders: PostgreSQL aborts one with
    a deadlock (40P01) and ``in_transaction`` runs it again, so both moves go through."""
    if backend != "postgres":
        pytest.skip("SQLite writers queue on the one database lock; they cannot deadlock")
    first_user, second_user = await make_user(database), await make_user(database)
    first = await fund(database, first_user, 1_000)
    second = await fund(database, second_user, 1_000)
    both_hold_one = asyncio.Barrier(2)
    attempts: Counter[str] = Counter()

    def crossing(debit: uuid.UUID, credit: uuid.UUID, name: str) -> Awaitable[TransferRecord]:
        async def work(session: AsyncSession) -> TransferRecord:
            attempts[name] += 1
            # Lock the debit wallet first, as code outside the journal might.
            await session.execute(
                select(ACCOUNTS.c.id).where(ACCOUNTS.c.id == debit).with_for_update()
            )
            if attempts[name] == 1:
                await asyncio.wait_for(both_hold_one.wait(), timeout=10)
            return await wallets.move(
                session, debit=debit, credit=credit, amount=100, memo=name, actor="test"
            )

        return in_transaction(database, work)

    moved = await asyncio.gather(crossing(first, second, "ab"), crossing(second, first, "ba"))
    assert len({record.id for record in moved}) == 2
    # One of the two ran twice: its first attempt was the deadlock victim.
    assert sorted(attempts.values()) == [1, 2]
    assert (await state(database, first)).balance == 1_000
    assert (await state(database, second)).balance == 1_000
    await assert_checked(database)
