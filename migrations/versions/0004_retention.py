"""Retention: conversations indexed by last activity, and when the service last purged.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    # Purges select conversations by last activity; without the index each batch scans them all.
    op.create_index("ix_conversations_updated_at", "conversations", ["updated_at"])
    state = op.create_table(
        "retention_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_purge_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_purge_conversations", sa.Integer(), nullable=True),
        sa.CheckConstraint("id = 1", name="ck_retention_state_one_row"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_state")),
    )
    # The one row exists from the start: deciding whether a purge is due never races an insert.
    op.bulk_insert(state, [{"id": 1, "last_purge_at": None, "last_purge_conversations": None}])


def downgrade():
    op.drop_table("retention_state")
    op.drop_index("ix_conversations_updated_at", table_name="conversations")
