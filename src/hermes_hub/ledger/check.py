"""``hermes ledger check``: rebuild every balance from the journal and verify the invariants.

The stored counters are a cache of the journal; this recomputes them with aggregate queries
(so it scales with the database, not with Python memory) and reports every disagreement:

1. each account's four counters equal the sums of its transfers;
2. per currency, credits and debits balance, posted and pending: no money was created or lost;
3. no account but the world account has spent more than it holds;
4. every post or void resolves a pending transfer between the same accounts, a post for at
   most the pending amount, a void for exactly it;
5. every hold agrees with its transfers: a held hold's pending transfer is unresolved and its
   escrow account reserves exactly the hold; a resolved hold's escrow account is empty,
   released + refunded = held and the agent, fee and organization shares add up to what
   was released;
6. withdrawals and completed checkouts agree with their transfers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.ledger.journal import ACCOUNTS, TRANSFERS
from hermes_hub.ledger.models import (
    Checkout,
    CheckoutStatus,
    Hold,
    HoldStatus,
    TransferPhase,
    Withdrawal,
    WithdrawalStatus,
)

POSTED_PHASES = (TransferPhase.POSTED.value, TransferPhase.POST_PENDING.value)


@dataclass
class LedgerReport:
    accounts: int = 0
    transfers: int = 0
    holds: int = 0
    totals: dict[str, dict[str, int]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "accounts": self.accounts,
            "transfers": self.transfers,
            "holds": self.holds,
            "totals": self.totals,
            "violations": self.violations,
        }


async def check_ledger(session: AsyncSession, *, max_violations: int = 200) -> LedgerReport:
    report = LedgerReport()
    await _check_counters(session, report)
    await _check_totals(session, report)
    await _check_resolutions(session, report)
    resolutions = await _resolution_by_pending(session)
    await _check_holds(session, report, resolutions)
    await _check_withdrawals_and_checkouts(session, report, resolutions)
    del report.violations[max_violations:]
    return report


def _journal_sums() -> Any:
    """Per account: the four counters as the journal says they should be."""
    resolution = TRANSFERS.alias("resolution")
    unresolved_pending = and_(
        TRANSFERS.c.phase == TransferPhase.PENDING.value, resolution.c.id.is_(None)
    )
    posted = TRANSFERS.c.phase.in_(POSTED_PHASES)
    base = select(
        TRANSFERS.c.debit_account_id,
        TRANSFERS.c.credit_account_id,
        case((posted, TRANSFERS.c.amount), else_=0).label("posted"),
        case((unresolved_pending, TRANSFERS.c.amount), else_=0).label("pending"),
    ).outerjoin(resolution, resolution.c.pending_id == TRANSFERS.c.id)
    sides = base.subquery()
    debit_side = select(
        sides.c.debit_account_id.label("account_id"),
        sides.c.pending.label("dp"),
        sides.c.posted.label("dq"),
        literal(0).label("cp"),
        literal(0).label("cq"),
    )
    credit_side = select(
        sides.c.credit_account_id.label("account_id"),
        literal(0).label("dp"),
        literal(0).label("dq"),
        sides.c.pending.label("cp"),
        sides.c.posted.label("cq"),
    )
    both = union_all(debit_side, credit_side).subquery()
    return (
        select(
            both.c.account_id,
            func.sum(both.c.dp).label("dp"),
            func.sum(both.c.dq).label("dq"),
            func.sum(both.c.cp).label("cp"),
            func.sum(both.c.cq).label("cq"),
        )
        .group_by(both.c.account_id)
        .subquery()
    )


async def _check_counters(session: AsyncSession, report: LedgerReport) -> None:
    sums = _journal_sums()
    rows = (
        await session.execute(
            select(
                ACCOUNTS,
                func.coalesce(sums.c.dp, 0).label("j_dp"),
                func.coalesce(sums.c.dq, 0).label("j_dq"),
                func.coalesce(sums.c.cp, 0).label("j_cp"),
                func.coalesce(sums.c.cq, 0).label("j_cq"),
            ).outerjoin(sums, sums.c.account_id == ACCOUNTS.c.id)
        )
    ).all()
    report.accounts = len(rows)
    report.transfers = await session.scalar(select(func.count()).select_from(TRANSFERS)) or 0
    for row in rows:
        stored = (row.debits_pending, row.debits_posted, row.credits_pending, row.credits_posted)
        journal = (int(row.j_dp), int(row.j_dq), int(row.j_cp), int(row.j_cq))
        if stored != journal:
            report.violations.append(
                f"account {row.owner_ref} ({row.id}): counters {stored} but the journal gives "
                f"{journal} (debits pending/posted, credits pending/posted)"
            )
        if not row.allow_negative and row.debits_pending + row.debits_posted > row.credits_posted:
            report.violations.append(f"account {row.owner_ref} ({row.id}) is overdrawn")
        if min(stored) < 0:
            report.violations.append(f"account {row.owner_ref} ({row.id}) has a negative counter")


async def _check_totals(session: AsyncSession, report: LedgerReport) -> None:
    rows = (
        await session.execute(
            select(
                ACCOUNTS.c.currency,
                func.sum(ACCOUNTS.c.credits_posted - ACCOUNTS.c.debits_posted).label("posted"),
                func.sum(ACCOUNTS.c.credits_pending - ACCOUNTS.c.debits_pending).label("pending"),
                func.sum(ACCOUNTS.c.credits_posted).label("volume"),
            ).group_by(ACCOUNTS.c.currency)
        )
    ).all()
    for row in rows:
        posted, pending = int(row.posted or 0), int(row.pending or 0)
        report.totals[row.currency] = {
            "net_posted": posted,
            "net_pending": pending,
            "credits_posted": int(row.volume or 0),
        }
        if posted != 0:
            report.violations.append(f"{row.currency}: posted balances sum to {posted}, not 0")
        if pending != 0:
            report.violations.append(f"{row.currency}: pending balances sum to {pending}, not 0")


async def _check_resolutions(session: AsyncSession, report: LedgerReport) -> None:
    pending = TRANSFERS.alias("pending")
    rows = (
        await session.execute(
            select(
                TRANSFERS.c.id,
                TRANSFERS.c.phase,
                TRANSFERS.c.amount,
                TRANSFERS.c.debit_account_id,
                TRANSFERS.c.credit_account_id,
                pending.c.phase.label("pending_phase"),
                pending.c.amount.label("pending_amount"),
                pending.c.debit_account_id.label("pending_debit"),
                pending.c.credit_account_id.label("pending_credit"),
            )
            .outerjoin(pending, pending.c.id == TRANSFERS.c.pending_id)
            .where(
                TRANSFERS.c.phase.in_(
                    (TransferPhase.POST_PENDING.value, TransferPhase.VOID_PENDING.value)
                )
            )
        )
    ).all()
    for row in rows:
        if row.pending_phase != TransferPhase.PENDING.value:
            report.violations.append(f"transfer {row.id} resolves something that is not pending")
            continue
        if (row.debit_account_id, row.credit_account_id) != (row.pending_debit, row.pending_credit):
            report.violations.append(f"transfer {row.id} resolves a hold between other accounts")
        if row.phase == TransferPhase.VOID_PENDING.value and row.amount != row.pending_amount:
            report.violations.append(f"void {row.id} does not return the whole pending amount")
        if row.phase == TransferPhase.POST_PENDING.value and row.amount > row.pending_amount:
            report.violations.append(f"post {row.id} posts more than was pending")


async def _resolution_by_pending(session: AsyncSession) -> dict[Any, tuple[str, int]]:
    rows = (
        await session.execute(
            select(TRANSFERS.c.pending_id, TRANSFERS.c.phase, TRANSFERS.c.amount).where(
                TRANSFERS.c.pending_id.is_not(None)
            )
        )
    ).all()
    return {row.pending_id: (row.phase, row.amount) for row in rows}


async def _check_holds(
    session: AsyncSession, report: LedgerReport, resolutions: dict[Any, tuple[str, int]]
) -> None:
    escrows = {
        row.id: row
        for row in (
            await session.execute(
                select(ACCOUNTS).where(
                    ACCOUNTS.c.id.in_(select(Hold.escrow_account_id).scalar_subquery())
                )
            )
        ).all()
    }
    paid_out: dict[Any, int] = defaultdict(int)
    for row in (
        await session.execute(
            select(TRANSFERS.c.debit_account_id, func.sum(TRANSFERS.c.amount))
            .where(
                TRANSFERS.c.debit_account_id.in_(select(Hold.escrow_account_id).scalar_subquery()),
                TRANSFERS.c.phase == TransferPhase.POSTED.value,
            )
            .group_by(TRANSFERS.c.debit_account_id)
        )
    ).all():
        paid_out[row[0]] = int(row[1])
    holds = (await session.scalars(select(Hold))).all()
    report.holds = len(holds)
    for hold in holds:
        name = f"hold {hold.id}"
        escrow = escrows.get(hold.escrow_account_id)
        resolution = resolutions.get(hold.pending_transfer_id)
        if escrow is None:
            report.violations.append(f"{name} has no escrow account")
            continue
        if hold.status == HoldStatus.HELD.value:
            if resolution is not None:
                report.violations.append(f"{name} is held but its pending transfer is resolved")
            if (escrow.credits_pending, escrow.credits_posted, escrow.debits_posted) != (
                hold.amount,
                0,
                0,
            ):
                report.violations.append(f"{name}: escrow does not reserve exactly the hold")
            continue
        if escrow.credits_pending or escrow.debits_pending:
            report.violations.append(f"{name} is resolved but escrow still has pending amounts")
        if escrow.credits_posted != escrow.debits_posted:
            report.violations.append(f"{name} is resolved but escrow still holds credits")
        if hold.released + hold.refunded != hold.amount:
            report.violations.append(f"{name}: released + refunded != held")
        if hold.status == HoldStatus.RELEASED.value:
            if resolution is None or resolution != (
                TransferPhase.POST_PENDING.value,
                hold.released,
            ):
                report.violations.append(f"{name}: release does not match its posted transfer")
            if hold.agent_share + hold.platform_fee + hold.org_share != hold.released:
                report.violations.append(f"{name}: shares do not add up to the release")
            if paid_out[hold.escrow_account_id] != hold.released:
                report.violations.append(f"{name}: escrow paid out other than the release")
        elif hold.status == HoldStatus.REFUNDED.value and (
            resolution is None or resolution[0] != TransferPhase.VOID_PENDING.value
        ):
            report.violations.append(f"{name}: refund does not match a void")


async def _check_withdrawals_and_checkouts(
    session: AsyncSession, report: LedgerReport, resolutions: dict[Any, tuple[str, int]]
) -> None:
    expected = {
        WithdrawalStatus.REQUESTED.value: None,
        WithdrawalStatus.APPROVED.value: TransferPhase.POST_PENDING.value,
        WithdrawalStatus.REJECTED.value: TransferPhase.VOID_PENDING.value,
    }
    for withdrawal in (await session.scalars(select(Withdrawal))).all():
        resolution = resolutions.get(withdrawal.pending_transfer_id)
        phase = resolution[0] if resolution else None
        if phase != expected[withdrawal.status]:
            report.violations.append(
                f"withdrawal {withdrawal.id} is {withdrawal.status} but its hold is "
                f"{phase or 'unresolved'}"
            )
    purchases = {
        row.id: row.amount
        for row in (
            await session.execute(
                select(TRANSFERS.c.id, TRANSFERS.c.amount).where(
                    TRANSFERS.c.id.in_(select(Checkout.transfer_id).scalar_subquery())
                )
            )
        ).all()
    }
    for checkout in (await session.scalars(select(Checkout))).all():
        paid = checkout.transfer_id is not None and checkout.transfer_id in purchases
        if (checkout.status == CheckoutStatus.COMPLETED.value) != paid:
            report.violations.append(f"checkout {checkout.id} is {checkout.status} but paid={paid}")
        elif paid and purchases[checkout.transfer_id] != checkout.amount:
            report.violations.append(f"checkout {checkout.id} was credited the wrong amount")
