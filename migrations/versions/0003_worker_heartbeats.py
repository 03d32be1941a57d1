"""Worker heartbeats, and which worker owns an answer in progress.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "worker_heartbeats",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_heartbeats")),
    )
    # Nullable: rows from before this revision have no owner (the sweep ages them out instead).
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("worker_id", sa.String(length=32), nullable=True))


def downgrade():
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("worker_id")
    op.drop_table("worker_heartbeats")
