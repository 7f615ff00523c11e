"""``hermes ledger``: verify the books, grant credits, refund timed-out holds. Works on the
database directly (HERMES_DATABASE_URL), like ``hermes admin``."""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.cli.common import run_with_database
from hermes_hub.cli.output import CliError, JsonOption, emit
from hermes_hub.db.session import Database
from hermes_hub.db.transaction import in_transaction
from hermes_hub.identity.models import User
from hermes_hub.identity.service import normalize_email
from hermes_hub.kit.money import MAX_TRANSFER_UNITS, credits_to_units, units_to_credits
from hermes_hub.ledger import accounts, escrow, wallets
from hermes_hub.ledger.check import LedgerReport, check_ledger

T = TypeVar("T")

app = typer.Typer(help="The credit ledger: checks and grants.", no_args_is_help=True)


def _with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    return run_with_database(lambda database, _settings: work(database))


def _report_text(report: LedgerReport) -> str:
    lines = [
        f"accounts: {report.accounts}, transfers: {report.transfers}, holds: {report.holds}",
    ]
    for currency, totals in sorted(report.totals.items()):
        lines.append(
            f"{currency}: net posted {totals['net_posted']}, net pending "
            f"{totals['net_pending']}, credits posted {units_to_credits(totals['credits_posted'])}"
        )
    if report.ok:
        lines.append("ledger OK: every balance matches the journal and every invariant holds")
    else:
        lines.append(f"ledger BROKEN: {len(report.violations)} violation(s)")
        lines.extend(f"  - {violation}" for violation in report.violations)
    return "\n".join(lines)


@app.command("check")
def check(as_json: bool = JsonOption) -> None:
    """Recompute every balance from the transfer journal and verify the invariants.

    Exits 0 when the books are sound, 2 when any invariant is violated.
    """

    async def work(database: Database) -> LedgerReport:
        async with database.read_sessions() as session:
            return await check_ledger(session)

    report = _with_database(work)
    emit(report.as_dict(), as_json=as_json, human=_report_text(report))
    if not report.ok:
        raise typer.Exit(code=2)


def _parse_credits(text: str) -> int:
    try:
        units = credits_to_units(Decimal(text))
    except (InvalidOperation, ValueError) as exc:
        raise CliError(f"{text!r} is not an amount of credits with at most 2 decimals") from exc
    if not 0 < units <= MAX_TRANSFER_UNITS:
        raise CliError("the amount must be positive and at most a trillion credits")
    return units


@app.command("grant")
def grant(
    email: str = typer.Argument(..., help="The user whose wallet is credited."),
    amount: str = typer.Argument(..., help="Credits, e.g. 100 or 12.50."),
    reason: str = typer.Option(..., "--reason", help="Why: kept in the audit log."),
    as_json: bool = JsonOption,
) -> None:
    """Grant credits to a user's wallet (the manual payment provider)."""
    units = _parse_credits(amount)
    if len(reason.strip()) < 3:
        raise CliError("give a reason of at least 3 characters")
    actor = f"cli:{getpass.getuser()}"

    async def work(database: Database) -> dict[str, Any]:
        async def grant_in(session: AsyncSession) -> dict[str, Any]:
            user = await session.scalar(select(User).where(User.email == normalize_email(email)))
            if user is None:
                raise CliError(f"no user with email {email}")
            record = await wallets.grant(
                session, user_id=user.id, amount=units, reason=reason.strip(), actor=actor
            )
            balance = await wallets.balance_of(session, accounts.user_ref(user.id))
            return {
                "transfer_id": str(record.id),
                "email": user.email,
                "amount": str(units_to_credits(units)),
                "available": str(units_to_credits(balance.available)),
            }

        return await in_transaction(database, grant_in)

    result = _with_database(work)
    emit(
        result,
        as_json=as_json,
        human=(
            f"granted {result['amount']} credits to {result['email']} "
            f"(available now {result['available']}; transfer {result['transfer_id']})"
        ),
    )


@app.command("expire-holds")
def expire_holds(as_json: bool = JsonOption) -> None:
    """Refund every escrow hold whose timeout has passed."""

    async def work(database: Database) -> list[str]:
        async def sweep(session: AsyncSession) -> list[str]:
            return [str(hold_id) for hold_id in await escrow.refund_expired(session)]

        return await in_transaction(database, sweep)

    refunded = _with_database(work)
    emit(
        {"refunded": refunded},
        as_json=as_json,
        human=f"refunded {len(refunded)} expired hold(s)",
    )
