"""Finding and opening ledger accounts.

Wallets open lazily, on first use. Two requests may race to open the same wallet, so the row
is inserted with ON CONFLICT DO NOTHING on the (currency, owner) key and then read back:
either way both end up with the one account.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hermes_hub.db.session import dialect_name
from hermes_hub.kit.money import DEFAULT_CURRENCY
from hermes_hub.kit.time import utcnow
from hermes_hub.ledger.errors import AccountNotFoundError
from hermes_hub.ledger.journal import ACCOUNTS, AccountState
from hermes_hub.ledger.models import AccountKind

PLATFORM_REF = "platform"
WORLD_REF = "world"


def user_ref(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def agent_ref(agent_id: uuid.UUID) -> str:
    return f"agent:{agent_id}"


def org_ref(org_id: uuid.UUID) -> str:
    return f"org:{org_id}"


def escrow_ref(hold_id: uuid.UUID) -> str:
    return f"escrow:{hold_id}"


async def _open(
    session: AsyncSession,
    *,
    kind: AccountKind,
    owner_ref: str,
    currency: str,
    user_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    organization_id: uuid.UUID | None = None,
) -> uuid.UUID:
    existing: uuid.UUID | None = await session.scalar(
        select(ACCOUNTS.c.id).where(
            ACCOUNTS.c.currency == currency, ACCOUNTS.c.owner_ref == owner_ref
        )
    )
    if existing is not None:
        return existing
    values = {
        "id": uuid.uuid4(),
        "kind": kind.value,
        "currency": currency,
        "owner_ref": owner_ref,
        "user_id": user_id,
        "agent_id": agent_id,
        "organization_id": organization_id,
        # Only the world account, through which money enters and leaves, may go negative.
        "allow_negative": kind is AccountKind.WORLD,
        "debits_pending": 0,
        "debits_posted": 0,
        "credits_pending": 0,
        "credits_posted": 0,
        "created_at": utcnow(),
    }
    dialect_insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    await session.execute(
        dialect_insert(ACCOUNTS)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["currency", "owner_ref"])
    )
    account_id: uuid.UUID | None = await session.scalar(
        select(ACCOUNTS.c.id).where(
            ACCOUNTS.c.currency == currency, ACCOUNTS.c.owner_ref == owner_ref
        )
    )
    if account_id is None:  # pragma: no cover - the insert or the concurrent one made it
        raise RuntimeError(f"could not open ledger account {owner_ref}")
    return account_id


async def user_wallet(
    session: AsyncSession, user_id: uuid.UUID, currency: str = DEFAULT_CURRENCY
) -> uuid.UUID:
    return await _open(
        session,
        kind=AccountKind.USER_WALLET,
        owner_ref=user_ref(user_id),
        currency=currency,
        user_id=user_id,
    )


async def agent_wallet(
    session: AsyncSession, agent_id: uuid.UUID, currency: str = DEFAULT_CURRENCY
) -> uuid.UUID:
    return await _open(
        session,
        kind=AccountKind.AGENT_WALLET,
        owner_ref=agent_ref(agent_id),
        currency=currency,
        agent_id=agent_id,
    )


async def org_wallet(
    session: AsyncSession, org_id: uuid.UUID, currency: str = DEFAULT_CURRENCY
) -> uuid.UUID:
    return await _open(
        session,
        kind=AccountKind.ORG_WALLET,
        owner_ref=org_ref(org_id),
        currency=currency,
        organization_id=org_id,
    )


async def escrow_account(
    session: AsyncSession, hold_id: uuid.UUID, currency: str = DEFAULT_CURRENCY
) -> uuid.UUID:
    return await _open(
        session, kind=AccountKind.ESCROW, owner_ref=escrow_ref(hold_id), currency=currency
    )


async def platform_account(session: AsyncSession, currency: str = DEFAULT_CURRENCY) -> uuid.UUID:
    return await _open(
        session, kind=AccountKind.PLATFORM_REVENUE, owner_ref=PLATFORM_REF, currency=currency
    )


async def world_account(session: AsyncSession, currency: str = DEFAULT_CURRENCY) -> uuid.UUID:
    return await _open(session, kind=AccountKind.WORLD, owner_ref=WORLD_REF, currency=currency)


async def read_account(session: AsyncSession, account_id: uuid.UUID) -> AccountState:
    row = (await session.execute(select(ACCOUNTS).where(ACCOUNTS.c.id == account_id))).first()
    if row is None:
        raise AccountNotFoundError("No such ledger account.")
    return AccountState.from_row(row)


async def find_account(
    session: AsyncSession, owner_ref: str, currency: str = DEFAULT_CURRENCY
) -> AccountState | None:
    """An account by owner, without opening it (reads must not write)."""
    row = (
        await session.execute(
            select(ACCOUNTS).where(
                ACCOUNTS.c.currency == currency, ACCOUNTS.c.owner_ref == owner_ref
            )
        )
    ).first()
    return AccountState.from_row(row) if row is not None else None
