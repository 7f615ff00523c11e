"""Mesh: contracts, bids, agent outcome metrics, requester preferences; idempotency records.

Revision ID: 0004_mesh
Revises: 0003_events
Create Date: 2026-11-21 22:16:48.001969

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_mesh"
down_revision: str | None = "0003_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_records",
        sa.Column("principal", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column(
            "body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal", "key", name=op.f("pk_idempotency_records")),
    )
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_records_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "mesh_preferences",
        sa.Column("owner_ref", sa.String(length=80), nullable=False),
        sa.Column("price_weight", sa.Float(), nullable=False),
        sa.Column("performance_weight", sa.Float(), nullable=False),
        sa.Column("speed_weight", sa.Float(), nullable=False),
        sa.Column("reputation_weight", sa.Float(), nullable=False),
        sa.Column("max_price_units", sa.BigInteger(), nullable=True),
        sa.Column("min_confidence", sa.Float(), nullable=True),
        sa.Column("min_reputation", sa.Float(), nullable=True),
        sa.Column("preset", sa.String(length=16), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner_ref", name=op.f("pk_mesh_preferences")),
    )
    op.create_table(
        "mesh_contracts",
        sa.Column("requester_user_id", sa.Uuid(), nullable=True),
        sa.Column("requester_agent_id", sa.Uuid(), nullable=True),
        sa.Column("requester_owner_id", sa.Uuid(), nullable=False),
        sa.Column("payer_account_id", sa.Uuid(), nullable=False),
        sa.Column("intent", sa.Text(), nullable=False),
        sa.Column("capability", sa.String(length=64), nullable=False),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "output_schema",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("complexity", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("reward_units", sa.BigInteger(), nullable=False),
        sa.Column("max_price_units", sa.BigInteger(), nullable=True),
        sa.Column("held_units", sa.BigInteger(), nullable=False),
        sa.Column("min_reputation", sa.Float(), nullable=True),
        sa.Column("bidding_seconds", sa.Integer(), nullable=False),
        sa.Column("deadline_seconds", sa.Integer(), nullable=True),
        sa.Column("delivery_window_seconds", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bidding_closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("awarded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("auto_settle_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("awarded_bid_id", sa.Uuid(), nullable=True),
        sa.Column("awarded_agent_id", sa.Uuid(), nullable=True),
        sa.Column("price_units", sa.BigInteger(), nullable=True),
        sa.Column("promised_eta_seconds", sa.Integer(), nullable=True),
        sa.Column(
            "award_report",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "delivery",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("auto_validation_score", sa.Float(), nullable=True),
        sa.Column(
            "validation_errors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("validation_score", sa.Float(), nullable=True),
        sa.Column("settled_by", sa.String(length=80), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("dispute_opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "dispute_response",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("dispute_responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "resolution",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "settlement",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["awarded_agent_id"],
            ["agents.id"],
            name=op.f("fk_mesh_contracts_awarded_agent_id_agents"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["payer_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_mesh_contracts_payer_account_id_ledger_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["requester_agent_id"],
            ["agents.id"],
            name=op.f("fk_mesh_contracts_requester_agent_id_agents"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["requester_owner_id"],
            ["users.id"],
            name=op.f("fk_mesh_contracts_requester_owner_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["requester_user_id"],
            ["users.id"],
            name=op.f("fk_mesh_contracts_requester_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mesh_contracts")),
    )
    with op.batch_alter_table("mesh_contracts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mesh_contracts_awarded_agent_id"), ["awarded_agent_id"], unique=False
        )
        batch_op.create_index("ix_mesh_contracts_created", ["created_at", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_mesh_contracts_next_due_at"), ["next_due_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_mesh_contracts_requester_agent_id"), ["requester_agent_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_mesh_contracts_requester_user_id"), ["requester_user_id"], unique=False
        )
        batch_op.create_index(
            "ix_mesh_contracts_status_capability", ["status", "capability"], unique=False
        )

    op.create_table(
        "mesh_agent_metrics",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("validation_score", sa.Float(), nullable=False),
        sa.Column("execution_seconds", sa.Float(), nullable=True),
        sa.Column("promised_seconds", sa.Integer(), nullable=True),
        sa.Column("on_time", sa.Boolean(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_mesh_agent_metrics_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["mesh_contracts.id"],
            name=op.f("fk_mesh_agent_metrics_contract_id_mesh_contracts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mesh_agent_metrics")),
        sa.UniqueConstraint("contract_id", name=op.f("uq_mesh_agent_metrics_contract_id")),
    )
    with op.batch_alter_table("mesh_agent_metrics", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mesh_agent_metrics_agent_id"), ["agent_id"], unique=False
        )

    op.create_table(
        "mesh_bids",
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("price_units", sa.BigInteger(), nullable=False),
        sa.Column("eta_seconds", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revisions", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_mesh_bids_agent_id_agents"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["mesh_contracts.id"],
            name=op.f("fk_mesh_bids_contract_id_mesh_contracts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mesh_bids")),
        sa.UniqueConstraint("contract_id", "agent_id", name="uq_mesh_bids_contract_agent"),
    )
    with op.batch_alter_table("mesh_bids", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mesh_bids_agent_id"), ["agent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mesh_bids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mesh_bids_agent_id"))

    op.drop_table("mesh_bids")
    with op.batch_alter_table("mesh_agent_metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mesh_agent_metrics_agent_id"))

    op.drop_table("mesh_agent_metrics")
    with op.batch_alter_table("mesh_contracts", schema=None) as batch_op:
        batch_op.drop_index("ix_mesh_contracts_status_capability")
        batch_op.drop_index(batch_op.f("ix_mesh_contracts_requester_user_id"))
        batch_op.drop_index(batch_op.f("ix_mesh_contracts_requester_agent_id"))
        batch_op.drop_index(batch_op.f("ix_mesh_contracts_next_due_at"))
        batch_op.drop_index("ix_mesh_contracts_created")
        batch_op.drop_index(batch_op.f("ix_mesh_contracts_awarded_agent_id"))

    op.drop_table("mesh_contracts")
    op.drop_table("mesh_preferences")
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_records_created_at"))

    op.drop_table("idempotency_records")
