"""Buying credits: payment providers, checkout sessions and their webhooks.

A provider turns real money into credits. The hub creates a *checkout* (an amount for a
user); the provider takes the buyer through payment and then tells the hub the outcome with
a signed webhook event. Only a verified event moves credits, each event id is processed once,
and each checkout completes at most once (its purchase transfer id is derived from the
checkout id, so even two different events for one checkout cannot pay twice).

Adding a real provider (Stripe, say) means writing one class with the ``PaymentProvider``
methods: ``checkout_url`` returns the provider's hosted checkout page for our checkout id
(created through the provider's API with the checkout id as its reference), and
``verify_event`` checks the provider's signature header and maps its event to a
``ProviderEvent``. Register it in ``build_providers``; the webhook route, idempotency and
ledger postings are shared.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.config import Settings
from hermes_hub.identity.models import User
from hermes_hub.kit.time import utcnow
from hermes_hub.ledger import accounts, audit
from hermes_hub.ledger.errors import (
    CheckoutClosedError,
    CheckoutNotFoundError,
    IdempotencyKeyReusedError,
    ProviderUnavailableError,
    WebhookPayloadError,
    WebhookSignatureError,
    WebhookTimestampError,
)
from hermes_hub.ledger.journal import Journal, derive_id
from hermes_hub.ledger.models import (
    Checkout,
    CheckoutStatus,
    PaymentEvent,
    TransferKind,
)

SIGNATURE_HEADER = "hermes-signature"
EVENT_COMPLETED = "checkout.completed"
EVENT_FAILED = "checkout.failed"
SANDBOX_CARD_SUCCEEDS = "4242424242424242"
SANDBOX_CARD_DECLINED = "4000000000000002"


@dataclass(frozen=True)
class ProviderEvent:
    event_id: str
    event_type: str
    checkout_id: uuid.UUID
    amount: int
    currency: str
    failure_reason: str | None = None


class PaymentProvider(Protocol):
    name: str

    def checkout_url(self, checkout: Checkout) -> str:
        """Where the buyer goes to pay."""
        ...

    def verify_event(self, headers: Mapping[str, str], body: bytes, now: float) -> ProviderEvent:
        """Check the webhook's signature and timestamp and parse its event, or raise."""
        ...


class SandboxProvider:
    """A simulated card processor for development and tests, signed like a real one.

    Events carry ``Hermes-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` over
    ``"<t>." + body`` with the sandbox webhook secret. Events older (or newer) than the
    tolerance are refused, so a captured request cannot be replayed later.
    """

    name = "sandbox"

    def __init__(self, *, secret: bytes, public_url: str, tolerance_seconds: int) -> None:
        self._secret = secret
        self._public_url = public_url
        self._tolerance = tolerance_seconds

    def checkout_url(self, checkout: Checkout) -> str:
        return f"{self._public_url}/api/v1/payments/sandbox/checkouts/{checkout.id}/pay"

    def sign(self, body: bytes, timestamp: int) -> str:
        digest = hmac.new(self._secret, f"{timestamp}.".encode() + body, hashlib.sha256)
        return f"t={timestamp},v1={digest.hexdigest()}"

    def verify_event(self, headers: Mapping[str, str], body: bytes, now: float) -> ProviderEvent:
        header = headers.get(SIGNATURE_HEADER, "")
        parts: dict[str, list[str]] = {}
        for item in header.split(","):
            key, _, value = item.strip().partition("=")
            parts.setdefault(key, []).append(value)
        try:
            timestamp = int(parts["t"][0])
        except (KeyError, ValueError):
            raise WebhookSignatureError("Missing or malformed Hermes-Signature header.") from None
        expected = self.sign(body, timestamp).split("v1=", 1)[1]
        if not any(hmac.compare_digest(expected, given) for given in parts.get("v1", [])):
            raise WebhookSignatureError("The webhook signature does not match.")
        if abs(now - timestamp) > self._tolerance:
            raise WebhookTimestampError("The webhook timestamp is outside the allowed window.")
        return parse_event(body)

    def simulate_payment(
        self, checkout: Checkout, card_number: str
    ) -> tuple[dict[str, str], bytes]:
        """What the processor would send after the buyer paid with a test card."""
        card = card_number.replace(" ", "").replace("-", "")
        if card == SANDBOX_CARD_SUCCEEDS:
            event_type, reason = EVENT_COMPLETED, None
        elif card == SANDBOX_CARD_DECLINED:
            event_type, reason = EVENT_FAILED, "card_declined"
        else:
            raise WebhookPayloadError(
                f"Unknown test card. Use {SANDBOX_CARD_SUCCEEDS} (pays) or "
                f"{SANDBOX_CARD_DECLINED} (declined).",
                status=422,
                code="unknown_test_card",
            )
        body = json.dumps(
            {
                "id": f"evt_{uuid.uuid4().hex}",
                "type": event_type,
                "data": {
                    "checkout_id": str(checkout.id),
                    "amount_units": checkout.amount,
                    "currency": checkout.currency,
                    "failure_reason": reason,
                },
            },
            separators=(",", ":"),
        ).encode()
        return {SIGNATURE_HEADER: self.sign(body, int(time.time()))}, body


def parse_event(body: bytes) -> ProviderEvent:
    try:
        payload: Any = json.loads(body)
        data = payload["data"]
        event = ProviderEvent(
            event_id=str(payload["id"]),
            event_type=str(payload["type"]),
            checkout_id=uuid.UUID(str(data["checkout_id"])),
            amount=int(data["amount_units"]),
            currency=str(data["currency"]),
            failure_reason=data.get("failure_reason"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookPayloadError("The event body is not a valid checkout event.") from exc
    if not 0 < len(event.event_id) <= 128 or event.event_type not in {
        EVENT_COMPLETED,
        EVENT_FAILED,
    }:
        raise WebhookPayloadError("Unknown event type or malformed event id.")
    return event


def sandbox_secret(settings: Settings, secret_key: str) -> bytes:
    if settings.sandbox_webhook_secret is not None:
        return settings.sandbox_webhook_secret.get_secret_value().encode()
    # Derived, not shared: knowing the sandbox secret reveals nothing about the JWT key.
    return hmac.new(secret_key.encode(), b"hermes sandbox webhook", hashlib.sha256).digest()


def build_providers(settings: Settings, secret_key: str) -> dict[str, PaymentProvider]:
    providers: dict[str, PaymentProvider] = {}
    if settings.sandbox_payments_enabled:
        providers["sandbox"] = SandboxProvider(
            secret=sandbox_secret(settings, secret_key),
            public_url=settings.public_url,
            tolerance_seconds=settings.payment_webhook_tolerance_seconds,
        )
    return providers


def require_provider(providers: Mapping[str, PaymentProvider], name: str) -> PaymentProvider:
    provider = providers.get(name)
    if provider is None:
        raise ProviderUnavailableError(f"The payment provider '{name}' is not enabled on this hub.")
    return provider


# ---- checkouts ----


async def create_checkout(
    session: AsyncSession,
    *,
    provider: PaymentProvider,
    user: User,
    amount: int,
    ttl_seconds: int,
    idempotency_key: str | None,
) -> Checkout:
    checkout_id = (
        derive_id(f"checkout:{user.id}", idempotency_key) if idempotency_key else uuid.uuid4()
    )
    existing = await session.get(Checkout, checkout_id)
    if existing is not None:
        if existing.user_id != user.id or existing.amount != amount:
            raise IdempotencyKeyReusedError(
                "This idempotency key was already used for a different purchase."
            )
        return existing
    wallet = await accounts.user_wallet(session, user.id)
    now = utcnow()
    checkout = Checkout(
        id=checkout_id,
        provider=provider.name,
        user_id=user.id,
        account_id=wallet,
        amount=amount,
        currency=(await accounts.read_account(session, wallet)).currency,
        status=CheckoutStatus.OPEN.value,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    session.add(checkout)
    await session.flush()
    return checkout


async def get_checkout(session: AsyncSession, *, checkout_id: uuid.UUID, user: User) -> Checkout:
    checkout = await session.get(Checkout, checkout_id)
    if checkout is None or checkout.user_id != user.id:
        raise CheckoutNotFoundError("No such checkout.")
    return checkout


def ensure_payable(checkout: Checkout) -> None:
    if checkout.status != CheckoutStatus.OPEN.value:
        raise CheckoutClosedError(f"This checkout is already {checkout.status}.")
    if checkout.expires_at <= utcnow():
        raise CheckoutClosedError("This checkout has expired; start a new purchase.")


@dataclass(frozen=True)
class EventResult:
    event_id: str
    outcome: str  # completed, failed, duplicate, already_completed, already_failed
    checkout: Checkout | None


async def apply_event(
    session: AsyncSession, *, provider: PaymentProvider, event: ProviderEvent
) -> EventResult:
    """Apply a verified provider event to its checkout, once per event id."""
    seen = await session.get(PaymentEvent, (provider.name, event.event_id))
    if seen is not None:
        return EventResult(event_id=event.event_id, outcome="duplicate", checkout=None)
    checkout = await session.scalar(
        select(Checkout)
        .where(Checkout.id == event.checkout_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if checkout is None or checkout.provider != provider.name:
        raise WebhookPayloadError("The event names a checkout this hub does not know.")
    if checkout.amount != event.amount or checkout.currency != event.currency:
        raise WebhookPayloadError("The event's amount does not match the checkout.")
    if checkout.status != CheckoutStatus.OPEN.value:
        outcome = f"already_{checkout.status}"
    elif event.event_type == EVENT_COMPLETED:
        # Money the provider captured is credited even if our checkout page had expired.
        await _credit_purchase(session, checkout=checkout, event=event)
        outcome = CheckoutStatus.COMPLETED.value
    else:
        checkout.status = CheckoutStatus.FAILED.value
        checkout.failure_reason = event.failure_reason or "payment_failed"
        checkout.completed_at = utcnow()
        outcome = CheckoutStatus.FAILED.value
    session.add(
        PaymentEvent(
            provider=provider.name,
            event_id=event.event_id,
            event_type=event.event_type,
            checkout_id=checkout.id,
            outcome=outcome,
        )
    )
    await session.flush()
    return EventResult(event_id=event.event_id, outcome=outcome, checkout=checkout)


async def _credit_purchase(
    session: AsyncSession, *, checkout: Checkout, event: ProviderEvent
) -> None:
    world = await accounts.world_account(session, checkout.currency)
    journal = await Journal.lock(session, [world, checkout.account_id])
    transfer = journal.transfer(
        debit_account_id=world,
        credit_account_id=checkout.account_id,
        amount=checkout.amount,
        kind=TransferKind.PURCHASE.value,
        transfer_id=derive_id("purchase", str(checkout.id)),
        reference=("checkout", str(checkout.id)),
        memo=f"{checkout.provider} purchase",
    )
    written = await journal.flush()
    checkout.status = CheckoutStatus.COMPLETED.value
    checkout.transfer_id = transfer.id
    checkout.completed_at = utcnow()
    await audit.record(
        session,
        actor=f"provider:{checkout.provider}",
        action="purchase",
        transfers=written,
        details={
            "checkout_id": str(checkout.id),
            "user_id": str(checkout.user_id),
            "event_id": event.event_id,
            "amount": checkout.amount,
        },
    )
