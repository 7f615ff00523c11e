"""Wallets: whose account is which, balances, statements, grants and moves between wallets."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from hermes_hub.identity import service as identity
from hermes_hub.identity.models import OrgRole, User
from hermes_hub.identity.principal import Principal
from hermes_hub.kit.money import DEFAULT_CURRENCY
from hermes_hub.ledger import accounts, audit
from hermes_hub.ledger.errors import AccountNotFoundError, InvalidTransferError
from hermes_hub.ledger.journal import (
    ACCOUNTS,
    TRANSFERS,
    AccountState,
    Journal,
    TransferRecord,
    derive_id,
    replayed,
)
from hermes_hub.ledger.models import TransferKind, TransferPhase

ORG_MONEY_ROLES = frozenset({OrgRole.OWNER.value, OrgRole.ADMIN.value})


@dataclass(frozen=True)
class Balance:
    currency: str
    total: int
    held: int
    available: int
    incoming: int

    @classmethod
    def of(cls, state: AccountState | None, currency: str = DEFAULT_CURRENCY) -> Balance:
        if state is None:
            return cls(currency=currency, total=0, held=0, available=0, incoming=0)
        return cls(
            currency=state.currency,
            total=state.balance,
            held=state.debits_pending,
            available=state.available,
            incoming=state.credits_pending,
        )


# ---- whose wallet ----


def own_ref(principal: Principal) -> str:
    if principal.agent is not None:
        return accounts.agent_ref(principal.agent.id)
    if principal.user is not None:
        return accounts.user_ref(principal.user.id)
    raise AccountNotFoundError("No wallet for an anonymous caller.")


async def owned_agent_ref(session: AsyncSession, *, agent_id: uuid.UUID, owner: User) -> str:
    agent = await identity.get_owned_agent(session, agent_id=agent_id, owner=owner)
    return accounts.agent_ref(agent.id)


async def managed_org_ref(session: AsyncSession, *, org_id: uuid.UUID, user: User) -> str:
    await identity.require_org_role(session, org_id=org_id, user_id=user.id, roles=ORG_MONEY_ROLES)
    return accounts.org_ref(org_id)


_SELECTOR = re.compile(r"^(?:(wallet)|(agent|org):([0-9a-fA-F-]{36}))$")


async def controlled_account(session: AsyncSession, *, user: User, selector: str) -> uuid.UUID:
    """Open (if need be) and return an account the user controls, named by a selector.

    ``wallet`` is the user's own wallet, ``agent:<id>`` the wallet of an agent they own,
    ``org:<id>`` the wallet of an organization they own or administer. Anything else,
    including an agent or organization of someone else, is a 404.
    """
    match = _SELECTOR.match(selector)
    if match is None:
        raise InvalidTransferError(
            "Name a wallet as 'wallet', 'agent:<agent id>' or 'org:<organization id>'."
        )
    if match.group(1):
        return await accounts.user_wallet(session, user.id)
    try:
        target = uuid.UUID(match.group(3))
    except ValueError as exc:
        raise InvalidTransferError("That is not a valid id.") from exc
    if match.group(2) == "agent":
        await identity.get_owned_agent(session, agent_id=target, owner=user)
        return await accounts.agent_wallet(session, target)
    await identity.require_org_role(session, org_id=target, user_id=user.id, roles=ORG_MONEY_ROLES)
    return await accounts.org_wallet(session, target)


async def balance_of(session: AsyncSession, owner_ref: str) -> Balance:
    return Balance.of(await accounts.find_account(session, owner_ref))


# ---- statements ----


@dataclass(frozen=True)
class StatementLine:
    seq: int
    transfer: TransferRecord
    direction: str  # "in" or "out", seen from the statement's account
    counterparty_kind: str
    status: str  # posted, pending, voided, or posted for less than held


@dataclass(frozen=True)
class StatementFilter:
    kinds: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


def _statement_query(account_id: uuid.UUID, filters: StatementFilter) -> Select[tuple[object, ...]]:
    counterparty = ACCOUNTS.alias("counterparty")
    resolution = TRANSFERS.alias("resolution")
    conditions: list[ColumnElement[bool]] = [
        or_(TRANSFERS.c.debit_account_id == account_id, TRANSFERS.c.credit_account_id == account_id)
    ]
    if filters.kinds:
        conditions.append(TRANSFERS.c.kind.in_(filters.kinds))
    if filters.since is not None:
        conditions.append(TRANSFERS.c.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(TRANSFERS.c.created_at < filters.until)
    other_side = (
        (TRANSFERS.c.debit_account_id == account_id)
        & (counterparty.c.id == TRANSFERS.c.credit_account_id)
    ) | (
        (TRANSFERS.c.credit_account_id == account_id)
        & (counterparty.c.id == TRANSFERS.c.debit_account_id)
    )
    return (
        select(
            TRANSFERS,
            counterparty.c.kind.label("counterparty_kind"),
            resolution.c.phase.label("resolution_phase"),
        )
        .join(counterparty, other_side)
        .outerjoin(resolution, resolution.c.pending_id == TRANSFERS.c.id)
        .where(and_(*conditions))
    )


def _status(phase: str, resolution_phase: str | None) -> str:
    if phase != TransferPhase.PENDING.value:
        return {"void_pending": "voided"}.get(phase, "posted")
    if resolution_phase is None:
        return "pending"
    return (
        "resolved_posted"
        if resolution_phase == TransferPhase.POST_PENDING.value
        else "resolved_voided"
    )


async def statement(
    session: AsyncSession,
    *,
    owner_ref: str,
    filters: StatementFilter,
    before_seq: int | None,
    limit: int,
) -> tuple[list[StatementLine], int | None]:
    """A page of the account's journal, newest first, and the cursor of the next page."""
    account = await accounts.find_account(session, owner_ref)
    if account is None:
        return [], None
    query = _statement_query(account.id, filters)
    if before_seq is not None:
        query = query.where(TRANSFERS.c.seq < before_seq)
    rows = (await session.execute(query.order_by(TRANSFERS.c.seq.desc()).limit(limit + 1))).all()
    lines = [
        StatementLine(
            seq=row.seq,
            transfer=TransferRecord.from_row(row),
            direction="out" if row.debit_account_id == account.id else "in",
            counterparty_kind=row.counterparty_kind,
            status=_status(row.phase, row.resolution_phase),
        )
        for row in rows[:limit]
    ]
    next_cursor = lines[-1].seq if len(rows) > limit and lines else None
    return lines, next_cursor


# ---- moving money ----


async def grant(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    amount: int,
    reason: str,
    actor: str,
    idempotency_key: str | None = None,
) -> TransferRecord:
    """The ``manual`` payment provider: an administrator credits a user's wallet."""
    wallet = await accounts.user_wallet(session, user_id)
    world = await accounts.world_account(session)
    transfer_id = derive_id(f"grant:{actor}", idempotency_key) if idempotency_key else None
    return await _single(
        session,
        debit=world,
        credit=wallet,
        amount=amount,
        kind=TransferKind.GRANT,
        transfer_id=transfer_id,
        memo=reason,
        actor=actor,
        action="grant",
        details={"user_id": str(user_id), "reason": reason, "provider": "manual"},
    )


async def move(
    session: AsyncSession,
    *,
    debit: uuid.UUID,
    credit: uuid.UUID,
    amount: int,
    memo: str,
    actor: str,
    idempotency_key: str | None = None,
) -> TransferRecord:
    """Move credits between two wallets the caller controls."""
    if debit == credit:
        raise InvalidTransferError("Source and destination are the same wallet.")
    transfer_id = derive_id(f"move:{actor}", idempotency_key) if idempotency_key else None
    return await _single(
        session,
        debit=debit,
        credit=credit,
        amount=amount,
        kind=TransferKind.INTERNAL,
        transfer_id=transfer_id,
        memo=memo,
        actor=actor,
        action="transfer",
        details={},
    )


async def _single(
    session: AsyncSession,
    *,
    debit: uuid.UUID,
    credit: uuid.UUID,
    amount: int,
    kind: TransferKind,
    transfer_id: uuid.UUID | None,
    memo: str,
    actor: str,
    action: str,
    details: dict[str, object],
) -> TransferRecord:
    if transfer_id is not None:
        currency = (await accounts.read_account(session, debit)).currency
        wanted = TransferRecord(
            id=transfer_id,
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount,
            currency=currency,
            kind=kind.value,
            phase=TransferPhase.POSTED.value,
            memo=memo,
        )
        existing = await replayed(session, wanted)
        if existing is not None:
            return existing
    journal = await Journal.lock(session, [debit, credit])
    record = journal.transfer(
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        kind=kind.value,
        transfer_id=transfer_id,
        memo=memo,
    )
    written = await journal.flush()
    await audit.record(
        session,
        actor=actor,
        action=action,
        transfers=written,
        details={**details, "amount": amount},
    )
    return record
