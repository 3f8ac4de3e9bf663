"""story_merges: why two stories were made one

Story grouping merges two stories when a new item links strongly to both. Each merge is
recorded with its evidence: the surviving story, the story merged into it, the item that
linked them, the model's probability for that item's link into the merged story and the
feature that weighed most.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "story_merges",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("merged_story_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), sa.ForeignKey("items.id", ondelete="SET NULL"), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_story_merges_story_id", "story_merges", ["story_id"])
    op.create_index("ix_story_merges_merged_story_id", "story_merges", ["merged_story_id"])


def downgrade() -> None:
    op.drop_index("ix_story_merges_merged_story_id", "story_merges")
    op.drop_index("ix_story_merges_story_id", "story_merges")
    op.drop_table("story_merges")
