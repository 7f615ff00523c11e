"""Discovery: search documents with embeddings and categories, the lexical index, the index
revision, favourites, and the owner's category choice on agents. On PostgreSQL with the
pgvector extension available, a vector(384) column with an HNSW index as well.

Revision ID: 0006_discovery
Revises: 0005_trust
Create Date: 2026-11-22 01:08:59.469207

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_discovery"
down_revision: str | None = "0005_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def add_pgvector_column(connection: sa.Connection) -> None:
    """Add the vector column and its HNSW index if pgvector (0.5 or later) can be enabled.

    Without the extension, or without the right to create it, discovery keeps vectors in
    process; a savepoint keeps a refused CREATE EXTENSION from aborting the migration.
    """
    available = connection.execute(
        sa.text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
    ).scalar()
    if available is None or tuple(int(p) for p in available.split(".")[:2]) < (0, 5):
        return
    try:
        with connection.begin_nested():
            connection.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError:
        return
    connection.execute(
        sa.text("ALTER TABLE agent_search_docs ADD COLUMN embedding_vec vector(384)")
    )
    connection.execute(
        sa.text(
            "CREATE INDEX ix_agent_search_docs_embedding_vec ON agent_search_docs "
            "USING hnsw (embedding_vec vector_cosine_ops)"
        )
    )


def upgrade() -> None:
    op.create_table(
        "discovery_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discovery_state")),
    )
    op.create_table(
        "agent_search_docs",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column(
            "facets",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("facet_vectors", sa.LargeBinary(), nullable=True),
        sa.Column("auto_category", sa.String(length=32), nullable=True),
        sa.Column("length", sa.Float(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_search_docs_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_search_docs")),
    )
    with op.batch_alter_table("agent_search_docs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_agent_search_docs_revision"), ["revision"], unique=False
        )

    op.create_table(
        "agent_search_terms",
        sa.Column("term", sa.String(length=48), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_search_terms_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("term", "agent_id", name=op.f("pk_agent_search_terms")),
    )
    with op.batch_alter_table("agent_search_terms", schema=None) as batch_op:
        batch_op.create_index("ix_agent_search_terms_agent_id", ["agent_id"], unique=False)

    op.create_table(
        "user_favorites",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_user_favorites_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_favorites_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "agent_id", name=op.f("pk_user_favorites")),
    )
    with op.batch_alter_table("user_favorites", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_favorites_agent_id"), ["agent_id"], unique=False)

    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category", sa.String(length=32), nullable=True))
        # Prices up to the API's ceiling (1e9 credits = 1e11 units) overflowed INTEGER.
        batch_op.alter_column("base_price_units", existing_type=sa.Integer(), type_=sa.BigInteger())

    op.execute(sa.text("INSERT INTO discovery_state (id, revision) VALUES (1, 0)"))
    if op.get_bind().dialect.name == "postgresql":
        add_pgvector_column(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.alter_column("base_price_units", existing_type=sa.BigInteger(), type_=sa.Integer())
        batch_op.drop_column("category")

    with op.batch_alter_table("user_favorites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_favorites_agent_id"))

    op.drop_table("user_favorites")
    with op.batch_alter_table("agent_search_terms", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_search_terms_agent_id")

    op.drop_table("agent_search_terms")
    with op.batch_alter_table("agent_search_docs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_search_docs_revision"))

    op.drop_table("agent_search_docs")
    op.drop_table("discovery_state")
