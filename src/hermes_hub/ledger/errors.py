from __future__ import annotations

from hermes_hub.errors import ConflictError, HubError, NotFoundError


class AccountNotFoundError(NotFoundError):
    code = "account_not_found"


class TransferNotFoundError(NotFoundError):
    code = "transfer_not_found"


class HoldNotFoundError(NotFoundError):
    code = "hold_not_found"


class CheckoutNotFoundError(NotFoundError):
    code = "checkout_not_found"


class WithdrawalNotFoundError(NotFoundError):
    code = "withdrawal_not_found"


class InsufficientFundsError(ConflictError):
    code = "insufficient_funds"


class CurrencyMismatchError(ConflictError):
    code = "currency_mismatch"


class PendingTransferResolvedError(ConflictError):
    """A pending transfer (a hold) is posted or voided exactly once."""

    code = "pending_transfer_resolved"


class PendingTransferExpiredError(ConflictError):
    code = "pending_transfer_expired"


class HoldResolvedError(ConflictError):
    code = "hold_already_resolved"


class IdempotencyKeyReusedError(ConflictError):
    code = "idempotency_key_reused"


class InvalidAmountError(HubError):
    status = 422
    code = "invalid_amount"


class InvalidTransferError(HubError):
    status = 422
    code = "invalid_transfer"


class CheckoutClosedError(ConflictError):
    code = "checkout_closed"


class WithdrawalResolvedError(ConflictError):
    code = "withdrawal_already_resolved"


class WebhookSignatureError(HubError):
    status = 400
    code = "invalid_signature"


class WebhookTimestampError(HubError):
    status = 400
    code = "signature_expired"


class WebhookPayloadError(HubError):
    status = 400
    code = "invalid_event"


class ProviderUnavailableError(NotFoundError):
    code = "payment_provider_unavailable"
