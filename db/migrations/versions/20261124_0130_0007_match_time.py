"""matches.item_at: the item's time on each match, indexed with the topic

"Topic X, last week" then reads one index range instead of every match of the topic.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("matches", sa.Column("item_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE matches SET item_at = "
        "(SELECT coalesce(i.published_at, i.fetched_at) FROM items i WHERE i.id = matches.item_id)"
    )
    op.create_index("ix_matches_rule_id_item_at", "matches", ["rule_id", "item_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_matches_rule_id_item_at", table_name="matches")
    op.drop_column("matches", "item_at")
