"""feed schedule: publish rate, graded failures, parking; a digest lock row per subscription

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: SQLite's batch mode would rebuild the table under the views that use it.
    op.add_column("feeds", sa.Column("publish_rate", sa.Float(), nullable=True))
    op.add_column("feeds", sa.Column("failure_score", sa.Float(), nullable=False, server_default="0"))
    op.add_column("feeds", sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("feeds", sa.Column("parked", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("feeds", sa.Column("schedule_reason", sa.String(length=16), nullable=True))
    op.create_index(op.f("ix_feeds_claimed_until"), "feeds", ["claimed_until"], unique=False)
    op.create_table(
        "digest_locks",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_digest_locks")),
    )


def downgrade() -> None:
    op.drop_table("digest_locks")
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feeds_claimed_until"))
        batch_op.drop_column("schedule_reason")
        batch_op.drop_column("parked")
        batch_op.drop_column("failing_since")
        batch_op.drop_column("failure_score")
        batch_op.drop_column("publish_rate")
