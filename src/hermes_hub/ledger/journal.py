"""The double-entry core: lock accounts, apply transfers to their counters, append the journal.

Modelled on TigerBeetle. Every account keeps four counters (debits/credits, pending/posted);
a transfer moves ``amount`` from a debit account to a credit account and changes the counters
of both, in the same transaction as the row that records it. A two-phase transfer first
*reserves* the amount (the pending counters), then is either *posted* (in full or for less, the
rest returning to the debit account) or *voided*, exactly once.

A ``Journal`` locks every account an operation touches up front (``SELECT ... FOR UPDATE`` in
ascending id order on PostgreSQL, so two operations can never wait on each other in a cycle;
SQLite writers already hold the database's write lock), checks each change in memory, and
writes the new counters and the transfer rows in one batch. If any check fails nothing has
been written. The CHECK constraints on the accounts table back the in-memory checks up.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.kit.time import utcnow
from hermes_hub.ledger.errors import (
    AccountNotFoundError,
    CurrencyMismatchError,
    IdempotencyKeyReusedError,
    InsufficientFundsError,
    InvalidTransferError,
    PendingTransferExpiredError,
    PendingTransferResolvedError,
    TransferNotFoundError,
)
from hermes_hub.ledger.models import Account, Transfer, TransferPhase

ACCOUNTS = cast(Table, Account.__table__)
TRANSFERS = cast(Table, Transfer.__table__)
_ID_NAMESPACE = uuid.UUID("5f0c2a8e-6d1b-4c33-9a57-8f1f3d0e2b61")


# The hot path's statements are built once, not per call: building a SQLAlchemy statement
# costs more CPU than sending it (bench/ledger.py measured 30% of a transfer).
_LOCK_ACCOUNTS = (
    select(ACCOUNTS)
    .where(ACCOUNTS.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(ACCOUNTS.c.id)
    # FOR NO KEY UPDATE: counters change, keys never do. A plain FOR UPDATE would also
    # conflict with the key-share lock a row referencing the account takes (a contract's
    # payer_account_id), deadlocking two contracts posted by one payer at once.
    .with_for_update(key_share=True)
)
_WRITE_COUNTERS = (
    update(ACCOUNTS)
    .where(ACCOUNTS.c.id == bindparam("account"))
    .values(
        debits_pending=bindparam("dp"),
        debits_posted=bindparam("dq"),
        credits_pending=bindparam("cp"),
        credits_posted=bindparam("cq"),
    )
)
_APPEND_TRANSFERS = insert(TRANSFERS)
_TRANSFER_BY_ID = select(TRANSFERS).where(TRANSFERS.c.id == bindparam("transfer_id"))
_RESOLUTION_OF = select(TRANSFERS).where(TRANSFERS.c.pending_id == bindparam("pending_id"))


def derive_id(scope: str, key: str) -> uuid.UUID:
    """A stable transfer/resource id from a caller's idempotency key, namespaced per scope."""
    return uuid.uuid5(_ID_NAMESPACE, f"{scope}\n{key}")


@dataclass
class AccountState:
    id: uuid.UUID
    kind: str
    currency: str
    owner_ref: str
    allow_negative: bool
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    @property
    def balance(self) -> int:
        """Posted credits minus posted debits: what the account owns."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What the account may still spend: its balance less the amounts it holds."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @classmethod
    def from_row(cls, row: Row[Any] | Mapping[str, Any]) -> AccountState:
        data = row._mapping if isinstance(row, Row) else row
        return cls(
            id=data["id"],
            kind=data["kind"],
            currency=data["currency"],
            owner_ref=data["owner_ref"],
            allow_negative=data["allow_negative"],
            debits_pending=data["debits_pending"],
            debits_posted=data["debits_posted"],
            credits_pending=data["credits_pending"],
            credits_posted=data["credits_posted"],
        )


@dataclass(frozen=True)
class TransferRecord:
    id: uuid.UUID
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    currency: str
    kind: str
    phase: str
    pending_id: uuid.UUID | None = None
    timeout_at: datetime | None = None
    reference_type: str | None = None
    reference_id: str | None = None
    memo: str = ""
    created_at: datetime = field(default_factory=utcnow)

    @classmethod
    def from_row(cls, row: Row[Any]) -> TransferRecord:
        data = row._mapping
        return cls(**{name: data[name] for name in _RECORD_FIELDS})

    def same_request(self, other: TransferRecord) -> bool:
        """Whether ``other`` asks for the same movement (ignores timestamps)."""
        return all(
            getattr(self, name) == getattr(other, name)
            for name in _RECORD_FIELDS
            if name not in {"created_at", "timeout_at"}
        )


_RECORD_FIELDS = (
    "id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "currency",
    "kind",
    "phase",
    "pending_id",
    "timeout_at",
    "reference_type",
    "reference_id",
    "memo",
    "created_at",
)


async def load_transfer(session: AsyncSession, transfer_id: uuid.UUID) -> TransferRecord | None:
    row = (await session.execute(_TRANSFER_BY_ID, {"transfer_id": transfer_id})).first()
    return TransferRecord.from_row(row) if row is not None else None


async def find_resolution(session: AsyncSession, pending_id: uuid.UUID) -> TransferRecord | None:
    """The post or void of a pending transfer, if it has one."""
    row = (await session.execute(_RESOLUTION_OF, {"pending_id": pending_id})).first()
    return TransferRecord.from_row(row) if row is not None else None


async def replayed(session: AsyncSession, wanted: TransferRecord) -> TransferRecord | None:
    """Return the stored transfer if ``wanted.id`` was already used for the same movement.

    A transfer id (usually derived from an idempotency key) may be reused only to ask for
    the very same movement again; that returns the original. Reusing it for anything else
    is a conflict.
    """
    existing = await load_transfer(session, wanted.id)
    if existing is None:
        return None
    if not existing.same_request(replace(wanted, created_at=existing.created_at)):
        raise IdempotencyKeyReusedError(
            "This idempotency key was already used for a different transfer."
        )
    return existing


class Journal:
    """The accounts of one operation, locked, and the transfers it will append."""

    def __init__(self, session: AsyncSession, accounts: dict[uuid.UUID, AccountState]) -> None:
        self._session = session
        self._accounts = accounts
        self._dirty: set[uuid.UUID] = set()
        self._pending_rows: list[TransferRecord] = []
        self._resolved_here: set[uuid.UUID] = set()

    @classmethod
    async def lock(cls, session: AsyncSession, account_ids: Iterable[uuid.UUID]) -> Journal:
        wanted = set(account_ids)
        rows = (await session.execute(_LOCK_ACCOUNTS, {"ids": sorted(wanted)})).all()
        accounts = {row.id: AccountState.from_row(row) for row in rows}
        missing = wanted - accounts.keys()
        if missing:
            raise AccountNotFoundError("One of the accounts of this transfer does not exist.")
        return cls(session, accounts)

    def account(self, account_id: uuid.UUID) -> AccountState:
        try:
            return self._accounts[account_id]
        except KeyError:
            # A programming error: the operation forgot to lock an account it touches.
            raise RuntimeError(f"account {account_id} was not locked by this journal") from None

    # ---- movements ----

    def transfer(
        self,
        *,
        debit_account_id: uuid.UUID,
        credit_account_id: uuid.UUID,
        amount: int,
        kind: str,
        transfer_id: uuid.UUID | None = None,
        pending: bool = False,
        timeout_at: datetime | None = None,
        reference: tuple[str, str] | None = None,
        memo: str = "",
    ) -> TransferRecord:
        """Move ``amount`` now (posted) or reserve it (pending) from debit to credit."""
        debit = self.account(debit_account_id)
        credit = self.account(credit_account_id)
        if debit.id == credit.id:
            raise InvalidTransferError("A transfer needs two different accounts.")
        if amount <= 0:
            raise InvalidTransferError("A transfer amount must be positive.")
        if debit.currency != credit.currency:
            raise CurrencyMismatchError("Both accounts of a transfer must use the same currency.")
        if not debit.allow_negative and debit.available < amount:
            raise InsufficientFundsError(
                "The account does not hold enough credits for this.",
                extra={"available": debit.available, "required": amount},
            )
        if pending:
            debit.debits_pending += amount
            credit.credits_pending += amount
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        record = TransferRecord(
            id=transfer_id or uuid.uuid4(),
            debit_account_id=debit.id,
            credit_account_id=credit.id,
            amount=amount,
            currency=debit.currency,
            kind=kind,
            phase=(TransferPhase.PENDING if pending else TransferPhase.POSTED).value,
            timeout_at=timeout_at if pending else None,
            reference_type=reference[0] if reference else None,
            reference_id=reference[1] if reference else None,
            memo=memo,
        )
        return self._append(record, debit, credit)

    async def post(
        self,
        pending: TransferRecord,
        *,
        amount: int | None = None,
        kind: str | None = None,
        transfer_id: uuid.UUID | None = None,
        memo: str = "",
    ) -> TransferRecord:
        """Post a pending transfer for ``amount`` (default: all of it); the rest is released."""
        posted = pending.amount if amount is None else amount
        if not 0 < posted <= pending.amount:
            raise InvalidTransferError("A post must be positive and at most the pending amount.")
        await self._claim_resolution(pending, allow_expired=False)
        debit = self.account(pending.debit_account_id)
        credit = self.account(pending.credit_account_id)
        debit.debits_pending -= pending.amount
        credit.credits_pending -= pending.amount
        debit.debits_posted += posted
        credit.credits_posted += posted
        record = TransferRecord(
            id=transfer_id or uuid.uuid4(),
            debit_account_id=debit.id,
            credit_account_id=credit.id,
            amount=posted,
            currency=pending.currency,
            kind=kind or pending.kind,
            phase=TransferPhase.POST_PENDING.value,
            pending_id=pending.id,
            reference_type=pending.reference_type,
            reference_id=pending.reference_id,
            memo=memo,
        )
        return self._append(record, debit, credit)

    async def void(
        self,
        pending: TransferRecord,
        *,
        kind: str | None = None,
        transfer_id: uuid.UUID | None = None,
        memo: str = "",
    ) -> TransferRecord:
        """Cancel a pending transfer: the reserved amount returns to the debit account."""
        await self._claim_resolution(pending, allow_expired=True)
        debit = self.account(pending.debit_account_id)
        credit = self.account(pending.credit_account_id)
        debit.debits_pending -= pending.amount
        credit.credits_pending -= pending.amount
        record = TransferRecord(
            id=transfer_id or uuid.uuid4(),
            debit_account_id=debit.id,
            credit_account_id=credit.id,
            amount=pending.amount,
            currency=pending.currency,
            kind=kind or pending.kind,
            phase=TransferPhase.VOID_PENDING.value,
            pending_id=pending.id,
            reference_type=pending.reference_type,
            reference_id=pending.reference_id,
            memo=memo,
        )
        return self._append(record, debit, credit)

    async def _claim_resolution(self, pending: TransferRecord, *, allow_expired: bool) -> None:
        if pending.phase != TransferPhase.PENDING.value:
            raise InvalidTransferError("Only a pending transfer can be posted or voided.")
        if pending.id in self._resolved_here or await find_resolution(self._session, pending.id):
            raise PendingTransferResolvedError("This hold was already posted or voided.")
        if not allow_expired and pending.timeout_at is not None and pending.timeout_at <= utcnow():
            raise PendingTransferExpiredError("This hold timed out; it can only be voided.")
        self._resolved_here.add(pending.id)

    def _append(
        self, record: TransferRecord, debit: AccountState, credit: AccountState
    ) -> TransferRecord:
        self._dirty.update((debit.id, credit.id))
        self._pending_rows.append(record)
        return record

    # ---- persistence ----

    async def flush(self) -> list[TransferRecord]:
        """Write the new counters and append the transfers; return what was appended."""
        written = list(self._pending_rows)
        if self._dirty:
            await self._session.execute(
                _WRITE_COUNTERS,
                [
                    {
                        "account": state.id,
                        "dp": state.debits_pending,
                        "dq": state.debits_posted,
                        "cp": state.credits_pending,
                        "cq": state.credits_posted,
                    }
                    for state in (self._accounts[account] for account in sorted(self._dirty))
                ],
            )
        if written:
            await self._session.execute(
                _APPEND_TRANSFERS,
                [{name: getattr(record, name) for name in _RECORD_FIELDS} for record in written],
            )
        self._dirty.clear()
        self._pending_rows.clear()
        return written


async def require_pending(session: AsyncSession, transfer_id: uuid.UUID) -> TransferRecord:
    pending = await load_transfer(session, transfer_id)
    if pending is None:
        raise TransferNotFoundError("No such pending transfer.")
    return pending
