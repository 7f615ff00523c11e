from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import EmailStr, Field, model_validator

from hermes_hub.kit.money import CreditAmount, Credits
from hermes_hub.kit.schemas import InputModel, OutputModel
from hermes_hub.ledger.models import Checkout, Withdrawal
from hermes_hub.ledger.wallets import Balance, StatementLine

WALLET_SELECTOR_PATTERN = r"^(wallet|agent:[0-9a-fA-F-]{36}|org:[0-9a-fA-F-]{36})$"
WALLET_SELECTOR_HELP = (
    "'wallet' (yours), 'agent:<id>' (an agent you own) or 'org:<id>' (an org you administer)."
)


class WalletOut(OutputModel):
    currency: str
    available: Credits = Field(description="What can be spent now: total less held.")
    held: Credits = Field(description="Reserved for open contracts and pending withdrawals.")
    total: Credits = Field(description="Everything the wallet owns, held or not.")
    incoming: Credits = Field(description="Credits on their way in, not yet spendable.")
    available_units: int
    held_units: int
    total_units: int

    @classmethod
    def of(cls, balance: Balance) -> WalletOut:
        return cls(
            currency=balance.currency,
            available=balance.available,
            held=balance.held,
            total=balance.total,
            incoming=balance.incoming,
            available_units=balance.available,
            held_units=balance.held,
            total_units=balance.total,
        )


class TransactionOut(OutputModel):
    id: uuid.UUID
    kind: str
    phase: str = Field(description="posted, pending, post_pending or void_pending.")
    status: str = Field(
        description="posted; pending (still held); resolved_posted or resolved_voided for a "
        "hold that has since been resolved; voided."
    )
    direction: str = Field(description="'in' or 'out', seen from this wallet.")
    amount: Credits
    amount_units: int
    currency: str
    counterparty_kind: str
    pending_id: uuid.UUID | None
    reference_type: str | None
    reference_id: str | None
    memo: str
    created_at: datetime

    @classmethod
    def of(cls, line: StatementLine) -> TransactionOut:
        transfer = line.transfer
        return cls(
            id=transfer.id,
            kind=transfer.kind,
            phase=transfer.phase,
            status=line.status,
            direction=line.direction,
            amount=transfer.amount,
            amount_units=transfer.amount,
            currency=transfer.currency,
            counterparty_kind=line.counterparty_kind,
            pending_id=transfer.pending_id,
            reference_type=transfer.reference_type,
            reference_id=transfer.reference_id,
            memo=transfer.memo,
            created_at=transfer.created_at,
        )


class TransactionPage(OutputModel):
    items: list[TransactionOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page.")


class TransferRequest(InputModel):
    amount: CreditAmount
    destination: str = Field(pattern=WALLET_SELECTOR_PATTERN, description=WALLET_SELECTOR_HELP)
    source: str = Field(
        default="wallet", pattern=WALLET_SELECTOR_PATTERN, description=WALLET_SELECTOR_HELP
    )
    memo: str = Field(default="", max_length=500)


class TransferOut(OutputModel):
    id: uuid.UUID
    amount: Credits
    amount_units: int
    kind: str
    memo: str
    created_at: datetime


class PurchaseRequest(InputModel):
    amount: CreditAmount
    provider: str = Field(default="sandbox", pattern=r"^[a-z0-9_-]{1,32}$")


class CheckoutOut(OutputModel):
    id: uuid.UUID
    provider: str
    status: str
    amount: Credits
    amount_units: int
    currency: str
    checkout_url: str | None
    failure_reason: str | None
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, checkout: Checkout, checkout_url: str | None) -> CheckoutOut:
        return cls(
            id=checkout.id,
            provider=checkout.provider,
            status=checkout.status,
            amount=checkout.amount,
            amount_units=checkout.amount,
            currency=checkout.currency,
            checkout_url=checkout_url if checkout.status == "open" else None,
            failure_reason=checkout.failure_reason,
            created_at=checkout.created_at,
            expires_at=checkout.expires_at,
            completed_at=checkout.completed_at,
        )


class SandboxPayment(InputModel):
    card_number: str = Field(min_length=12, max_length=23, pattern=r"^[0-9 -]+$")


class WebhookAck(OutputModel):
    received: bool
    event_id: str
    outcome: str


class WithdrawalRequest(InputModel):
    amount: CreditAmount
    source: str = Field(
        default="wallet", pattern=WALLET_SELECTOR_PATTERN, description=WALLET_SELECTOR_HELP
    )
    destination: str = Field(
        min_length=1, max_length=500, description="Where the payout should go (e.g. an IBAN)."
    )


class WithdrawalOut(OutputModel):
    id: uuid.UUID
    status: str
    amount: Credits
    amount_units: int
    currency: str
    destination: str
    requested_by_id: uuid.UUID
    resolution_note: str
    created_at: datetime
    resolved_at: datetime | None

    @classmethod
    def of(cls, withdrawal: Withdrawal) -> WithdrawalOut:
        return cls(
            id=withdrawal.id,
            status=withdrawal.status,
            amount=withdrawal.amount,
            amount_units=withdrawal.amount,
            currency=withdrawal.currency,
            destination=withdrawal.destination,
            requested_by_id=withdrawal.requested_by_id,
            resolution_note=withdrawal.resolution_note,
            created_at=withdrawal.created_at,
            resolved_at=withdrawal.resolved_at,
        )


class WithdrawalDecision(InputModel):
    note: str = Field(default="", max_length=500)


class GrantRequest(InputModel):
    amount: CreditAmount
    reason: str = Field(min_length=3, max_length=500)
    email: EmailStr | None = None
    user_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _one_recipient(self) -> GrantRequest:
        if (self.email is None) == (self.user_id is None):
            raise ValueError("name the recipient by exactly one of email or user_id")
        return self


class GrantOut(OutputModel):
    transfer_id: uuid.UUID
    user_id: uuid.UUID
    amount: Credits
    amount_units: int
    reason: str
    wallet: WalletOut


class LedgerCheckOut(OutputModel):
    ok: bool
    accounts: int
    transfers: int
    holds: int
    totals: dict[str, dict[str, int]]
    violations: list[str]


class AuditEntryOut(OutputModel):
    seq: int
    actor: str
    action: str
    request_id: str | None
    transfer_ids: list[str]
    details: dict[str, Any]
    created_at: datetime


class AuditPage(OutputModel):
    items: list[AuditEntryOut]
    next_cursor: str | None
