"""Escrow holds through the service API the contract lifecycle uses."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from hermes_hub.db.transaction import in_transaction
from hermes_hub.identity.models import Agent, Organization, User
from hermes_hub.kit.time import utcnow
from hermes_hub.ledger import accounts, escrow, wallets
from hermes_hub.ledger.errors import (
    AccountNotFoundError,
    HoldResolvedError,
    IdempotencyKeyReusedError,
    InsufficientFundsError,
    InvalidAmountError,
    PendingTransferExpiredError,
)
from hermes_hub.ledger.escrow import FeeRates
from hermes_hub.ledger.models import Transfer
from tests.ledger.helpers import assert_ledger_ok

RATES = FeeRates(platform_fee_bp=1000, org_share_bp=500)


@pytest.fixture
def database(app):
    return app.state.database


async def _seed(database, *, with_org: bool = False, funds: int = 10_000):
    """A payer with ``funds`` units and a payee agent (in an org if asked)."""

    async def work(session):
        payer = User(email=f"payer-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
        owner = User(email=f"owner-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
        session.add_all([payer, owner])
        await session.flush()
        org = None
        if with_org:
            org = Organization(
                name="Org", slug=f"org-{uuid.uuid4().hex[:8]}", created_by_id=owner.id
            )
            session.add(org)
            await session.flush()
        agent = Agent(
            owner_id=owner.id,
            organization_id=org.id if org else None,
            name="worker",
            public_key=uuid.uuid4().hex,
        )
        session.add(agent)
        await session.flush()
        await wallets.grant(session, user_id=payer.id, amount=funds, reason="seed", actor="test")
        payer_wallet = await accounts.user_wallet(session, payer.id)
        return payer_wallet, agent.id, org.id if org else None

    return await in_transaction(database, work)


async def _balance(database, owner_ref):
    async with database.read_sessions() as session:
        return await wallets.balance_of(session, owner_ref)


async def _hold(database, payer, amount, contract_id=None, **kwargs):
    async def work(session):
        return await escrow.hold(
            session,
            payer_account_id=payer,
            amount=amount,
            contract_id=contract_id or uuid.uuid4(),
            **kwargs,
        )

    return await in_transaction(database, work)


async def _release(database, hold_id, score, agent_id):
    async def work(session):
        return await escrow.release(
            session, hold_id=hold_id, score=score, payee_agent_id=agent_id, rates=RATES
        )

    return await in_transaction(database, work)


async def _refund(database, hold_id):
    async def work(session):
        return await escrow.refund(session, hold_id=hold_id)

    return await in_transaction(database, work)


async def test_hold_moves_funds_to_held(database, app):
    payer, _, _ = await _seed(database)
    hold = await _hold(database, payer, 2_500)
    async with database.read_sessions() as session:
        state = await accounts.read_account(session, payer)
    assert (state.available, state.debits_pending, state.balance) == (7_500, 2_500, 10_000)
    assert hold.status == "held"
    await assert_ledger_ok(app)


@pytest.mark.parametrize(
    ("score", "released", "fee", "org", "agent", "refund"),
    [
        (1.0, 1_000, 100, 50, 850, 0),
        (0.95, 1_000, 100, 50, 850, 0),
        (0.9, 900, 90, 45, 765, 100),
        (0.8, 900, 90, 45, 765, 100),
        (0.79, 700, 70, 35, 595, 300),
        (0.6, 700, 70, 35, 595, 300),
    ],
)
async def test_release_by_score_splits_agent_fee_org_and_refund(
    database, app, score, released, fee, org, agent, refund
):
    payer, agent_id, org_id = await _seed(database, with_org=True)
    hold = await _hold(database, payer, 1_000)
    outcome = await _release(database, hold.id, score, agent_id)
    settlement = outcome.settlement
    assert settlement is not None
    assert (settlement.released, settlement.platform_fee, settlement.org_share) == (
        released,
        fee,
        org,
    )
    assert (settlement.agent_share, settlement.refunded) == (agent, refund)
    assert (await _balance(database, accounts.agent_ref(agent_id))).available == agent
    assert (await _balance(database, accounts.org_ref(org_id))).available == org
    assert (await _balance(database, accounts.PLATFORM_REF)).available == fee
    payer_balance = await _balance(database, f"user:{(await _payer_user(database, payer))}")
    assert payer_balance.available == 10_000 - released
    assert payer_balance.held == 0
    await assert_ledger_ok(app)


async def _payer_user(database, payer_account):
    async with database.read_sessions() as session:
        return (await accounts.read_account(session, payer_account)).owner_ref.split(":")[1]


async def test_agent_without_org_keeps_the_org_share(database, app):
    payer, agent_id, _ = await _seed(database)
    hold = await _hold(database, payer, 1_000)
    outcome = await _release(database, hold.id, 1.0, agent_id)
    assert outcome.settlement.org_share == 0
    assert outcome.settlement.agent_share == 900


async def test_rounding_never_loses_a_unit(database, app):
    payer, agent_id, _ = await _seed(database, with_org=True)
    hold = await _hold(database, payer, 333)
    outcome = await _release(database, hold.id, 0.85, agent_id)
    s = outcome.settlement
    # 90% of 333 = 299.7 -> 299 released, the payer keeps the 0.7 unit.
    assert (s.released, s.refunded) == (299, 34)
    # fee 29.9 -> 29, org 14.95 -> 14, the agent gets the rest.
    assert (s.platform_fee, s.org_share, s.agent_share) == (29, 14, 256)
    assert s.agent_share + s.platform_fee + s.org_share + s.refunded == 333
    await assert_ledger_ok(app)


async def test_low_score_releases_nothing_and_keeps_the_hold_for_dispute(database, app):
    payer, agent_id, _ = await _seed(database)
    hold = await _hold(database, payer, 1_000)
    outcome = await _release(database, hold.id, 0.59, agent_id)
    assert outcome.dispute_required
    assert outcome.hold.status == "held"

    # The dispute's ruling: half to the agent.
    async def rule(session):
        return await escrow.settle(
            session, hold_id=hold.id, released=500, payee_agent_id=agent_id, rates=RATES
        )

    ruling = await in_transaction(database, rule)
    assert ruling.settlement.released == 500
    assert ruling.settlement.refunded == 500
    await assert_ledger_ok(app)


async def test_double_release_and_release_after_refund_are_refused(database, app):
    payer, agent_id, _ = await _seed(database)
    first = await _hold(database, payer, 1_000)
    await _release(database, first.id, 1.0, agent_id)
    with pytest.raises(HoldResolvedError):
        await _release(database, first.id, 1.0, agent_id)
    with pytest.raises(HoldResolvedError):
        await _refund(database, first.id)

    second = await _hold(database, payer, 1_000)
    await _refund(database, second.id)
    with pytest.raises(HoldResolvedError):
        await _release(database, second.id, 1.0, agent_id)
    with pytest.raises(HoldResolvedError):
        await _refund(database, second.id)
    assert (await _balance(database, accounts.agent_ref(agent_id))).available == 900
    await assert_ledger_ok(app)


async def test_refund_returns_everything(database, app):
    payer, _, _ = await _seed(database)
    hold = await _hold(database, payer, 4_000)
    refunded = await _refund(database, hold.id)
    assert (refunded.status, refunded.refunded, refunded.released) == ("refunded", 4_000, 0)
    async with database.read_sessions() as session:
        state = await accounts.read_account(session, payer)
    assert (state.available, state.debits_pending) == (10_000, 0)
    await assert_ledger_ok(app)


async def test_hold_more_than_available_is_refused_and_writes_nothing(database, app):
    payer, _, _ = await _seed(database, funds=500)
    async with database.read_sessions() as session:
        before = await session.scalar(select(func.count()).select_from(Transfer))
    with pytest.raises(InsufficientFundsError):
        await _hold(database, payer, 501)
    async with database.read_sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Transfer)) == before
    await assert_ledger_ok(app)


async def test_hold_for_the_same_contract_is_idempotent(database, app):
    payer, _, _ = await _seed(database)
    contract_id = uuid.uuid4()
    first = await _hold(database, payer, 1_000, contract_id=contract_id)
    again = await _hold(database, payer, 1_000, contract_id=contract_id)
    assert again.id == first.id
    with pytest.raises(IdempotencyKeyReusedError):
        await _hold(database, payer, 2_000, contract_id=contract_id)
    async with database.read_sessions() as session:
        state = await accounts.read_account(session, payer)
    assert state.debits_pending == 1_000
    await assert_ledger_ok(app)


async def test_reduce_lowers_the_hold_to_the_winning_price(database, app):
    payer, agent_id, _ = await _seed(database)
    hold = await _hold(database, payer, 1_000)

    async def lower(session):
        return await escrow.reduce(session, hold_id=hold.id, amount=425)

    lowered = await in_transaction(database, lower)
    assert lowered.amount == 425
    async with database.read_sessions() as session:
        state = await accounts.read_account(session, payer)
    assert (state.available, state.debits_pending) == (9_575, 425)

    async def raise_it(session):
        return await escrow.reduce(session, hold_id=hold.id, amount=500)

    with pytest.raises(InvalidAmountError):
        await in_transaction(database, raise_it)
    outcome = await _release(database, hold.id, 1.0, agent_id)
    assert outcome.settlement.released == 425
    await assert_ledger_ok(app)


async def test_an_expired_hold_cannot_be_released_and_is_refunded_by_the_sweep(database, app):
    payer, agent_id, _ = await _seed(database)
    hold = await _hold(database, payer, 1_000, expires_at=utcnow() - timedelta(seconds=1))
    live = await _hold(database, payer, 1_000, expires_at=utcnow() + timedelta(hours=1))
    with pytest.raises(PendingTransferExpiredError):
        await _release(database, hold.id, 1.0, agent_id)

    async def sweep(session):
        return await escrow.refund_expired(session)

    assert await in_transaction(database, sweep) == [hold.id]
    assert await in_transaction(database, sweep) == []
    async with database.read_sessions() as session:
        state = await accounts.read_account(session, payer)
    assert state.debits_pending == 1_000  # only the live hold is still held
    await _release(database, live.id, 1.0, agent_id)
    await assert_ledger_ok(app)


async def test_hold_from_an_unknown_account_is_not_found_and_writes_nothing(database, app):
    with pytest.raises(AccountNotFoundError):
        await _hold(database, uuid.uuid4(), 100)
    report = await assert_ledger_ok(app)
    assert report["transfers"] == 0
