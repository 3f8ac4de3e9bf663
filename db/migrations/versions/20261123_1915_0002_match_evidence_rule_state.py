"""match evidence and rule state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("matches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence", sa.Text(), nullable=True))
    op.create_table(
        "rule_state",
        sa.Column("rule_id", sa.String(length=128), nullable=False),
        sa.Column("rule_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", name=op.f("pk_rule_state")),
    )


def downgrade() -> None:
    op.drop_table("rule_state")
    with op.batch_alter_table("matches", schema=None) as batch_op:
        batch_op.drop_column("evidence")
