"""Ledger tables: accounts with TigerBeetle-style counters, an append-only transfer journal,
escrow holds, payment checkouts and events, withdrawals and the money audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hermes_hub.db.base import Base, UUIDPrimaryKey
from hermes_hub.kit.money import DEFAULT_CURRENCY
from hermes_hub.kit.time import utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
SequenceKey = BigInteger().with_variant(Integer(), "sqlite")


class AccountKind(StrEnum):
    USER_WALLET = "user_wallet"
    AGENT_WALLET = "agent_wallet"
    ORG_WALLET = "org_wallet"
    ESCROW = "escrow"
    PLATFORM_REVENUE = "platform_revenue"
    WORLD = "world"


class TransferPhase(StrEnum):
    """A single-phase transfer is POSTED; a two-phase one is PENDING, then POST or VOID."""

    POSTED = "posted"
    PENDING = "pending"
    POST_PENDING = "post_pending"
    VOID_PENDING = "void_pending"


class TransferKind(StrEnum):
    PURCHASE = "purchase"
    GRANT = "grant"
    INTERNAL = "internal"
    ESCROW_HOLD = "escrow_hold"
    ESCROW_RELEASE = "escrow_release"
    AGENT_PAYMENT = "agent_payment"
    PLATFORM_FEE = "platform_fee"
    ORG_SHARE = "org_share"
    WITHDRAWAL = "withdrawal"


class HoldStatus(StrEnum):
    HELD = "held"
    RELEASED = "released"
    REFUNDED = "refunded"


class CheckoutStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    FAILED = "failed"


class WithdrawalStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"


class Account(UUIDPrimaryKey, Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("currency", "owner_ref", name="uq_ledger_accounts_currency_owner_ref"),
        CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 "
            "AND credits_pending >= 0 AND credits_posted >= 0",
            name="counters_non_negative",
        ),
        # The one rule that makes money impossible to overspend, kept by the database itself.
        CheckConstraint(
            "allow_negative OR debits_pending + debits_posted <= credits_posted",
            name="debits_within_credits",
        ),
    )

    kind: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(8), default=DEFAULT_CURRENCY)
    # "user:<id>", "agent:<id>", "org:<id>", "escrow:<hold id>", "platform" or "world".
    owner_ref: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agents.id", ondelete="RESTRICT"), index=True
    )
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    allow_negative: Mapped[bool] = mapped_column(Boolean, default=False)
    debits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Transfer(Base):
    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="distinct_accounts"),
        Index("ix_ledger_transfers_debit_account_id_seq", "debit_account_id", "seq"),
        Index("ix_ledger_transfers_credit_account_id_seq", "credit_account_id", "seq"),
        Index("ix_ledger_transfers_reference", "reference_type", "reference_id"),
    )

    # Commit order is not id order; ``seq`` gives the journal a total order for cursors.
    seq: Mapped[int] = mapped_column(SequenceKey, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    debit_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT")
    )
    credit_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT")
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(32))
    phase: Mapped[str] = mapped_column(String(16))
    # A post or void names the pending transfer it resolves; UNIQUE makes that happen once.
    pending_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ledger_transfers.id", ondelete="RESTRICT"), unique=True
    )
    timeout_at: Mapped[datetime | None]
    reference_type: Mapped[str | None] = mapped_column(String(32))
    reference_id: Mapped[str | None] = mapped_column(String(64))
    memo: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Hold(UUIDPrimaryKey, Base):
    __tablename__ = "ledger_holds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "status <> 'released' OR released + refunded = amount", name="released_balances"
        ),
        CheckConstraint(
            "status <> 'released' OR agent_share + platform_fee + org_share = released",
            name="shares_balance",
        ),
        CheckConstraint(
            "status <> 'refunded' OR (released = 0 AND refunded = amount)", name="refund_whole"
        ),
    )

    payer_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT"), index=True
    )
    escrow_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT"), unique=True
    )
    pending_transfer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_transfers.id", ondelete="RESTRICT")
    )
    contract_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    currency: Mapped[str] = mapped_column(String(8))
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=HoldStatus.HELD.value)
    payee_agent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agents.id", ondelete="RESTRICT")
    )
    score: Mapped[float | None]
    released: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    agent_share: Mapped[int] = mapped_column(BigInteger, default=0)
    platform_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    org_share: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class Checkout(UUIDPrimaryKey, Base):
    __tablename__ = "payment_checkouts"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    provider: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT")
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=CheckoutStatus.OPEN.value)
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ledger_transfers.id", ondelete="RESTRICT")
    )
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class PaymentEvent(Base):
    """Each provider event id is processed once: the primary key refuses a second delivery."""

    __tablename__ = "payment_events"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    checkout_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payment_checkouts.id", ondelete="RESTRICT")
    )
    outcome: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Withdrawal(UUIDPrimaryKey, Base):
    __tablename__ = "ledger_withdrawals"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_ledger_withdrawals_status_created_at", "status", "created_at"),
    )

    requested_by_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT")
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    destination: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=WithdrawalStatus.REQUESTED.value)
    pending_transfer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_transfers.id", ondelete="RESTRICT")
    )
    resolved_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT")
    )
    resolution_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Who moved money, what moved, when, and under which request id. Append-only."""

    __tablename__ = "ledger_audit_log"

    seq: Mapped[int] = mapped_column(SequenceKey, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    transfer_ids: Mapped[list[str]] = mapped_column(default=list)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
