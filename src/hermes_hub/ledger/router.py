"""HTTP routes for wallets, earnings, purchases, payment webhooks, withdrawals and ledger admin."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.db.session import Database, DatabaseDep, DbSession
from hermes_hub.db.transaction import in_transaction
from hermes_hub.errors import HubError
from hermes_hub.identity import service as identity
from hermes_hub.identity.deps import (
    AdminUser,
    CurrentAgent,
    CurrentPrincipal,
    CurrentUser,
    require_admin,
)
from hermes_hub.identity.models import User
from hermes_hub.kit.exact_json import ExactNumbersRoute
from hermes_hub.kit.idempotency import idempotency_key_header
from hermes_hub.kit.money import credits_to_units, units_to_credits
from hermes_hub.kit.pagination import MAX_PAGE_SIZE, Page, PageParams, page_params
from hermes_hub.ledger import accounts, payments, wallets, withdrawals
from hermes_hub.ledger.check import check_ledger
from hermes_hub.ledger.errors import WebhookPayloadError
from hermes_hub.ledger.models import AuditEntry, WithdrawalStatus
from hermes_hub.ledger.schemas import (
    AuditEntryOut,
    AuditPage,
    CheckoutOut,
    GrantOut,
    GrantRequest,
    LedgerCheckOut,
    PurchaseRequest,
    SandboxPayment,
    TransactionOut,
    TransactionPage,
    TransferOut,
    TransferRequest,
    WalletOut,
    WebhookAck,
    WithdrawalDecision,
    WithdrawalOut,
    WithdrawalRequest,
)
from hermes_hub.ledger.wallets import StatementFilter
from hermes_hub.runtime import RuntimeDep

Paging = Annotated[PageParams, Depends(page_params)]
IdempotencyKey = Annotated[
    str | None,
    idempotency_key_header(
        "Replaying a request with the same key returns the first result and moves no money twice."
    ),
]
CSV_EXPORT_LIMIT = 100_000

# Money routes parse JSON numbers as exact decimals (see kit.exact_json).
wallet_router = APIRouter(prefix="/api/v1/wallet", tags=["wallet"], route_class=ExactNumbersRoute)
earnings_router = APIRouter(prefix="/api/v1/agents", tags=["wallet"])
org_wallet_router = APIRouter(prefix="/api/v1/orgs", tags=["wallet"])
payments_router = APIRouter(prefix="/api/v1/payments", tags=["payments"])
withdrawals_router = APIRouter(
    prefix="/api/v1", tags=["withdrawals"], route_class=ExactNumbersRoute
)
ledger_admin_router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    route_class=ExactNumbersRoute,
)


def _providers(request: Request) -> dict[str, payments.PaymentProvider]:
    providers: dict[str, payments.PaymentProvider] = request.app.state.payment_providers
    return providers


Providers = Annotated[dict[str, payments.PaymentProvider], Depends(_providers)]


# ---- statements (shared by wallets, agent earnings and org wallets) ----


async def _statement_filter(
    kind: Annotated[list[str] | None, Query(max_length=20)] = None,
    since: Annotated[datetime | None, Query(description="Inclusive, ISO 8601.")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive, ISO 8601.")] = None,
) -> StatementFilter:
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise HubError(
                "Dates need a time zone, e.g. 2026-01-01T00:00:00Z.",
                status=422,
                code="naive_datetime",
            )
    return StatementFilter(kinds=tuple(kind or ()), since=since, until=until)


Filters = Annotated[StatementFilter, Depends(_statement_filter)]
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$", description="From next_cursor.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Format = Annotated[Literal["json", "csv"], Query(description="csv exports every matching row.")]


@dataclass(frozen=True)
class StatementRequest:
    """The query of a statement route (filters, page, format), ready to answer for a wallet."""

    session: AsyncSession
    database: Database
    filters: StatementFilter
    cursor: str | None
    limit: int
    output: str

    async def respond(self, owner_ref: str) -> TransactionPage | StreamingResponse:
        if self.output == "csv":
            return StreamingResponse(
                _csv_rows(self.database, owner_ref=owner_ref, filters=self.filters),
                media_type="text/csv",
                headers={"Content-Disposition": 'attachment; filename="transactions.csv"'},
            )
        lines, next_seq = await wallets.statement(
            self.session,
            owner_ref=owner_ref,
            filters=self.filters,
            before_seq=int(self.cursor) if self.cursor else None,
            limit=self.limit,
        )
        return TransactionPage(
            items=[TransactionOut.of(line) for line in lines],
            next_cursor=str(next_seq) if next_seq is not None else None,
        )


async def _statement_request(
    session: DbSession,
    database: DatabaseDep,
    filters: Filters,
    cursor: Cursor = None,
    limit: Limit = 50,
    format: Format = "json",
) -> StatementRequest:
    return StatementRequest(
        session=session,
        database=database,
        filters=filters,
        cursor=cursor,
        limit=limit,
        output=format,
    )


Statement = Annotated[StatementRequest, Depends(_statement_request)]


CSV_COLUMNS = (
    "created_at",
    "id",
    "kind",
    "phase",
    "status",
    "direction",
    "amount",
    "currency",
    "counterparty_kind",
    "reference_type",
    "reference_id",
    "memo",
)


async def _csv_rows(
    database: Database, *, owner_ref: str, filters: StatementFilter
) -> AsyncIterator[str]:
    # The request's session is closed once the handler returns, so the export reads with its
    # own, page by page, and never holds more than one page in memory.
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    before: int | None = None
    sent = 0
    async with database.read_sessions() as session:
        while sent < CSV_EXPORT_LIMIT:
            lines, before = await wallets.statement(
                session, owner_ref=owner_ref, filters=filters, before_seq=before, limit=1000
            )
            buffer.seek(0)
            buffer.truncate()
            for line in lines:
                item = TransactionOut.of(line)
                writer.writerow(
                    [
                        item.created_at.isoformat(),
                        item.id,
                        item.kind,
                        item.phase,
                        item.status,
                        item.direction,
                        units_to_credits(item.amount_units),
                        item.currency,
                        item.counterparty_kind,
                        item.reference_type or "",
                        item.reference_id or "",
                        _csv_safe(item.memo),
                    ]
                )
            sent += len(lines)
            yield buffer.getvalue()
            if before is None:
                return


def _csv_safe(text: str) -> str:
    # A memo starting with = + - @ would run as a formula when the file is opened in a
    # spreadsheet; a leading quote keeps it text.
    return f"'{text}" if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


# ---- the caller's wallet ----


@wallet_router.get("", response_model=WalletOut, operation_id="get_wallet")
async def get_wallet(principal: CurrentPrincipal, session: DbSession) -> WalletOut:
    """The caller's wallet: a user's own, or an agent's (its earnings) when an agent calls."""
    return WalletOut.of(await wallets.balance_of(session, wallets.own_ref(principal)))


@wallet_router.get(
    "/transactions",
    response_model=TransactionPage,
    operation_id="list_wallet_transactions",
    responses={200: {"content": {"text/csv": {}}}},
)
async def list_wallet_transactions(
    principal: CurrentPrincipal,
    statement: Statement,
) -> TransactionPage | StreamingResponse:
    return await statement.respond(wallets.own_ref(principal))


@wallet_router.post(
    "/transfers",
    status_code=status.HTTP_201_CREATED,
    response_model=TransferOut,
    operation_id="transfer_between_wallets",
)
async def transfer_between_wallets(
    body: TransferRequest,
    user: CurrentUser,
    database: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> TransferOut:
    """Move credits between wallets you control: yours, your agents', your organizations'."""

    async def work(session: AsyncSession) -> TransferOut:
        source = await wallets.controlled_account(session, user=user, selector=body.source)
        destination = await wallets.controlled_account(
            session, user=user, selector=body.destination
        )
        record = await wallets.move(
            session,
            debit=source,
            credit=destination,
            amount=body.amount,
            memo=body.memo,
            actor=f"user:{user.id}",
            idempotency_key=idempotency_key,
        )
        return TransferOut(
            id=record.id,
            amount=record.amount,
            amount_units=record.amount,
            kind=record.kind,
            memo=record.memo,
            created_at=record.created_at,
        )

    return await in_transaction(database, work)


# ---- buying credits ----


@wallet_router.post(
    "/credits/purchase",
    status_code=status.HTTP_201_CREATED,
    response_model=CheckoutOut,
    operation_id="purchase_credits",
)
async def purchase_credits(
    body: PurchaseRequest,
    user: CurrentUser,
    database: DatabaseDep,
    runtime: RuntimeDep,
    providers: Providers,
    idempotency_key: IdempotencyKey = None,
) -> CheckoutOut:
    """Start buying credits: returns a checkout session whose ``checkout_url`` takes payment.

    Credits arrive when the provider confirms the payment through its webhook.
    """
    provider = payments.require_provider(providers, body.provider)
    maximum = credits_to_units(runtime.settings.max_purchase_credits)
    if body.amount > maximum:
        raise HubError(
            f"One purchase buys at most {runtime.settings.max_purchase_credits} credits.",
            status=422,
            code="amount_above_maximum",
        )

    async def work(session: AsyncSession) -> CheckoutOut:
        checkout = await payments.create_checkout(
            session,
            provider=provider,
            user=user,
            amount=body.amount,
            ttl_seconds=runtime.settings.checkout_ttl_seconds,
            idempotency_key=idempotency_key,
        )
        return CheckoutOut.of(checkout, provider.checkout_url(checkout))

    return await in_transaction(database, work)


@wallet_router.get(
    "/credits/purchases/{checkout_id}", response_model=CheckoutOut, operation_id="get_purchase"
)
async def get_purchase(
    checkout_id: uuid.UUID, user: CurrentUser, session: DbSession, providers: Providers
) -> CheckoutOut:
    checkout = await payments.get_checkout(session, checkout_id=checkout_id, user=user)
    provider = providers.get(checkout.provider)
    return CheckoutOut.of(checkout, provider.checkout_url(checkout) if provider else None)


async def _receive_event(
    database: Database, provider: payments.PaymentProvider, headers: dict[str, str], body: bytes
) -> WebhookAck:
    event = provider.verify_event(headers, body, time.time())

    async def work(session: AsyncSession) -> payments.EventResult:
        return await payments.apply_event(session, provider=provider, event=event)

    result = await in_transaction(database, work)
    return WebhookAck(received=True, event_id=result.event_id, outcome=result.outcome)


@payments_router.post(
    "/webhook/{provider_name}", response_model=WebhookAck, operation_id="payment_webhook"
)
async def payment_webhook(
    provider_name: str, request: Request, database: DatabaseDep, providers: Providers
) -> WebhookAck:
    """Public by design: the provider calls it, and the signature is the authentication.

    A replayed event id is acknowledged (so the provider stops retrying) and changes nothing.
    """
    provider = payments.require_provider(providers, provider_name)
    body = await request.body()
    headers = {key.lower(): value for key, value in request.headers.items()}
    return await _receive_event(database, provider, headers, body)


@payments_router.post(
    "/sandbox/checkouts/{checkout_id}/pay",
    response_model=CheckoutOut,
    operation_id="pay_sandbox_checkout",
)
async def pay_sandbox_checkout(
    checkout_id: uuid.UUID,
    body: SandboxPayment,
    user: CurrentUser,
    database: DatabaseDep,
    providers: Providers,
) -> CheckoutOut:
    """The sandbox's card form: pay a checkout with a test card.

    ``4242 4242 4242 4242`` pays, ``4000 0000 0000 0002`` is declined. The sandbox then sends
    its signed webhook event through the same verification and processing as any provider.
    """
    provider = payments.require_provider(providers, "sandbox")
    if not isinstance(provider, payments.SandboxProvider):  # pragma: no cover - wiring error
        raise WebhookPayloadError("The sandbox provider is misconfigured.")
    # Reads use their own short session: the event is applied in a write transaction of its
    # own, and on SQLite a second writer in this request would wait for itself.
    async with database.read_sessions() as session:
        checkout = await payments.get_checkout(session, checkout_id=checkout_id, user=user)
    if checkout.provider != provider.name:
        raise HubError(
            "This checkout belongs to another provider.", status=409, code="wrong_provider"
        )
    payments.ensure_payable(checkout)
    headers, event_body = provider.simulate_payment(checkout, body.card_number)
    await _receive_event(database, provider, headers, event_body)
    async with database.read_sessions() as session:
        updated = await payments.get_checkout(session, checkout_id=checkout_id, user=user)
    return CheckoutOut.of(updated, None)


# ---- agent earnings ----


@earnings_router.get("/me/earnings", response_model=WalletOut, operation_id="get_my_earnings")
async def get_my_earnings(agent: CurrentAgent, session: DbSession) -> WalletOut:
    return WalletOut.of(await wallets.balance_of(session, accounts.agent_ref(agent.id)))


@earnings_router.get(
    "/me/earnings/transactions",
    response_model=TransactionPage,
    operation_id="list_my_earnings_transactions",
    responses={200: {"content": {"text/csv": {}}}},
)
async def list_my_earnings_transactions(
    agent: CurrentAgent,
    statement: Statement,
) -> TransactionPage | StreamingResponse:
    return await statement.respond(accounts.agent_ref(agent.id))


@earnings_router.get(
    "/{agent_id}/earnings", response_model=WalletOut, operation_id="get_agent_earnings"
)
async def get_agent_earnings(
    agent_id: uuid.UUID, user: CurrentUser, session: DbSession
) -> WalletOut:
    """An agent's earnings wallet, for its owner."""
    owner_ref = await wallets.owned_agent_ref(session, agent_id=agent_id, owner=user)
    return WalletOut.of(await wallets.balance_of(session, owner_ref))


@earnings_router.get(
    "/{agent_id}/earnings/transactions",
    response_model=TransactionPage,
    operation_id="list_agent_earnings_transactions",
    responses={200: {"content": {"text/csv": {}}}},
)
async def list_agent_earnings_transactions(
    agent_id: uuid.UUID,
    user: CurrentUser,
    statement: Statement,
) -> TransactionPage | StreamingResponse:
    owner_ref = await wallets.owned_agent_ref(statement.session, agent_id=agent_id, owner=user)
    return await statement.respond(owner_ref)


# ---- organization wallets ----


@org_wallet_router.get("/{org_id}/wallet", response_model=WalletOut, operation_id="get_org_wallet")
async def get_org_wallet(org_id: uuid.UUID, user: CurrentUser, session: DbSession) -> WalletOut:
    """An organization's wallet, for its owners and admins."""
    owner_ref = await wallets.managed_org_ref(session, org_id=org_id, user=user)
    return WalletOut.of(await wallets.balance_of(session, owner_ref))


@org_wallet_router.get(
    "/{org_id}/wallet/transactions",
    response_model=TransactionPage,
    operation_id="list_org_wallet_transactions",
    responses={200: {"content": {"text/csv": {}}}},
)
async def list_org_wallet_transactions(
    org_id: uuid.UUID,
    user: CurrentUser,
    statement: Statement,
) -> TransactionPage | StreamingResponse:
    owner_ref = await wallets.managed_org_ref(statement.session, org_id=org_id, user=user)
    return await statement.respond(owner_ref)


# ---- withdrawals ----


@withdrawals_router.post(
    "/withdrawal/request",
    status_code=status.HTTP_201_CREATED,
    response_model=WithdrawalOut,
    operation_id="request_withdrawal",
)
async def request_withdrawal(
    body: WithdrawalRequest,
    user: CurrentUser,
    database: DatabaseDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> WithdrawalOut:
    """Ask for a payout from a wallet you control; the amount is held until an admin decides."""

    async def work(session: AsyncSession) -> WithdrawalOut:
        source = await wallets.controlled_account(session, user=user, selector=body.source)
        withdrawal = await withdrawals.request_withdrawal(
            session,
            user=user,
            account_id=source,
            amount=body.amount,
            minimum=credits_to_units(runtime.settings.min_withdrawal_credits),
            destination=body.destination,
            idempotency_key=idempotency_key,
        )
        return WithdrawalOut.of(withdrawal)

    return await in_transaction(database, work)


@withdrawals_router.get(
    "/withdrawals", response_model=Page[WithdrawalOut], operation_id="list_my_withdrawals"
)
async def list_my_withdrawals(
    user: CurrentUser, session: DbSession, paging: Paging
) -> Page[WithdrawalOut]:
    items, total = await withdrawals.list_withdrawals(
        session, requested_by=user.id, status=None, limit=paging.limit, offset=paging.offset
    )
    return Page(
        items=[WithdrawalOut.of(item) for item in items],
        limit=paging.limit,
        offset=paging.offset,
        total=total,
    )


# ---- administration ----


@ledger_admin_router.get(
    "/withdrawals", response_model=Page[WithdrawalOut], operation_id="admin_list_withdrawals"
)
async def admin_list_withdrawals(
    session: DbSession,
    paging: Paging,
    status_filter: Annotated[WithdrawalStatus | None, Query(alias="status")] = None,
) -> Page[WithdrawalOut]:
    items, total = await withdrawals.list_withdrawals(
        session,
        requested_by=None,
        status=status_filter.value if status_filter else None,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(
        items=[WithdrawalOut.of(item) for item in items],
        limit=paging.limit,
        offset=paging.offset,
        total=total,
    )


async def _decide(
    database: Database, withdrawal_id: uuid.UUID, admin: User, *, approve: bool, note: str
) -> WithdrawalOut:
    async def work(session: AsyncSession) -> WithdrawalOut:
        withdrawal = await withdrawals.resolve_withdrawal(
            session, withdrawal_id=withdrawal_id, admin=admin, approve=approve, note=note
        )
        return WithdrawalOut.of(withdrawal)

    return await in_transaction(database, work)


@ledger_admin_router.post(
    "/withdrawals/{withdrawal_id}/approve",
    response_model=WithdrawalOut,
    operation_id="admin_approve_withdrawal",
)
async def admin_approve_withdrawal(
    withdrawal_id: uuid.UUID,
    admin: AdminUser,
    database: DatabaseDep,
    body: WithdrawalDecision | None = None,
) -> WithdrawalOut:
    """Pay out: the held credits leave the hub through the world account."""
    note = body.note if body else ""
    return await _decide(database, withdrawal_id, admin, approve=True, note=note)


@ledger_admin_router.post(
    "/withdrawals/{withdrawal_id}/reject",
    response_model=WithdrawalOut,
    operation_id="admin_reject_withdrawal",
)
async def admin_reject_withdrawal(
    withdrawal_id: uuid.UUID,
    admin: AdminUser,
    database: DatabaseDep,
    body: WithdrawalDecision | None = None,
) -> WithdrawalOut:
    """Refuse: the hold is voided and the credits are available again."""
    note = body.note if body else ""
    return await _decide(database, withdrawal_id, admin, approve=False, note=note)


@ledger_admin_router.post(
    "/ledger/grants",
    status_code=status.HTTP_201_CREATED,
    response_model=GrantOut,
    operation_id="admin_grant_credits",
)
async def admin_grant_credits(
    body: GrantRequest,
    admin: AdminUser,
    database: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> GrantOut:
    """The ``manual`` payment provider: credit a user's wallet, with a reason for the audit log."""

    async def work(session: AsyncSession) -> GrantOut:
        if body.user_id is not None:
            user = await session.get(User, body.user_id)
        else:
            user = await session.scalar(
                select(User).where(User.email == identity.normalize_email(str(body.email)))
            )
        if user is None:
            raise HubError("No such user.", status=404, code="user_not_found")
        record = await wallets.grant(
            session,
            user_id=user.id,
            amount=body.amount,
            reason=body.reason,
            actor=f"user:{admin.id}",
            idempotency_key=idempotency_key,
        )
        balance = await wallets.balance_of(session, accounts.user_ref(user.id))
        return GrantOut(
            transfer_id=record.id,
            user_id=user.id,
            amount=record.amount,
            amount_units=record.amount,
            reason=body.reason,
            wallet=WalletOut.of(balance),
        )

    return await in_transaction(database, work)


@ledger_admin_router.get(
    "/ledger/check", response_model=LedgerCheckOut, operation_id="admin_check_ledger"
)
async def admin_check_ledger(session: DbSession) -> LedgerCheckOut:
    """Recompute every balance from the journal and report any broken invariant."""
    report = await check_ledger(session)
    return LedgerCheckOut(**report.as_dict())


@ledger_admin_router.get(
    "/ledger/audit", response_model=AuditPage, operation_id="admin_ledger_audit"
)
async def admin_ledger_audit(
    session: DbSession, cursor: Cursor = None, limit: Limit = 50
) -> AuditPage:
    query = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit + 1)
    if cursor:
        query = query.where(AuditEntry.seq < int(cursor))
    rows = (await session.scalars(query)).all()
    items = [AuditEntryOut.model_validate(row) for row in rows[:limit]]
    next_cursor = str(items[-1].seq) if len(rows) > limit and items else None
    return AuditPage(items=items, next_cursor=next_cursor)


routers = (
    wallet_router,
    earnings_router,
    org_wallet_router,
    payments_router,
    withdrawals_router,
    ledger_admin_router,
)
