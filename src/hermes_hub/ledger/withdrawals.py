"""Payouts: a request holds the credits; an administrator approves (they leave the hub through
the world account) or rejects (the hold is voided and the credits are available again)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.identity.models import User
from hermes_hub.kit.time import utcnow
from hermes_hub.ledger import accounts, audit
from hermes_hub.ledger.errors import (
    IdempotencyKeyReusedError,
    InvalidAmountError,
    WithdrawalNotFoundError,
    WithdrawalResolvedError,
)
from hermes_hub.ledger.journal import Journal, derive_id, require_pending
from hermes_hub.ledger.models import TransferKind, Withdrawal, WithdrawalStatus


async def request_withdrawal(
    session: AsyncSession,
    *,
    user: User,
    account_id: uuid.UUID,
    amount: int,
    minimum: int,
    destination: str,
    idempotency_key: str | None,
) -> Withdrawal:
    if amount < minimum:
        raise InvalidAmountError(
            "This is below the minimum withdrawal.",
            code="amount_below_minimum",
            extra={"minimum_units": minimum},
        )
    withdrawal_id = (
        derive_id(f"withdrawal:{user.id}", idempotency_key) if idempotency_key else uuid.uuid4()
    )
    existing = await session.get(Withdrawal, withdrawal_id)
    if existing is not None:
        if (existing.account_id, existing.amount, existing.destination) != (
            account_id,
            amount,
            destination,
        ):
            raise IdempotencyKeyReusedError(
                "This idempotency key was already used for a different withdrawal."
            )
        return existing
    source = await accounts.read_account(session, account_id)
    world = await accounts.world_account(session, source.currency)
    journal = await Journal.lock(session, [account_id, world])
    pending = journal.transfer(
        debit_account_id=account_id,
        credit_account_id=world,
        amount=amount,
        kind=TransferKind.WITHDRAWAL.value,
        pending=True,
        reference=("withdrawal", str(withdrawal_id)),
        memo=destination,
    )
    written = await journal.flush()
    withdrawal = Withdrawal(
        id=withdrawal_id,
        requested_by_id=user.id,
        account_id=account_id,
        amount=amount,
        currency=source.currency,
        destination=destination,
        status=WithdrawalStatus.REQUESTED.value,
        pending_transfer_id=pending.id,
    )
    session.add(withdrawal)
    await session.flush()
    await audit.record(
        session,
        actor=f"user:{user.id}",
        action="withdrawal.request",
        transfers=written,
        details={"withdrawal_id": str(withdrawal_id), "amount": amount},
    )
    return withdrawal


async def resolve_withdrawal(
    session: AsyncSession, *, withdrawal_id: uuid.UUID, admin: User, approve: bool, note: str
) -> Withdrawal:
    withdrawal = await session.scalar(
        select(Withdrawal)
        .where(Withdrawal.id == withdrawal_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if withdrawal is None:
        raise WithdrawalNotFoundError("No such withdrawal.")
    if withdrawal.status != WithdrawalStatus.REQUESTED.value:
        raise WithdrawalResolvedError(f"This withdrawal was already {withdrawal.status}.")
    pending = await require_pending(session, withdrawal.pending_transfer_id)
    journal = await Journal.lock(session, [pending.debit_account_id, pending.credit_account_id])
    if approve:
        await journal.post(pending, memo=note)
    else:
        await journal.void(pending, memo=note)
    written = await journal.flush()
    withdrawal.status = (WithdrawalStatus.APPROVED if approve else WithdrawalStatus.REJECTED).value
    withdrawal.resolved_by_id = admin.id
    withdrawal.resolution_note = note
    withdrawal.resolved_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        actor=f"user:{admin.id}",
        action="withdrawal.approve" if approve else "withdrawal.reject",
        transfers=written,
        details={"withdrawal_id": str(withdrawal.id), "amount": withdrawal.amount, "note": note},
    )
    return withdrawal


async def list_withdrawals(
    session: AsyncSession,
    *,
    requested_by: uuid.UUID | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Withdrawal], int]:
    conditions = []
    if requested_by is not None:
        conditions.append(Withdrawal.requested_by_id == requested_by)
    if status is not None:
        conditions.append(Withdrawal.status == status)
    total = await session.scalar(select(func.count()).select_from(Withdrawal).where(*conditions))
    rows = await session.scalars(
        select(Withdrawal)
        .where(*conditions)
        .order_by(Withdrawal.created_at.desc(), Withdrawal.id)
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), total or 0
