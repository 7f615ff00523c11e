"""Escrow for contracts: hold a reward, then release it by validation score or refund it.

This is a service for the contract lifecycle, not a public API. Each hold gets its own escrow
account; the payer's credits move there as a *pending* transfer, so they stay on the payer's
books as "held" until the hold is resolved, exactly once:

- ``release`` posts the pending transfer for the released amount (the rest returns to the
  payer) and pays the agent, the platform fee and the organization share out of escrow;
- ``refund`` voids it.

After resolution the escrow account holds nothing. Functions flush but never commit: the
caller's transaction (the contract's state change) commits everything together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.identity.models import Agent
from hermes_hub.kit.time import utcnow
from hermes_hub.ledger import accounts, audit
from hermes_hub.ledger.errors import (
    HoldNotFoundError,
    HoldResolvedError,
    IdempotencyKeyReusedError,
    InvalidAmountError,
)
from hermes_hub.ledger.journal import Journal, TransferRecord, derive_id, require_pending
from hermes_hub.ledger.models import Hold, HoldStatus, TransferKind
from hermes_hub.ledger.split import Settlement, release_percent, split_release


@dataclass(frozen=True)
class FeeRates:
    platform_fee_bp: int
    org_share_bp: int


@dataclass(frozen=True)
class ReleaseOutcome:
    hold: Hold
    # None when the score released nothing: the hold stays in place for the dispute.
    settlement: Settlement | None
    transfers: tuple[TransferRecord, ...] = ()

    @property
    def dispute_required(self) -> bool:
        return self.settlement is None


def _contract_reference(hold_id: uuid.UUID, contract_id: uuid.UUID | None) -> tuple[str, str]:
    return ("contract", str(contract_id)) if contract_id else ("hold", str(hold_id))


async def _locked_hold(session: AsyncSession, hold_id: uuid.UUID) -> Hold:
    # The hold row is locked before any account, by every operation, so operations on one
    # hold queue behind each other and lock order stays acyclic.
    held = await session.scalar(
        select(Hold)
        .where(Hold.id == hold_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if held is None:
        raise HoldNotFoundError("No such hold.")
    return held


async def get_hold_for_contract(session: AsyncSession, contract_id: uuid.UUID) -> Hold | None:
    return await session.scalar(select(Hold).where(Hold.contract_id == contract_id))


async def hold(
    session: AsyncSession,
    *,
    payer_account_id: uuid.UUID,
    amount: int,
    contract_id: uuid.UUID | None = None,
    expires_at: datetime | None = None,
    actor: str = audit.SYSTEM_ACTOR,
) -> Hold:
    """Hold ``amount`` of the payer's credits for a contract.

    One hold per contract: asking again for the same contract and payer returns the existing
    hold (a retry) while it is held for that amount or after it was resolved; a different
    payer, or a different amount while it is held, is a conflict.
    """
    if amount <= 0:
        raise InvalidAmountError("A hold must be positive.")
    if contract_id is not None:
        existing = await get_hold_for_contract(session, contract_id)
        if existing is not None:
            if existing.payer_account_id != payer_account_id or (
                existing.status == HoldStatus.HELD.value and existing.amount != amount
            ):
                raise IdempotencyKeyReusedError("This contract already has a different hold.")
            return existing
    hold_id = derive_id("hold", str(contract_id)) if contract_id else uuid.uuid4()
    payer = await accounts.read_account(session, payer_account_id)
    escrow_id = await accounts.escrow_account(session, hold_id, payer.currency)
    journal = await Journal.lock(session, [payer_account_id, escrow_id])
    pending = journal.transfer(
        debit_account_id=payer_account_id,
        credit_account_id=escrow_id,
        amount=amount,
        kind=TransferKind.ESCROW_HOLD.value,
        pending=True,
        timeout_at=expires_at,
        reference=_contract_reference(hold_id, contract_id),
    )
    written = await journal.flush()
    record = Hold(
        id=hold_id,
        payer_account_id=payer_account_id,
        escrow_account_id=escrow_id,
        pending_transfer_id=pending.id,
        contract_id=contract_id,
        currency=payer.currency,
        amount=amount,
        status=HoldStatus.HELD.value,
        expires_at=expires_at,
    )
    session.add(record)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="escrow.hold",
        transfers=written,
        details={"hold_id": str(hold_id), "contract_id": _str(contract_id), "amount": amount},
    )
    return record


async def reduce(
    session: AsyncSession, *, hold_id: uuid.UUID, amount: int, actor: str = audit.SYSTEM_ACTOR
) -> Hold:
    """Lower a hold to ``amount`` (the winning price at award); the rest returns to the payer.

    A pending transfer cannot change, so the old one is voided and a new, smaller one
    reserves the new amount, both in this transaction.
    """
    record = await _locked_hold(session, hold_id)
    if record.status != HoldStatus.HELD.value:
        raise HoldResolvedError("This hold was already released or refunded.")
    if not 0 < amount <= record.amount:
        raise InvalidAmountError("A hold can only be lowered, to a positive amount.")
    if amount == record.amount:
        return record
    pending = await require_pending(session, record.pending_transfer_id)
    journal = await Journal.lock(session, [record.payer_account_id, record.escrow_account_id])
    voided = await journal.void(pending, memo="hold lowered")
    replacement = journal.transfer(
        debit_account_id=record.payer_account_id,
        credit_account_id=record.escrow_account_id,
        amount=amount,
        kind=TransferKind.ESCROW_HOLD.value,
        pending=True,
        timeout_at=pending.timeout_at,
        reference=(pending.reference_type or "hold", pending.reference_id or str(hold_id)),
    )
    await journal.flush()
    previous = record.amount
    record.amount = amount
    record.pending_transfer_id = replacement.id
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="escrow.reduce",
        transfers=(voided, replacement),
        details={"hold_id": str(hold_id), "from": previous, "to": amount},
    )
    return record


async def release(
    session: AsyncSession,
    *,
    hold_id: uuid.UUID,
    score: float,
    payee_agent_id: uuid.UUID,
    rates: FeeRates,
    actor: str = audit.SYSTEM_ACTOR,
) -> ReleaseOutcome:
    """Release the hold to the agent by validation score (see ``split`` for the table).

    A score under 0.60 releases nothing: the hold is left in place and the outcome says a
    dispute is required; the dispute's resolution then calls ``settle`` or ``refund``.
    """
    percent = release_percent(score)
    record = await _locked_hold(session, hold_id)
    if record.status != HoldStatus.HELD.value:
        raise HoldResolvedError("This hold was already released or refunded.")
    if percent == 0:
        return ReleaseOutcome(hold=record, settlement=None)
    released = record.amount * percent // 100
    if released == 0:
        # A hold of a unit or two can round down to nothing released: it all goes back.
        return await _release_nothing(session, record, rates=rates, actor=actor)
    return await _settle_locked(
        session,
        record,
        released=released,
        score=score,
        payee_agent_id=payee_agent_id,
        rates=rates,
        actor=actor,
    )


async def settle(
    session: AsyncSession,
    *,
    hold_id: uuid.UUID,
    released: int,
    payee_agent_id: uuid.UUID,
    rates: FeeRates,
    actor: str = audit.SYSTEM_ACTOR,
) -> ReleaseOutcome:
    """Release an explicit amount (a dispute's ruling); the rest returns to the payer."""
    record = await _locked_hold(session, hold_id)
    if record.status != HoldStatus.HELD.value:
        raise HoldResolvedError("This hold was already released or refunded.")
    if not 0 <= released <= record.amount:
        raise InvalidAmountError("The released amount lies between 0 and the hold.")
    if released == 0:
        return await _release_nothing(session, record, rates=rates, actor=actor)

    return await _settle_locked(
        session,
        record,
        released=released,
        score=None,
        payee_agent_id=payee_agent_id,
        rates=rates,
        actor=actor,
    )


async def _release_nothing(
    session: AsyncSession, record: Hold, *, rates: FeeRates, actor: str
) -> ReleaseOutcome:
    settlement = split_release(
        held=record.amount,
        released=0,
        platform_fee_bp=rates.platform_fee_bp,
        org_share_bp=rates.org_share_bp,
    )
    return ReleaseOutcome(
        hold=await _refund_locked(session, record, actor=actor), settlement=settlement
    )


async def _settle_locked(
    session: AsyncSession,
    record: Hold,
    *,
    released: int,
    score: float | None,
    payee_agent_id: uuid.UUID,
    rates: FeeRates,
    actor: str,
) -> ReleaseOutcome:
    agent = await session.get(Agent, payee_agent_id)
    if agent is None:
        raise HoldNotFoundError("The payee agent does not exist.")
    org_bp = rates.org_share_bp if agent.organization_id is not None else 0
    settlement = split_release(
        held=record.amount,
        released=released,
        platform_fee_bp=rates.platform_fee_bp,
        org_share_bp=org_bp,
    )
    agent_wallet = await accounts.agent_wallet(session, agent.id, record.currency)
    platform = await accounts.platform_account(session, record.currency)
    org_wallet = (
        await accounts.org_wallet(session, agent.organization_id, record.currency)
        if agent.organization_id is not None and settlement.org_share > 0
        else None
    )
    involved = [record.payer_account_id, record.escrow_account_id, agent_wallet, platform]
    if org_wallet is not None:
        involved.append(org_wallet)
    pending = await require_pending(session, record.pending_transfer_id)
    journal = await Journal.lock(session, involved)
    await journal.post(pending, amount=released, kind=TransferKind.ESCROW_RELEASE.value)
    reference = (pending.reference_type or "hold", pending.reference_id or str(record.id))
    payouts = [
        (agent_wallet, settlement.agent_share, TransferKind.AGENT_PAYMENT),
        (platform, settlement.platform_fee, TransferKind.PLATFORM_FEE),
        (org_wallet, settlement.org_share, TransferKind.ORG_SHARE),
    ]
    for destination, amount, kind in payouts:
        if destination is not None and amount > 0:
            journal.transfer(
                debit_account_id=record.escrow_account_id,
                credit_account_id=destination,
                amount=amount,
                kind=kind.value,
                reference=reference,
            )
    written = await journal.flush()
    record.status = HoldStatus.RELEASED.value
    record.payee_agent_id = agent.id
    record.score = score
    record.released = settlement.released
    record.refunded = settlement.refunded
    record.agent_share = settlement.agent_share
    record.platform_fee = settlement.platform_fee
    record.org_share = settlement.org_share
    record.resolved_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="escrow.release",
        transfers=written,
        details={
            "hold_id": str(record.id),
            "contract_id": _str(record.contract_id),
            "score": score,
            "held": settlement.held,
            "released": settlement.released,
            "refunded": settlement.refunded,
            "agent_share": settlement.agent_share,
            "platform_fee": settlement.platform_fee,
            "org_share": settlement.org_share,
        },
    )
    return ReleaseOutcome(hold=record, settlement=settlement, transfers=tuple(written))


async def refund(
    session: AsyncSession, *, hold_id: uuid.UUID, actor: str = audit.SYSTEM_ACTOR
) -> Hold:
    """Return the whole hold to the payer."""
    record = await _locked_hold(session, hold_id)
    if record.status != HoldStatus.HELD.value:
        raise HoldResolvedError("This hold was already released or refunded.")
    return await _refund_locked(session, record, actor=actor)


async def _refund_locked(session: AsyncSession, record: Hold, *, actor: str) -> Hold:
    pending = await require_pending(session, record.pending_transfer_id)
    journal = await Journal.lock(session, [record.payer_account_id, record.escrow_account_id])
    voided = await journal.void(pending)
    await journal.flush()
    record.status = HoldStatus.REFUNDED.value
    record.refunded = record.amount
    record.resolved_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="escrow.refund",
        transfers=(voided,),
        details={
            "hold_id": str(record.id),
            "contract_id": _str(record.contract_id),
            "amount": record.amount,
        },
    )
    return record


async def refund_expired(
    session: AsyncSession, *, now: datetime | None = None, limit: int = 500
) -> list[uuid.UUID]:
    """Refund holds whose timeout has passed; return their ids."""
    moment = now or utcnow()
    expired = (
        await session.scalars(
            select(Hold.id)
            .where(
                Hold.status == HoldStatus.HELD.value,
                Hold.expires_at.is_not(None),
                Hold.expires_at <= moment,
            )
            .order_by(Hold.expires_at)
            .limit(limit)
        )
    ).all()
    refunded: list[uuid.UUID] = []
    for hold_id in expired:
        try:
            await refund(session, hold_id=hold_id, actor="system:expiry")
        except HoldResolvedError:
            continue  # resolved by someone else since the query; refund wrote nothing
        refunded.append(hold_id)
    return refunded


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None
