"""What an update adds, and topic volume spikes

- ``items.adds_new``: for an item that joined a story as an update, whether it reports
  something no earlier item of the story carried (null for other items).
- ``item_developments``: those new things, a sentence each; the stable view
  ``story_developments`` reads them with their story, outlet and time.
- ``spikes``: a topic's volume (new stories or items, per day or per hour) well above its
  own recent baseline, recorded once per bucket; the stable view ``topic_spikes`` reads it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_STORY_DEVELOPMENTS = """
CREATE VIEW story_developments AS
SELECT i.story_id, d.item_id, i.story_at AS at, coalesce(i.site_name, i.host) AS outlet,
       i.title, i.url, d.position, d.sentence, d.facts
FROM item_developments d JOIN items i ON i.id = d.item_id
"""

_TOPIC_SPIKES = """
CREATE VIEW topic_spikes AS
SELECT s.id AS spike_id, s.topic, s.measure, s.bucket, s.bucket_start, s.observed, s.expected,
       s.score, s.reason, s.stories, s.terms, s.detected_at
FROM spikes s
"""


def upgrade() -> None:
    op.add_column("items", sa.Column("adds_new", sa.Boolean(create_constraint=False), nullable=True))
    op.create_table(
        "item_developments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sentence", sa.Text(), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_item_developments_item_id_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_developments")),
    )
    op.create_index(op.f("ix_item_developments_item_id"), "item_developments", ["item_id"])
    op.create_table(
        "spikes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(128), nullable=False),
        sa.Column("measure", sa.String(16), nullable=False),
        sa.Column("bucket", sa.String(8), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("observed", sa.Integer(), nullable=False),
        sa.Column("expected", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("stories", sa.Text(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spikes")),
        sa.UniqueConstraint("topic", "measure", "bucket", "bucket_start", name=op.f("uq_spikes_topic")),
    )
    op.create_index(op.f("ix_spikes_detected_at"), "spikes", ["detected_at"])
    op.execute(_STORY_DEVELOPMENTS)
    op.execute(_TOPIC_SPIKES)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS topic_spikes")
    op.execute("DROP VIEW IF EXISTS story_developments")
    op.drop_index(op.f("ix_spikes_detected_at"), table_name="spikes")
    op.drop_table("spikes")
    op.drop_index(op.f("ix_item_developments_item_id"), table_name="item_developments")
    op.drop_table("item_developments")
    op.drop_column("items", "adds_new")
