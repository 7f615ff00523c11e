"""Ledger: accounts, the append-only transfer journal, escrow holds, payments, withdrawals,
the money audit log.

Revision ID: 0002_ledger
Revises: 0001_identity
Create Date: 2026-11-21 20:04:56.493645

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_ledger"
down_revision: str | None = "0001_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The journal and the audit log only ever grow: the database refuses UPDATE and DELETE on
# them, whatever the application does.
APPEND_ONLY_TABLES = ("ledger_transfers", "ledger_audit_log")


def _make_append_only(tables: Sequence[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION hermes_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
                    USING ERRCODE = 'integrity_constraint_violation';
            END
            $$
            """
        )
        for table in tables:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION hermes_refuse_change()"
            )
        return
    for table in tables:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def _drop_append_only(tables: Sequence[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in tables:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS hermes_refuse_change()")
        return
    for table in tables:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")


def upgrade() -> None:
    op.create_table(
        "ledger_audit_log",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column(
            "transfer_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_audit_log")),
    )
    with op.batch_alter_table("ledger_audit_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_audit_log_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "ledger_accounts",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("owner_ref", sa.String(length=80), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("allow_negative", sa.Boolean(), nullable=False),
        sa.Column("debits_pending", sa.BigInteger(), nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credits_pending", sa.BigInteger(), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "allow_negative OR debits_pending + debits_posted <= credits_posted",
            name=op.f("ck_ledger_accounts_debits_within_credits"),
        ),
        sa.CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0",
            name=op.f("ck_ledger_accounts_counters_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_ledger_accounts_agent_id_agents"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ledger_accounts_organization_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ledger_accounts_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("currency", "owner_ref", name="uq_ledger_accounts_currency_owner_ref"),
    )
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_accounts_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ledger_accounts_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ledger_accounts_user_id"), ["user_id"], unique=False)

    op.create_table(
        "ledger_transfers",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("debit_account_id", sa.Uuid(), nullable=False),
        sa.Column("credit_account_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("pending_id", sa.Uuid(), nullable=True),
        sa.Column("timeout_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reference_type", sa.String(length=32), nullable=True),
        sa.Column("reference_id", sa.String(length=64), nullable=True),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_ledger_transfers_amount_positive")),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id",
            name=op.f("ck_ledger_transfers_distinct_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["credit_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_transfers_credit_account_id_ledger_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_transfers_debit_account_id_ledger_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pending_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_ledger_transfers_pending_id_ledger_transfers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_transfers")),
        sa.UniqueConstraint("id", name=op.f("uq_ledger_transfers_id")),
        sa.UniqueConstraint("pending_id", name=op.f("uq_ledger_transfers_pending_id")),
    )
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_transfers_credit_account_id_seq", ["credit_account_id", "seq"], unique=False
        )
        batch_op.create_index(
            "ix_ledger_transfers_debit_account_id_seq", ["debit_account_id", "seq"], unique=False
        )
        batch_op.create_index(
            "ix_ledger_transfers_reference", ["reference_type", "reference_id"], unique=False
        )

    op.create_table(
        "ledger_holds",
        sa.Column("payer_account_id", sa.Uuid(), nullable=False),
        sa.Column("escrow_account_id", sa.Uuid(), nullable=False),
        sa.Column("pending_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payee_agent_id", sa.Uuid(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("released", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.BigInteger(), nullable=False),
        sa.Column("agent_share", sa.BigInteger(), nullable=False),
        sa.Column("platform_fee", sa.BigInteger(), nullable=False),
        sa.Column("org_share", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "status <> 'released' OR agent_share + platform_fee + org_share = released",
            name=op.f("ck_ledger_holds_shares_balance"),
        ),
        sa.CheckConstraint(
            "status <> 'released' OR released + refunded = amount",
            name=op.f("ck_ledger_holds_released_balances"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_ledger_holds_amount_positive")),
        sa.CheckConstraint(
            "status <> 'refunded' OR (released = 0 AND refunded = amount)",
            name=op.f("ck_ledger_holds_refund_whole"),
        ),
        sa.ForeignKeyConstraint(
            ["escrow_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_holds_escrow_account_id_ledger_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["payee_agent_id"],
            ["agents.id"],
            name=op.f("fk_ledger_holds_payee_agent_id_agents"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["payer_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_holds_payer_account_id_ledger_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pending_transfer_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_ledger_holds_pending_transfer_id_ledger_transfers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_holds")),
        sa.UniqueConstraint("contract_id", name=op.f("uq_ledger_holds_contract_id")),
        sa.UniqueConstraint("escrow_account_id", name=op.f("uq_ledger_holds_escrow_account_id")),
    )
    with op.batch_alter_table("ledger_holds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_holds_payer_account_id"), ["payer_account_id"], unique=False
        )

    op.create_table(
        "ledger_withdrawals",
        sa.Column("requested_by_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pending_transfer_id", sa.Uuid(), nullable=False),
        sa.Column("resolved_by_id", sa.Uuid(), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_ledger_withdrawals_amount_positive")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_withdrawals_account_id_ledger_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pending_transfer_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_ledger_withdrawals_pending_transfer_id_ledger_transfers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_ledger_withdrawals_requested_by_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"],
            ["users.id"],
            name=op.f("fk_ledger_withdrawals_resolved_by_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_withdrawals")),
    )
    with op.batch_alter_table("ledger_withdrawals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_withdrawals_requested_by_id"), ["requested_by_id"], unique=False
        )
        batch_op.create_index(
            "ix_ledger_withdrawals_status_created_at", ["status", "created_at"], unique=False
        )

    op.create_table(
        "payment_checkouts",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payment_checkouts_amount_positive")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_payment_checkouts_account_id_ledger_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_payment_checkouts_transfer_id_ledger_transfers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_payment_checkouts_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_checkouts")),
    )
    with op.batch_alter_table("payment_checkouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_checkouts_user_id"), ["user_id"], unique=False)

    op.create_table(
        "payment_events",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("checkout_id", sa.Uuid(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["checkout_id"],
            ["payment_checkouts.id"],
            name=op.f("fk_payment_events_checkout_id_payment_checkouts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("provider", "event_id", name=op.f("pk_payment_events")),
    )
    _make_append_only(APPEND_ONLY_TABLES)


def downgrade() -> None:
    _drop_append_only(APPEND_ONLY_TABLES)
    op.drop_table("payment_events")
    with op.batch_alter_table("payment_checkouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_checkouts_user_id"))

    op.drop_table("payment_checkouts")
    with op.batch_alter_table("ledger_withdrawals", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_withdrawals_status_created_at")
        batch_op.drop_index(batch_op.f("ix_ledger_withdrawals_requested_by_id"))

    op.drop_table("ledger_withdrawals")
    with op.batch_alter_table("ledger_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_holds_payer_account_id"))

    op.drop_table("ledger_holds")
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_transfers_reference")
        batch_op.drop_index("ix_ledger_transfers_debit_account_id_seq")
        batch_op.drop_index("ix_ledger_transfers_credit_account_id_seq")

    op.drop_table("ledger_transfers")
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_accounts_user_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_accounts_organization_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_accounts_agent_id"))

    op.drop_table("ledger_accounts")
    with op.batch_alter_table("ledger_audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_audit_log_created_at"))

    op.drop_table("ledger_audit_log")
