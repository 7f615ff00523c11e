"""A2A: agent cards and their health, the gateway's call log, agent ACL rules, access
requests for agents that require approval.

Revision ID: 0007_a2a
Revises: 0006_discovery
Create Date: 2026-11-22 07:26:24.755881

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_a2a"
down_revision: str | None = "0006_discovery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "a2a_agent_cards",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column(
            "card",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("card_url", sa.String(length=2048), nullable=True),
        sa.Column("rpc_url", sa.String(length=2048), nullable=True),
        sa.Column("protocol_version", sa.String(length=16), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("unavailable", sa.Boolean(), nullable=False),
        sa.Column("unavailable_since", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_a2a_agent_cards_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_a2a_agent_cards")),
    )
    op.create_table(
        "a2a_task_owners",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.String(length=200), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_a2a_task_owners_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", "task_id", name=op.f("pk_a2a_task_owners")),
    )
    op.create_table(
        "a2a_calls",
        sa.Column("target_agent_id", sa.Uuid(), nullable=False),
        sa.Column("caller_agent_id", sa.Uuid(), nullable=True),
        sa.Column("caller_user_id", sa.Uuid(), nullable=True),
        sa.Column("caller_owner_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=48), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["caller_agent_id"],
            ["agents.id"],
            name=op.f("fk_a2a_calls_caller_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["caller_owner_id"],
            ["users.id"],
            name=op.f("fk_a2a_calls_caller_owner_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["caller_user_id"],
            ["users.id"],
            name=op.f("fk_a2a_calls_caller_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["target_agent_id"],
            ["agents.id"],
            name=op.f("fk_a2a_calls_target_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_a2a_calls")),
    )
    with op.batch_alter_table("a2a_calls", schema=None) as batch_op:
        batch_op.create_index("ix_a2a_calls_caller_agent", ["caller_agent_id"], unique=False)
        batch_op.create_index(
            "ix_a2a_calls_target_started", ["target_agent_id", "started_at"], unique=False
        )

    op.create_table(
        "agent_access_requests",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_access_requests_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["users.id"],
            name=op.f("fk_agent_access_requests_decided_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_access_requests")),
        sa.UniqueConstraint(
            "agent_id", "subject_type", "subject_id", name="uq_agent_access_requests_pair"
        ),
    )
    op.create_table(
        "agent_permissions",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("effect", sa.String(length=8), nullable=False),
        sa.Column("max_calls_per_hour", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_permissions_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_agent_permissions_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_permissions")),
        sa.UniqueConstraint(
            "agent_id", "subject_type", "subject_id", name="uq_agent_permissions_rule"
        ),
    )
    with op.batch_alter_table("agent_permissions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_agent_permissions_subject", ["subject_type", "subject_id"], unique=False
        )

    op.create_table(
        "organization_permissions",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("max_calls_per_hour", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_organization_permissions_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_organization_permissions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization_permissions")),
        sa.UniqueConstraint(
            "organization_id",
            "subject_type",
            "subject_id",
            name="uq_organization_permissions_rule",
        ),
    )
    with op.batch_alter_table("organization_permissions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_organization_permissions_subject", ["subject_type", "subject_id"], unique=False
        )

    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("requires_approval", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("requires_approval")

    with op.batch_alter_table("agent_permissions", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_permissions_subject")

    op.drop_table("agent_permissions")
    op.drop_table("organization_permissions")
    op.drop_table("agent_access_requests")
    with op.batch_alter_table("a2a_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_a2a_calls_target_started")
        batch_op.drop_index("ix_a2a_calls_caller_agent")

    op.drop_table("a2a_calls")
    op.drop_table("a2a_task_owners")
    op.drop_table("a2a_agent_cards")
