"""Trust: scores, badges, daily history, ratings, rater weights, integrity flags, bans;
outcome metrics gain who traded, what was earned and why an outcome may not count.

Revision ID: 0005_trust
Revises: 0004_mesh
Create Date: 2026-11-21 23:55:25.196736

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_trust"
down_revision: str | None = "0004_mesh"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trust_job_runs",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_run_on", sa.Date(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "summary",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_trust_job_runs")),
    )
    op.create_table(
        "trust_rater_weights",
        sa.Column("rater_owner_id", sa.Uuid(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("compared_ratings", sa.Integer(), nullable=False),
        sa.Column("mean_deviation", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rater_owner_id"],
            ["users.id"],
            name=op.f("fk_trust_rater_weights_rater_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rater_owner_id", name=op.f("pk_trust_rater_weights")),
    )
    op.create_table(
        "trust_agent_bans",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=100), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("banned_by", sa.Uuid(), nullable=True),
        sa.Column("banned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_trust_agent_bans_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["banned_by"],
            ["users.id"],
            name=op.f("fk_trust_agent_bans_banned_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_trust_agent_bans_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_agent_bans")),
        sa.UniqueConstraint("agent_id", name=op.f("uq_trust_agent_bans_agent_id")),
    )
    with op.batch_alter_table("trust_agent_bans", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trust_agent_bans_name_key"), ["name_key"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_trust_agent_bans_public_key"), ["public_key"], unique=False
        )

    op.create_table(
        "trust_badges",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("badge", sa.String(length=32), nullable=False),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_trust_badges_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", "badge", name=op.f("pk_trust_badges")),
    )
    op.create_table(
        "trust_daily",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("trust", sa.Float(), nullable=False),
        sa.Column("grade", sa.String(length=4), nullable=False),
        sa.Column("counted_outcomes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_trust_daily_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", "day", name=op.f("pk_trust_daily")),
    )
    op.create_table(
        "trust_flags",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.Column("subject_agent_id", sa.Uuid(), nullable=True),
        sa.Column(
            "accounts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "agent_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["resolved_by"],
            ["users.id"],
            name=op.f("fk_trust_flags_resolved_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subject_agent_id"],
            ["agents.id"],
            name=op.f("fk_trust_flags_subject_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_flags")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_trust_flags_fingerprint")),
    )
    with op.batch_alter_table("trust_flags", schema=None) as batch_op:
        batch_op.create_index("ix_trust_flags_status", ["status", "created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_trust_flags_subject_agent_id"), ["subject_agent_id"], unique=False
        )

    op.create_table(
        "trust_scores",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("trust", sa.Float(), nullable=False),
        sa.Column("raw", sa.Float(), nullable=True),
        sa.Column("grade", sa.String(length=4), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("effective_outcomes", sa.Float(), nullable=False),
        sa.Column("counted_outcomes", sa.Integer(), nullable=False),
        sa.Column("total_outcomes", sa.Integer(), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("rating_count", sa.Integer(), nullable=False),
        sa.Column("mean_rating", sa.Float(), nullable=True),
        sa.Column("earned_units", sa.BigInteger(), nullable=False),
        sa.Column("on_probation", sa.Boolean(), nullable=False),
        sa.Column(
            "breakdown",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_trust_scores_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_trust_scores")),
    )
    with op.batch_alter_table("trust_scores", schema=None) as batch_op:
        batch_op.create_index("ix_trust_scores_trust", ["trust"], unique=False)

    op.create_table(
        "trust_flagged_contracts",
        sa.Column("flag_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["mesh_contracts.id"],
            name=op.f("fk_trust_flagged_contracts_contract_id_mesh_contracts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["flag_id"],
            ["trust_flags.id"],
            name=op.f("fk_trust_flagged_contracts_flag_id_trust_flags"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("flag_id", "contract_id", name=op.f("pk_trust_flagged_contracts")),
    )
    with op.batch_alter_table("trust_flagged_contracts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trust_flagged_contracts_contract_id"), ["contract_id"], unique=False
        )

    op.create_table(
        "trust_ratings",
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("rater_owner_id", sa.Uuid(), nullable=False),
        sa.Column("rater_ref", sa.String(length=80), nullable=False),
        sa.Column("stars", sa.SmallInteger(), nullable=False),
        sa.Column("quality", sa.SmallInteger(), nullable=True),
        sa.Column("speed", sa.SmallInteger(), nullable=True),
        sa.Column("communication", sa.SmallInteger(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("editable_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_trust_ratings_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["mesh_contracts.id"],
            name=op.f("fk_trust_ratings_contract_id_mesh_contracts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rater_owner_id"],
            ["users.id"],
            name=op.f("fk_trust_ratings_rater_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_ratings")),
        sa.UniqueConstraint("contract_id", name=op.f("uq_trust_ratings_contract_id")),
    )
    with op.batch_alter_table("trust_ratings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trust_ratings_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_trust_ratings_rater_owner_id"), ["rater_owner_id"], unique=False
        )

    with op.batch_alter_table("mesh_agent_metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requester_owner_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("agent_owner_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("capability", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("earned_units", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("excluded_reason", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_mesh_agent_metrics_created", ["created_at"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_mesh_agent_metrics_requester_owner_id_users"),
            "users",
            ["requester_owner_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_mesh_agent_metrics_agent_owner_id_users"),
            "users",
            ["agent_owner_id"],
            ["id"],
            ondelete="SET NULL",
        )

    # Outcomes recorded before this revision learn their parties from the contract; their
    # trust is computed by the next `hermes trust recompute --all` (or the nightly job).
    op.execute(
        "UPDATE mesh_agent_metrics SET "
        "requester_owner_id = (SELECT c.requester_owner_id FROM mesh_contracts c "
        "WHERE c.id = mesh_agent_metrics.contract_id), "
        "capability = (SELECT c.capability FROM mesh_contracts c "
        "WHERE c.id = mesh_agent_metrics.contract_id), "
        "agent_owner_id = (SELECT a.owner_id FROM agents a "
        "WHERE a.id = mesh_agent_metrics.agent_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("mesh_agent_metrics", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_mesh_agent_metrics_agent_owner_id_users"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_mesh_agent_metrics_requester_owner_id_users"), type_="foreignkey"
        )
        batch_op.drop_index("ix_mesh_agent_metrics_created")
        batch_op.drop_column("excluded_reason")
        batch_op.drop_column("earned_units")
        batch_op.drop_column("capability")
        batch_op.drop_column("agent_owner_id")
        batch_op.drop_column("requester_owner_id")

    with op.batch_alter_table("trust_ratings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trust_ratings_rater_owner_id"))
        batch_op.drop_index(batch_op.f("ix_trust_ratings_agent_id"))

    op.drop_table("trust_ratings")
    with op.batch_alter_table("trust_flagged_contracts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trust_flagged_contracts_contract_id"))

    op.drop_table("trust_flagged_contracts")
    with op.batch_alter_table("trust_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_trust_scores_trust")

    op.drop_table("trust_scores")
    with op.batch_alter_table("trust_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trust_flags_subject_agent_id"))
        batch_op.drop_index("ix_trust_flags_status")

    op.drop_table("trust_flags")
    op.drop_table("trust_daily")
    op.drop_table("trust_badges")
    with op.batch_alter_table("trust_agent_bans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trust_agent_bans_public_key"))
        batch_op.drop_index(batch_op.f("ix_trust_agent_bans_name_key"))

    op.drop_table("trust_agent_bans")
    op.drop_table("trust_rater_weights")
    op.drop_table("trust_job_runs")
